package postgres

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWriteGateBoundsAndQueues: however many writers come at once, no more
// than n are admitted together, and every one is admitted in the end.
func TestWriteGateBoundsAndQueues(t *testing.T) {
	t.Parallel()
	const n, writers = 3, 40
	g := newWriteGate(n)
	var in, most, done atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			release, err := g.admit(context.Background())
			if err != nil {
				t.Errorf("admit: %v", err)
				return
			}
			now := in.Add(1)
			for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
			}
			time.Sleep(time.Millisecond)
			in.Add(-1)
			release()
			done.Add(1)
		})
	}
	wg.Wait()
	if m := most.Load(); m > n || m < 1 {
		t.Errorf("%d writers were in at once, want 1 to %d", m, n)
	}
	if d := done.Load(); d != writers {
		t.Errorf("%d of %d writers were admitted", d, writers)
	}
}

// TestWriteGateWaitEndsWithContext: a writer whose context ends while it
// waits gets the context's error and takes no slot; with no limit (0)
// nobody waits.
func TestWriteGateWaitEndsWithContext(t *testing.T) {
	t.Parallel()
	g := newWriteGate(1)
	release, err := g.admit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := g.admit(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("admit with the slot taken = %v, want DeadlineExceeded", err)
	}
	release()
	again, err := g.admit(context.Background())
	if err != nil {
		t.Fatalf("admit after the release = %v: the abandoned wait took the slot", err)
	}
	again()

	open := newWriteGate(0)
	for range 100 {
		if _, err := open.admit(context.Background()); err != nil {
			t.Fatalf("admit with no limit = %v", err)
		}
	}
}
