package redis_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/platform/redis/redistest"
)

func TestLimiterBurstThenDenied(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Addr(t), nil)
	const burst = 3
	// One token a second: the four reads below would have to take a second,
	// not 200 ms as at 5 a second (a CI run under -race once did), before a
	// token comes back and the fourth is allowed.
	l, err := redis.NewLimiter(e.client, redis.LimitConfig{ReadRate: 1, ReadBurst: burst, WriteRate: 1, WriteBurst: 1, AuthFailuresPerMinute: 60, AuthFailureBurst: 20})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := "caller-" + rand.Text()

	for i := range burst {
		d, err := l.Allow(ctx, key, false)
		if err != nil || !d.Allowed || d.Limit != burst || d.Remaining != burst-1-i || d.RetryAfter != 0 {
			t.Fatalf("read #%d: Allow() = %+v, %v; want allowed, limit %d, remaining %d", i+1, d, err, burst, burst-1-i)
		}
	}
	denied, err := l.Allow(ctx, key, false)
	if err != nil || denied.Allowed || denied.RetryAfter <= 0 || denied.RetryAfter > time.Second || denied.Remaining != 0 {
		t.Fatalf("read #%d: Allow() = %+v, %v; want denied with 0 < RetryAfter <= 1s", burst+1, denied, err)
	}

	// Writes have their own budget.
	if d, err := l.Allow(ctx, key, true); err != nil || !d.Allowed || d.Limit != 1 {
		t.Errorf("first write after reads ran out: Allow() = %+v, %v; want allowed, limit 1", d, err)
	}
	if d, err := l.Allow(ctx, key, true); err != nil || d.Allowed {
		t.Errorf("second write: Allow() = %+v, %v; want denied", d, err)
	}
	// Another caller is not affected.
	if d, err := l.Allow(ctx, key+"-other", false); err != nil || !d.Allowed {
		t.Errorf("another caller: Allow() = %+v, %v; want allowed", d, err)
	}

	time.Sleep(denied.RetryAfter + 10*time.Millisecond)
	if d, err := l.Allow(ctx, key, false); err != nil || !d.Allowed {
		t.Errorf("read after waiting RetryAfter (%v): Allow() = %+v, %v; want allowed", denied.RetryAfter, d, err)
	}
}

func TestNewLimiterRefusesInvalidConfig(t *testing.T) {
	c, err := redis.New(redis.DefaultConfig(), zerolog.Nop())
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	defer c.Close()
	if _, err := redis.NewLimiter(c, redis.LimitConfig{}); err == nil {
		t.Error("NewLimiter() with a zero config succeeded, want an error")
	}
}

// TestLimiterLeasesNeverOveradmit: two processes sharing a caller's budget
// through Redis take tokens in leases, and together still admit no more
// than the burst, and not many fewer.
func TestLimiterLeasesNeverOveradmit(t *testing.T) {
	t.Parallel()
	const burst, lease = 200, 40
	cfg := redis.LimitConfig{ReadRate: 1, ReadBurst: burst, WriteRate: 1, WriteBurst: 1, AuthFailuresPerMinute: 60, AuthFailureBurst: 20}
	var limiters []*redis.Limiter
	for range 2 {
		e := newEnv(t, redistest.Addr(t), nil)
		l, err := redis.NewLimiter(e.client, cfg)
		if err != nil {
			t.Fatal(err)
		}
		limiters = append(limiters, l)
	}
	key := "caller-" + rand.Text()
	allowed := 0
	start := time.Now()
	for i := range 3 * burst {
		d, err := limiters[i%2].Allow(context.Background(), key, false)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			allowed++
		}
	}
	// The budget refills by one token a second while the test runs.
	if refill := int(time.Since(start)/time.Second) + 1; allowed > burst+refill || allowed < burst-2*lease {
		t.Errorf("two processes admitted %d of %d requests against a burst of %d, want at most the burst and at most a lease less per process", allowed, 3*burst, burst)
	}
}

// TestLimiterLeasedTokensSayWhenTheBudgetResets: at the default burst a
// process takes tokens from Redis twenty at a time, and the requests served
// from such a lease must say when the budget is full again as the first
// did (RateLimit-Reset), not 0: the time the tokens taken so far take to
// come back, at most 20 × 20 ms here.
func TestLimiterLeasedTokensSayWhenTheBudgetResets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Addr(t), nil)
	l, err := redis.NewLimiter(e.client, redis.DefaultLimitConfig()) // read burst 100: leases of 20
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := "caller-" + rand.Text()
	for i := range 20 {
		d, err := l.Allow(ctx, key, false)
		if err != nil || !d.Allowed {
			t.Fatalf("read #%d: Allow() = %+v, %v; want allowed", i+1, d, err)
		}
		if d.ResetAfter <= 0 || d.ResetAfter > 400*time.Millisecond {
			t.Errorf("read #%d: ResetAfter = %v, want within (0, 400ms]", i+1, d.ResetAfter)
		}
		// The budget refills as time passes (50 a second), and GCRA may
		// round a token away, so allow a little either side.
		if want := 100 - 1 - i; d.Remaining > want+5 || d.Remaining < want-1 {
			t.Errorf("read #%d: Remaining = %d, want about %d", i+1, d.Remaining, want)
		}
	}
}
