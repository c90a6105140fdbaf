package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/pms-dev/pms/product"
)

// TestErrorStatuses checks statuses the error table gives wrapped errors:
// a client that went away is no server error, a deadline is a 503.
func TestErrorStatuses(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("insert product: %w", context.Canceled), statusClientClosedRequest},
		{fmt.Errorf("insert product: %w", context.DeadlineExceeded), http.StatusServiceUnavailable},
		{fmt.Errorf("get: %w", product.ErrUnavailable), http.StatusServiceUnavailable},
		{fmt.Errorf("something else"), http.StatusInternalServerError},
	} {
		if got := toAPIError(tc.err).Status; got != tc.want {
			t.Errorf("toAPIError(%v).Status = %d, want %d", tc.err, got, tc.want)
		}
	}
}
