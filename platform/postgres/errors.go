package postgres

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
)

// translate turns driver errors into the domain packages' errors, keeping
// the original in the chain for logs: a taken email becomes
// account.ErrEmailTaken, other unique violations product.ErrConflict, and
// data exceptions (SQLSTATE class 22) product.ErrInvalidInput. It returns
// other errors unchanged.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch code := pqErr.Code; {
		case code == pqerror.UniqueViolation && pqErr.Constraint == "users_email_key":
			return fmt.Errorf("%w: %w", account.ErrEmailTaken, err)
		case code == pqerror.UniqueViolation:
			return fmt.Errorf("%w: %w", product.ErrConflict, err)
		case code == pqerror.ForeignKeyViolation && pqErr.Constraint == "products_user_id_fkey":
			return fmt.Errorf("%w: %w", account.ErrUserNotFound, err)
		case code.Class() == pqerror.ClassDataException:
			// A value the server cannot take (a byte sequence that is not
			// UTF-8, a number out of range) is the client's, not ours.
			return fmt.Errorf("%w: %w", product.ErrInvalidInput, err)
		case code.Class() == pqerror.ClassConnectionException,
			code.Class() == pqerror.ClassInsufficientResources,
			code == pqerror.AdminShutdown, code == pqerror.CrashShutdown, code == pqerror.CannotConnectNow,
			code == pqerror.QueryCanceled:
			return fmt.Errorf("%w: %w", product.ErrUnavailable, err)
		}
		return err
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", product.ErrUnavailable, err)
	}
	return err
}
