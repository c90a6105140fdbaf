package product

import (
	"errors"
	"strings"
)

// Errors a Store or the Service returns. Adapters translate their own errors
// into these at the boundary.
var (
	ErrNotFound        = errors.New("product not found")
	ErrConflict        = errors.New("conflicting change")
	ErrVersionMismatch = errors.New("product was changed by someone else")
	ErrIdempotencyKey  = errors.New("idempotency key was used with a different request")
	// ErrUnavailable says the storage cannot be reached. Products and
	// accounts share one database, so the account adapters report an
	// outage with it too.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrInvalidInput is a value the storage refused as data it cannot
	// hold (a byte sequence that is not UTF-8, a number out of range): input
	// that validation should have refused first.
	ErrInvalidInput = errors.New("storage refused a value as malformed")
)

// FieldError says what is wrong with one input field, named by its public
// JSON key.
type FieldError struct {
	Field   string
	Problem string
}

// ValidationError describes input that breaks product rules, field by field.
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

// Problems collects field errors while input is checked.
type Problems []FieldError

// Add records that field has problem.
func (ps *Problems) Add(field, problem string) { *ps = append(*ps, FieldError{field, problem}) }

// Err returns a *ValidationError listing the problems, or nil when there are none.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Fields: ps}
}
