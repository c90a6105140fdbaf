package account

import (
	"errors"
	"strings"
)

// Errors the Service or a Store returns. Adapters translate their own errors
// into these at the boundary.
var (
	ErrUnauthenticated = errors.New("missing, malformed, unknown or revoked API key")
	// ErrForbidden is for an act the caller's account does not allow, such
	// as acting for another user without being an admin: package product
	// returns it for its ownership rules.
	ErrForbidden    = errors.New("not allowed for this caller")
	ErrUserNotFound = errors.New("user not found")
	ErrKeyNotFound  = errors.New("API key not found")
	ErrEmailTaken   = errors.New("another user has this email address")
)

// FieldError says what is wrong with one input field, named by its public
// key.
type FieldError struct {
	Field   string
	Problem string
}

// ValidationError describes input that breaks account rules, field by field.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Problem
	}
	return "invalid input: " + strings.Join(parts, "; ")
}
