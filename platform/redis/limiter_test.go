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

// TestLimiterOrdersTheNextLeaseAhead: once a quarter of a lease is left, a
// process takes the next one from Redis without a request waiting for it.
// The budget in Redis shows both leases taken, in redis_rate's format (the
// theoretical arrival time in seconds since 2017), which processes of the
// version before read.
func TestLimiterOrdersTheNextLeaseAhead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Addr(t), nil)
	cfg := redis.LimitConfig{ReadRate: 1, ReadBurst: 100, WriteRate: 1, WriteBurst: 1, AuthFailuresPerMinute: 60, AuthFailureBurst: 20}
	l, err := redis.NewLimiter(e.client, cfg) // leases of 20, one token back a second
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := "caller-" + rand.Text()
	taken := func() float64 { return budgetAhead(t, e, key) } // one token a second: the tokens out
	read := func(n int) {
		t.Helper()
		if d, err := l.Allow(ctx, key, false); err != nil || !d.Allowed {
			t.Fatalf("read #%d: Allow() = %+v, %v; want allowed", n, d, err)
		}
	}
	for i := range 14 { // 6 of the first lease left: nothing ordered yet
		read(i + 1)
	}
	if got := taken(); got < 18 || got > 21 {
		t.Fatalf("after 14 reads: %.1f tokens out of the budget, want about 20 (one lease)", got)
	}
	read(15) // 5 left, a quarter: the next lease is ordered
	// The order goes within refillLinger (5 ms) and a round trip.
	if got := waitBudgetAhead(t, e, key, 38); got < 38 || got > 41 {
		t.Fatalf("after the next lease was ordered: %.1f tokens out of the budget, want about 40", got)
	}
	// The caller spends the 5 left and the 20 ordered without asking Redis.
	for i := range 25 {
		read(16 + i)
	}
	if got := taken(); got > 60.5 {
		t.Errorf("after 40 reads: %.1f tokens out of the budget, want at most 60 (two leases and the one ordered ahead)", got)
	}
}

// TestLimiterTakesWhatIsLeftOfALease: with less than a lease left in
// Redis, a process takes what there is in one round trip, spends it, and
// then refuses, saying when the next token comes.
func TestLimiterTakesWhatIsLeftOfALease(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Addr(t), nil)
	cfg := redis.LimitConfig{ReadRate: 1, ReadBurst: 30, WriteRate: 1, WriteBurst: 1, AuthFailuresPerMinute: 60, AuthFailureBurst: 20}
	l, err := redis.NewLimiter(e.client, cfg) // leases of 6, one token back a second
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := "caller-" + rand.Text()
	// 27 of the 30 tokens out, as another process would have left it: the
	// theoretical arrival time 27 s ahead, in seconds since 2017.
	if err := e.raw.Set(ctx, "pms:rl:r:"+key, gcraNow()+27, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	d, err := l.Allow(ctx, key, false)
	if err != nil || !d.Allowed || d.Remaining != 2 {
		t.Fatalf("first read: Allow() = %+v, %v; want allowed with 2 remaining (the 3 left, one spent)", d, err)
	}
	if ahead := budgetAhead(t, e, key); ahead < 29 || ahead > 30.1 {
		t.Fatalf("after the first read the budget is %.2f s ahead, want about 30: the 3 left taken at once", ahead)
	}
	for i := range 2 {
		if d, err := l.Allow(ctx, key, false); err != nil || !d.Allowed {
			t.Fatalf("read #%d: Allow() = %+v, %v; want allowed from the lease", i+2, d, err)
		}
	}
	refused, err := l.Allow(ctx, key, false)
	if err != nil || refused.Allowed || refused.RetryAfter <= 0 || refused.RetryAfter > time.Second || refused.Remaining != 0 || refused.Limit != 30 {
		t.Errorf("fourth read: Allow() = %+v, %v; want refused, limit 30, 0 remaining, retry within 1s", refused, err)
	}
}

// TestLimiterOrdersSurviveAScriptFlush: Redis forgets its scripts when it
// restarts; the leases ordered ahead, sent by the script's hash in one
// pipeline, load it again.
func TestLimiterOrdersSurviveAScriptFlush(t *testing.T) {
	e := newEnv(t, redistest.Addr(t), nil) // not parallel: SCRIPT FLUSH is the whole server's
	l, err := redis.NewLimiter(e.client, redis.DefaultLimitConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := "caller-" + rand.Text()
	for i := range 14 {
		if _, err := l.Allow(ctx, key, false); err != nil {
			t.Fatalf("read #%d: %v", i+1, err)
		}
	}
	if err := e.raw.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Allow(ctx, key, false); err != nil { // orders the next lease
		t.Fatal(err)
	}
	// 40 tokens out at 50 a second: at least 0.6 s of budget.
	if ahead := waitBudgetAhead(t, e, key, 0.5); ahead < 0.5 {
		t.Fatalf("the lease ordered after SCRIPT FLUSH was not taken within 5 s: the budget is %.2f s ahead", ahead)
	}
	if n := e.client.Failures(); n != 0 {
		t.Errorf("%d Redis calls failed, want 0: NOSCRIPT must load the script again", n)
	}
}

// gcraNow is now as the rate-limit script keeps time: seconds since
// 2017-01-01 UTC, redis_rate's epoch.
func gcraNow() float64 { return float64(time.Now().UnixMicro())/1e6 - 1483228800 }

// budgetAhead returns how many seconds ahead of now the read budget of key
// runs in Redis: its tokens out, times the interval of one.
func budgetAhead(t *testing.T, e *env, key string) float64 {
	t.Helper()
	tat, err := e.raw.Get(context.Background(), "pms:rl:r:"+key).Float64()
	if err != nil {
		t.Fatalf("read the budget of %s: %v", key, err)
	}
	return tat - gcraNow()
}

// waitBudgetAhead waits up to 5 s for the read budget of key to run at
// least want seconds ahead, and returns how far it last did.
func waitBudgetAhead(t *testing.T, e *env, key string, want float64) float64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ahead := budgetAhead(t, e, key)
		if ahead >= want || time.Now().After(deadline) {
			return ahead
		}
		time.Sleep(10 * time.Millisecond)
	}
}
