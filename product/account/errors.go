package account

import (
	"errors"

	"github.com/pms-dev/pms/product/input"
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

// FieldError and ValidationError are the input package's: one shape of
// invalid input for every domain package.
type (
	FieldError      = input.FieldError
	ValidationError = input.ValidationError
)
