package httpapi

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

type ctxKey struct{}

// ended waits up to a second for ctx's Done and returns its Err.
func ended(t *testing.T, ctx context.Context) error {
	t.Helper()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Second):
		t.Fatal("Done did not close within a second")
		return nil
	}
}

// TestLazyDeadlineEndsAsWithDeadline: whether or not anything watched Done
// before it ended, the context ends by its deadline, its parent or its
// cancel, with the error context.WithDeadline would give, and keeps it.
func TestLazyDeadlineEndsAsWithDeadline(t *testing.T) {
	t.Parallel()
	for _, watchFirst := range []bool{false, true} {
		watch := func(ctx context.Context) {
			if watchFirst {
				ctx.Done()
			}
		}
		t.Run("deadline", func(t *testing.T) {
			ctx, cancel := withLazyDeadline(context.Background(), time.Now().Add(20*time.Millisecond))
			defer cancel()
			watch(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("Err before the deadline = %v", err)
			}
			if err := ended(t, ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Err after the deadline = %v, want DeadlineExceeded", err)
			}
			cancel()
			if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Err after a late cancel = %v, want it to stay DeadlineExceeded", err)
			}
		})
		t.Run("cancel after the deadline", func(t *testing.T) {
			ctx, cancel := withLazyDeadline(context.Background(), time.Now().Add(time.Millisecond))
			defer cancel()
			if watchFirst {
				<-ctx.Done()
			} else {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			// Watched, it ended by its deadline, and stays so; unwatched,
			// nobody saw it end before the cancel, which ends it.
			want := context.Canceled
			if watchFirst {
				want = context.DeadlineExceeded
			}
			if err := ended(t, ctx); !errors.Is(err, want) {
				t.Fatalf("Err = %v, want %v", err, want)
			}
		})
		t.Run("parent", func(t *testing.T) {
			parent, cancelParent := context.WithCancel(context.Background())
			ctx, cancel := withLazyDeadline(parent, time.Now().Add(time.Hour))
			defer cancel()
			watch(ctx)
			cancelParent()
			if err := ended(t, ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Err after the parent's cancel = %v, want Canceled", err)
			}
		})
		t.Run("cancel", func(t *testing.T) {
			ctx, cancel := withLazyDeadline(context.Background(), time.Now().Add(time.Hour))
			watch(ctx)
			cancel()
			if err := ended(t, ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Err after cancel = %v, want Canceled", err)
			}
		})
	}
}

// TestLazyDeadlineIsItsParentOtherwise: values pass through, an earlier
// deadline of the parent wins, and a context derived from it ends with it
// (without a goroutine to watch it: it is a context.WithDeadline then).
func TestLazyDeadlineIsItsParentOtherwise(t *testing.T) {
	t.Parallel()
	parent := context.WithValue(context.Background(), ctxKey{}, "v")
	at := time.Now().Add(time.Hour)
	ctx, cancel := withLazyDeadline(parent, at)
	defer cancel()
	if v := ctx.Value(ctxKey{}); v != "v" {
		t.Errorf("Value = %v, want the parent's", v)
	}
	if d, ok := ctx.Deadline(); !ok || !d.Equal(at) {
		t.Errorf("Deadline = %v, %v; want %v", d, ok, at)
	}
	early, cancelEarly := context.WithDeadline(context.Background(), time.Now().Add(time.Minute))
	defer cancelEarly()
	want, _ := early.Deadline()
	if d, _ := withLazyDeadlineOf(t, early, at).Deadline(); !d.Equal(want) {
		t.Errorf("Deadline under an earlier parent deadline = %v, want the parent's %v", d, want)
	}

	before := runtime.NumGoroutine()
	var children []context.CancelFunc
	for range 100 {
		_, cancelChild := context.WithCancel(ctx)
		children = append(children, cancelChild)
	}
	if n := runtime.NumGoroutine() - before; n >= 100 {
		t.Errorf("100 derived contexts started %d goroutines: they do not find its cancellation", n)
	}
	child, cancelChild := context.WithCancel(ctx)
	defer cancelChild()
	if v := child.Value(ctxKey{}); v != "v" {
		t.Errorf("derived Value = %v, want the parent's", v)
	}
	cancel()
	if err := ended(t, child); !errors.Is(err, context.Canceled) {
		t.Errorf("derived Err after cancel = %v, want Canceled", err)
	}
	for _, c := range children {
		c()
	}
}

func withLazyDeadlineOf(t *testing.T, parent context.Context, d time.Time) context.Context {
	ctx, cancel := withLazyDeadline(parent, d)
	t.Cleanup(cancel)
	return ctx
}

// TestLazyDeadlineConcurrent is for the race detector: Done, Err, Value
// and cancel at once, from many goroutines, end with one error for all.
func TestLazyDeadlineConcurrent(t *testing.T) {
	t.Parallel()
	for range 50 {
		ctx, cancel := withLazyDeadline(context.Background(), time.Now().Add(time.Millisecond))
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				ctx.Value(ctxKey{})
				ctx.Err()
				if i == 3 {
					cancel()
				}
				<-ctx.Done()
				errs[i] = ctx.Err()
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err == nil || err != errs[0] {
				t.Fatalf("goroutine %d saw %v, goroutine 0 %v: want one error", i, err, errs[0])
			}
		}
		cancel()
	}
}
