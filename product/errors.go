package product

import (
	"errors"

	"github.com/pms-dev/pms/product/input"
	"github.com/pms-dev/pms/product/message"
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
	// outage with it too. It is message.ErrUnavailable, so that the
	// consumer of tasks waits out an outage of the store instead of using
	// up the tasks' attempts.
	ErrUnavailable = message.ErrUnavailable
	// ErrInvalidInput is a value the storage refused as data it cannot
	// hold (a byte sequence that is not UTF-8, a number out of range): input
	// that validation should have refused first.
	ErrInvalidInput = errors.New("storage refused a value as malformed")
)

// FieldError, ValidationError and Problems are the input package's: one
// shape of invalid input for every domain package.
type (
	FieldError      = input.FieldError
	ValidationError = input.ValidationError
	Problems        = input.Problems
)
