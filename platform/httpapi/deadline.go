package httpapi

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// lazyDeadline is context.WithDeadline for a request, made cheap for the
// requests that never wait: most cached reads answer without a call that
// watches their context's Done. context.WithDeadline arms a timer and
// joins its parent's children for every request; lazyDeadline reports its
// deadline and error from the clock and its parent, and makes the real
// deadline context only when Done is first called. From then on it is
// that context, values included, so a context derived from it is
// cancelled as one derived from context.WithDeadline would be.
type lazyDeadline struct {
	parent   context.Context
	deadline time.Time
	armed    atomic.Pointer[armedDeadline] // nil until Done

	mu  sync.Mutex // over arming and err
	err error      // once non-nil, what Err returns
}

// armedDeadline is the deadline context made when Done was first called.
type armedDeadline struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// withLazyDeadline returns a context that ends at d, when parent ends or
// when the returned function is called, whichever is first.
func withLazyDeadline(parent context.Context, d time.Time) (context.Context, context.CancelFunc) {
	if pd, ok := parent.Deadline(); ok && !d.Before(pd) {
		return context.WithCancel(parent) // the parent's deadline comes first
	}
	c := &lazyDeadline{parent: parent, deadline: d}
	return c, c.stop
}

func (c *lazyDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *lazyDeadline) Done() <-chan struct{} {
	if a := c.armed.Load(); a != nil {
		return a.ctx.Done()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.armed.Load()
	if a == nil {
		a = &armedDeadline{}
		a.ctx, a.cancel = context.WithDeadline(c.parent, c.deadline)
		if c.settle() != nil {
			a.cancel() // it ended before anyone watched
		}
		c.armed.Store(a)
	}
	return a.ctx.Done()
}

func (c *lazyDeadline) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.settle()
}

// settle records and returns the error the context has ended with, if it
// has: the armed context's, the parent's, or its deadline's. c.mu is held.
func (c *lazyDeadline) settle() error {
	if c.err != nil {
		return c.err
	}
	switch a := c.armed.Load(); {
	case a != nil:
		c.err = a.ctx.Err()
	case c.parent.Err() != nil:
		c.err = c.parent.Err()
	case !time.Now().Before(c.deadline):
		c.err = context.DeadlineExceeded
	}
	return c.err
}

func (c *lazyDeadline) Value(key any) any {
	if a := c.armed.Load(); a != nil {
		return a.ctx.Value(key) // so that contexts derived from it find its cancellation
	}
	return c.parent.Value(key)
}

// stop is its CancelFunc. It does not read the clock, which every request
// would pay for: a context whose deadline passed while nobody asked ends
// as Canceled, not DeadlineExceeded. Nobody can tell, since nobody saw it
// end before.
func (c *lazyDeadline) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		switch a := c.armed.Load(); {
		case a != nil:
			a.cancel()
			c.err = a.ctx.Err() // the deadline's or the parent's, if either came first
		case c.parent.Err() != nil:
			c.err = c.parent.Err()
		default:
			c.err = context.Canceled
		}
	}
	if a := c.armed.Load(); a != nil {
		a.cancel()
	}
}

func (c *lazyDeadline) String() string { return "httpapi.withLazyDeadline" }
