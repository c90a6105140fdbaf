package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
)

// Changes tells when a product may have changed. Watch returns a channel
// that receives a value each time the product with the given id may have
// changed, in any process, after the change is readable; and the function
// that ends the watch. It is platform/redis's ProductCache.
type Changes interface {
	Watch(id uuid.UUID) (changed <-chan struct{}, stop func())
}

// waitParam reads the wait a GET asks for (?wait=20s, a Go duration, at
// most maxWait); 0 when there is none. Only GET waits.
func waitParam(c echo.Context, maxWait time.Duration) (time.Duration, error) {
	if c.Request().Method != http.MethodGet || c.Request().URL.RawQuery == "" {
		return 0, nil
	}
	vs, ok := c.QueryParams()["wait"] // parsed once per request, and kept by Echo
	if !ok {
		return 0, nil
	}
	problem := fmt.Sprintf("must be a duration from 0s to %s, e.g. wait=20s", maxWait)
	if len(vs) != 1 {
		return 0, badRequest(product.FieldError{Field: "wait", Problem: "must be given once"})
	}
	d, err := time.ParseDuration(vs[0])
	if err != nil || d < 0 || d > maxWait {
		return 0, badRequest(product.FieldError{Field: "wait", Problem: problem})
	}
	return d, nil
}

// settled reports whether every image of p is ready or failed.
func settled(p product.Product) bool {
	for _, im := range p.Images {
		if im.Status != product.ImageReady && im.Status != product.ImageFailed {
			return false
		}
	}
	return true
}

// getSettled returns the product, once every image of it has settled or
// after wait, whichever comes first. It reads the product again only when
// the product may have changed (Changes), never on a timer.
func (s *Server) getSettled(ctx context.Context, who account.Caller, id uuid.UUID, wait time.Duration) (product.Product, error) {
	p, err := s.products.Get(ctx, who, id)
	if err != nil || wait <= 0 || settled(p) || s.changes == nil {
		return p, err
	}
	changed, stop := s.changes.Watch(id)
	defer stop()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	// Read once more now that the watch is on: a change between the first
	// read and the watch would otherwise go unseen.
	for {
		if p, err = s.products.Get(ctx, who, id); err != nil || settled(p) {
			return p, err
		}
		select {
		case <-changed:
		case <-timer.C:
			return p, nil
		case <-ctx.Done():
			return product.Product{}, ctx.Err()
		}
	}
}
