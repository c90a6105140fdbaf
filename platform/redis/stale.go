package redis

import (
	"context"
	"crypto/rand"
	"errors"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/product"
)

// Serving stale values while the store is away. Some entries (API keys)
// stay in Redis long after they stop being fresh. A fresh hit is used as it
// is; a stale one is read again from the store. While the store is
// unavailable the stale value is used instead, so a request whose answer is
// all in the cache does not fail with the store: the first request after
// the store went away waits at most staleWait for it, and for
// rememberDown after that no request waits at all, while one read per entry
// goes on in the background and refreshes the cache when the store answers.
const (
	staleWait    = 100 * time.Millisecond
	rememberDown = 10 * time.Second
)

// tokenScript returns the generation token of an entry, creating it when
// there is none, for a reader that refreshes a value it found.
var tokenScript = goredis.NewScript(`
local g = redis.call('GET', KEYS[1])
if not g then
  g = ARGV[1]
  redis.call('SET', KEYS[1], g, 'PX', ARGV[2])
end
return g`)

// token returns e's generation token, or "" when Redis fails (then the
// refreshed value is not written).
func (c *Client) token(ctx context.Context, e entry) string {
	var g string
	_ = c.do(ctx, "redis cache read", func(ctx context.Context) error {
		var err error
		g, err = tokenScript.Run(ctx, c.rdb, []string{e.gen}, rand.Text(), genTTL.Milliseconds()).Text()
		return err
	})
	return g
}

// storeHealth remembers when the store was last found unavailable.
type storeHealth struct{ downAt atomic.Int64 } // unix nanoseconds; 0 when it answered since

// note records the outcome of a store read.
func (s *storeHealth) note(err error, now time.Time) {
	switch {
	case err == nil:
		s.downAt.Store(0)
	case errors.Is(err, product.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		s.downAt.Store(now.UnixNano())
	}
}

// down reports whether the store was found unavailable within rememberDown.
func (s *storeHealth) down(now time.Time) bool {
	at := s.downAt.Load()
	return at != 0 && now.UnixNano()-at < int64(rememberDown)
}

// getStale is get for entries that stay in Redis after they stop being
// fresh: fresh reports whether a cached value may be used as it is. A stale
// one is read again from load, under the stale-set guard. When load fails
// with product.ErrUnavailable or has not answered within staleWait, or the
// store was found unavailable lately, the stale value is returned with
// stale set instead.
func (a *aside[T]) getStale(ctx context.Context, e entry, fresh func(T) bool, load func(context.Context) (T, error)) (v T, stale bool, err error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, false, err
	}
	l := a.c.lookup(ctx, e)
	a.count(l)
	if l.value != nil {
		switch v, err := a.decode(l.value); {
		case err != nil:
			a.c.note(zerolog.WarnLevel, "cached "+a.what+" unreadable", err, nil)
			a.c.forget(ctx, e)
		case fresh(v):
			return v, false, nil
		default:
			return a.refresh(ctx, e, v, load)
		}
	}
	v, _, err = a.await(ctx, a.c.flight.DoChan(e.value, func() (any, error) { return a.fill(ctx, e, l.token, load) }))
	return v, false, err
}

// refresh reads the entry of a stale value again; see getStale.
func (a *aside[T]) refresh(ctx context.Context, e entry, old T, load func(context.Context) (T, error)) (T, bool, error) {
	var zero T
	ch := a.c.flight.DoChan(e.value, func() (any, error) { return a.fill(ctx, e, a.c.token(ctx, e), load) })
	if a.c.health.down(time.Now()) {
		return old, true, nil // the read goes on without this request
	}
	t := time.NewTimer(staleWait)
	defer t.Stop()
	select {
	case r := <-ch:
		switch {
		case errors.Is(r.Err, product.ErrUnavailable):
			return old, true, nil
		case r.Err != nil:
			return zero, false, r.Err
		}
		v, err := a.decode(r.Val.(filled).data)
		return v, false, err
	case <-t.C:
		a.c.health.note(context.DeadlineExceeded, time.Now())
		return old, true, nil
	case <-ctx.Done():
		return zero, false, ctx.Err()
	}
}
