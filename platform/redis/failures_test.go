package redis_test

import (
	"context"
	"crypto/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/platform/redis/redistest"
)

// patient gives Redis calls time on a loaded machine: a call that times
// out fails open, which would let a reservation through.
func patient(c *redis.Config) { c.Timeout = time.Second }

// failureLimits allow burst failures at once, then one a second.
func failureLimits(burst int) redis.LimitConfig {
	return redis.LimitConfig{ReadRate: 1, ReadBurst: 1, WriteRate: 1, WriteBurst: 1, AuthFailuresPerMinute: 60, AuthFailureBurst: burst}
}

func TestReserveFailureBudget(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t) // stopped below
	e := newEnv(t, srv.Addr(), patient)
	const burst = 5
	l, err := redis.NewLimiter(e.client, failureLimits(burst))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	addr, other := "198.51.100."+rand.Text()[:4], "203.0.113."+rand.Text()[:4]

	for i := range burst {
		if wait, ok := l.ReserveFailure(ctx, addr); !ok {
			t.Fatalf("ReserveFailure #%d = refused (retry in %v), want one of the %d", i+1, wait, burst)
		}
	}
	wait, ok := l.ReserveFailure(ctx, addr)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("ReserveFailure #%d = %v, %v; want refused with 0 < retry <= 1s (one failure a second)", burst+1, wait, ok)
	}
	if _, ok := l.ReserveFailure(ctx, other); !ok {
		t.Errorf("ReserveFailure(another address) = refused, want its own budget")
	}

	// A refund makes room for one more, and only one: other's budget is
	// spent (without a refusal, which would block it in the process),
	// given one back, and spent again. The budget refills one a second, so
	// the last check holds only while the test runs faster than that.
	drained := time.Now()
	for i := range burst - 1 {
		if _, ok := l.ReserveFailure(ctx, other); !ok {
			t.Fatalf("ReserveFailure(other) #%d = refused, want one of the %d", i+2, burst)
		}
	}
	l.RefundFailure(ctx, other)
	if _, ok := l.ReserveFailure(ctx, other); !ok {
		t.Errorf("ReserveFailure after a refund of a spent budget = refused, want allowed")
	}
	if _, ok := l.ReserveFailure(ctx, other); ok && time.Since(drained) < 500*time.Millisecond {
		t.Errorf("a second ReserveFailure after one refund = allowed, want refused: a refund gives back one")
	}
	// A refund never raises a full budget above its burst.
	fresh := "198.51.100." + rand.Text()[:4]
	l.RefundFailure(ctx, fresh)
	l.RefundFailure(ctx, fresh)
	start := time.Now()
	for i := range burst {
		if _, ok := l.ReserveFailure(ctx, fresh); !ok {
			t.Fatalf("ReserveFailure #%d after refunds of a full budget = refused, want one of the %d", i+1, burst)
		}
	}
	if _, ok := l.ReserveFailure(ctx, fresh); ok && time.Since(start) < 500*time.Millisecond {
		t.Errorf("ReserveFailure #%d after two refunds of a full budget = allowed, want refused: the budget is at most its burst", burst+1)
	}

	// Refused addresses are remembered in the process: with Redis gone,
	// addr is still refused (asking Redis would fail open), and an address
	// never refused fails open.
	srv.Stop()
	if _, ok := l.ReserveFailure(ctx, addr); ok {
		t.Errorf("ReserveFailure(blocked address) with Redis down = allowed, want refused without asking Redis")
	}
	for i := range 3 * burst {
		if _, ok := l.ReserveFailure(ctx, "192.0.2."+rand.Text()[:4]); !ok {
			t.Fatalf("ReserveFailure #%d with Redis down = refused, want it to fail open", i+1)
		}
	}
	time.Sleep(wait + 10*time.Millisecond)
	if _, ok := l.ReserveFailure(ctx, addr); !ok {
		t.Errorf("ReserveFailure %v later, with Redis down = refused, want the block over and the call failing open", wait)
	}
}

// TestReserveFailureConcurrent: however many requests from one address
// reserve at once, in two processes, no more than the budget get through.
func TestReserveFailureConcurrent(t *testing.T) {
	t.Parallel()
	const burst = 10
	var limiters []*redis.Limiter
	for range 2 {
		e := newEnv(t, redistest.Addr(t), patient)
		l, err := redis.NewLimiter(e.client, failureLimits(burst))
		if err != nil {
			t.Fatal(err)
		}
		limiters = append(limiters, l)
	}
	addr := "198.51.100." + rand.Text()[:6]
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			if _, ok := limiters[i%2].ReserveFailure(context.Background(), addr); ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	// The budget refills by one a second while the test runs.
	if n := allowed.Load(); n < burst || n > burst+1 {
		t.Errorf("100 concurrent reservations in two processes: %d allowed, want the burst of %d", n, burst)
	}
}
