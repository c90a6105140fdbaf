package redis_test

import (
	"context"
	"crypto/rand"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/platform/redis/redistest"
	"github.com/pms-dev/pms/product"
)

const (
	opTimeout = 50 * time.Millisecond
	cooldown  = time.Second
	// slack is what a loaded test machine may add to a typical call.
	slack = 100 * time.Millisecond
	// hung is far longer than any call that gives up on Redis at its
	// timeout may take, even on a loaded machine, and far shorter than one
	// that waits for a hung Redis.
	hung = 2 * time.Second
)

// latencies collects how long calls took, to judge them by their median
// (what a call costs) and their maximum (that none waited for a hung
// server), not by the slowest of a few dozen calls on a shared machine.
type latencies []time.Duration

func (l latencies) median() time.Duration {
	s := slices.Clone(l)
	slices.Sort(s)
	return s[len(s)/2]
}

func (l latencies) max() time.Duration { return slices.Max(l) }

// check fails the test when the calls' median is over typical or one of
// them took as long as a wait for a hung Redis.
func (l latencies) check(t *testing.T, what string, typical time.Duration) {
	t.Helper()
	if m := l.median(); m > typical {
		t.Errorf("%s: median %v over %d calls, want at most %v", what, m, len(l), typical)
	}
	if m := l.max(); m >= hung {
		t.Errorf("%s: one of %d calls took %v, as long as a wait for a hung Redis", what, len(l), m)
	}
}

// outageConfig counts every read that falls back to the store, so it turns
// near copies off: they would answer some reads without asking Redis.
func outageConfig(c *redis.Config) {
	c.Timeout, c.BreakerFailures, c.BreakerCooldown = opTimeout, 5, cooldown
	c.LocalTTL = 0
}

// storeLatency returns the slowest of a few direct store reads: the baseline
// that Redis may add to.
func storeLatency(t *testing.T, e *env, id uuid.UUID) time.Duration {
	t.Helper()
	var worst time.Duration
	for range 5 {
		start := time.Now()
		if _, err := e.store.Store.Get(context.Background(), id); err != nil {
			t.Fatalf("store Get() error = %v", err)
		}
		worst = max(worst, time.Since(start))
	}
	return worst
}

// timedGet reads the product through the cache, checks it has the version
// and returns how long it took.
func timedGet(t *testing.T, e *env, id uuid.UUID, version int) time.Duration {
	t.Helper()
	start := time.Now()
	p, err := e.cache.Get(context.Background(), id)
	took := time.Since(start)
	if err != nil || p.Version != version {
		t.Fatalf("Get() = version %d, %v; want version %d and no error", p.Version, err, version)
	}
	return took
}

// TestRedisKilledAndRestarted kills Redis under the caches and the limiter,
// checks that everything answers from PostgreSQL without error or delay,
// then restarts Redis and checks that caching resumes by itself.
func TestRedisKilledAndRestarted(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	e := newEnv(t, srv.Addr(), outageConfig)
	ctx := context.Background()
	p := e.newProduct(t)
	k := e.newKey(t)
	limiter, err := redis.NewLimiter(e.client, redis.LimitConfig{ReadRate: 1, ReadBurst: 1, WriteRate: 1, WriteBurst: 1, AuthFailuresPerMinute: 60, AuthFailureBurst: 20})
	if err != nil {
		t.Fatal(err)
	}
	caller := "caller-" + rand.Text()

	timedGet(t, e, p.ID, 1)
	timedGet(t, e, p.ID, 1)
	if n := e.store.gets.Load(); n != 1 {
		t.Fatalf("store reads with Redis up = %d, want 1", n)
	}
	if d, _ := limiter.Allow(ctx, caller, false); !d.Allowed {
		t.Fatalf("first Allow() = %+v, want allowed", d)
	}
	if d, _ := limiter.Allow(ctx, caller, false); d.Allowed {
		t.Fatalf("second Allow() = %+v, want denied (burst 1)", d)
	}
	base := storeLatency(t, e, p.ID)

	srv.Stop()
	if err := e.client.Ping(ctx); err == nil {
		t.Error("Ping() with Redis killed = nil, want an error")
	}
	var gets latencies
	for range 30 {
		gets = append(gets, timedGet(t, e, p.ID, 1))
		if ko, err := e.keyCach.KeyByPrefix(ctx, k.Prefix); err != nil || ko.Key.ID != k.ID {
			t.Fatalf("KeyByPrefix() with Redis killed = %s, %v; want key %s", ko.Key.ID, err, k.ID)
		}
		if d, err := limiter.Allow(ctx, caller, false); err != nil || !d.Allowed {
			t.Fatalf("Allow() with Redis killed = %+v, %v; want allowed (fail open)", d, err)
		}
	}
	gets.check(t, "Get() with Redis killed", base+opTimeout+slack)
	if n := e.store.gets.Load(); n != 31 {
		t.Errorf("store reads = %d, want 31: every Get reads the store while Redis is down", n)
	}
	// 90 failing calls, in all, are logged in a few lines.
	if n := e.logs.count(`"level":"warn"`); n < 1 || n > 4 {
		t.Errorf("%d warnings logged for 90 calls with Redis down, want 1 to 4 (rate-limited)", n)
	}

	srv.Restart()
	if !eventually(5*time.Second, func() bool {
		timedGet(t, e, p.ID, 1)
		return e.cachedVersion(t, p.ID) == 1
	}) {
		t.Fatal("caching did not resume within 5s of Redis restarting")
	}
	before := e.store.gets.Load()
	timedGet(t, e, p.ID, 1)
	if n := e.store.gets.Load(); n != before {
		t.Errorf("Get() after recovery read the store, want a cache hit")
	}
	if err := e.client.Ping(ctx); err != nil {
		t.Errorf("Ping() after restart error = %v", err)
	}
	if d, _ := limiter.Allow(ctx, caller, true); !d.Allowed {
		t.Errorf("Allow() after restart = %+v, want allowed", d)
	}
	if d, _ := limiter.Allow(ctx, caller, true); d.Allowed {
		t.Errorf("second Allow() after restart = %+v, want denied: limiting resumed", d)
	}
}

// TestRedisHung pauses Redis (it accepts connections but never answers): a
// call costs at most the timeout until the breaker opens and nothing after.
// A product changed meanwhile is read from the store until its invalidation
// gets through, and is not served stale once Redis is back.
func TestRedisHung(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	e := newEnv(t, srv.Addr(), outageConfig)
	changed, other := e.newProduct(t), e.newProduct(t)
	timedGet(t, e, changed.ID, 1) // both cached at version 1
	timedGet(t, e, other.ID, 1)
	base := storeLatency(t, e, other.ID)

	failed := e.client.Failures()
	srv.Pause()
	t.Cleanup(srv.Resume)
	start := time.Now()
	v2 := e.rename(t, changed.ID) // its invalidation times out and is kept for later
	// One call, so judged only by whether it waited for the hung Redis: a
	// write plus a timeout on a loaded machine may take over base+slack.
	if took := time.Since(start); took >= hung {
		t.Errorf("Update() with Redis hung took %v, as long as a wait for a hung Redis", took)
	}
	var changedGets, otherGets latencies
	for range 30 {
		// The changed product has an invalidation pending: it is read from the
		// store without asking Redis.
		changedGets = append(changedGets, timedGet(t, e, changed.ID, v2.Version))
		otherGets = append(otherGets, timedGet(t, e, other.ID, 1))
	}
	changedGets.check(t, "Get() of the changed product with Redis hung", base+slack)
	otherGets.check(t, "Get() with Redis hung", base+opTimeout+slack)
	// The invalidation and the first reads time out until 5 calls have
	// failed and the breaker opens; then reads cost only the store, but for
	// a probe after each cooldown, which fails once more (a busy machine
	// makes the 60 reads last several cooldowns).
	n := e.client.Failures() - failed
	probes := int64(time.Since(start)/cooldown) + 1
	t.Logf("with Redis hung, %d calls timed out waiting for it (store read: %v, up to %d probes)", n, base, probes)
	if n < 5 || n > 5+probes {
		t.Errorf("%d calls with Redis hung timed out waiting for Redis, want 5 (the breaker's threshold), and at most %d probes more", n, probes)
	}

	srv.Resume()
	if !eventually(5*time.Second, func() bool {
		timedGet(t, e, changed.ID, v2.Version)
		return e.cachedVersion(t, changed.ID) == v2.Version
	}) {
		t.Fatalf("after Redis resumed the cache holds version %d, want %d within 5s",
			e.cachedVersion(t, changed.ID), v2.Version)
	}
	for range 5 {
		timedGet(t, e, changed.ID, v2.Version)
	}
}

// TestRedisDownAtStart checks that a Client works, uncached, when Redis is
// not there at all.
func TestRedisDownAtStart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	srv.Stop()
	e := newEnv(t, srv.Addr(), outageConfig)
	p := e.newProduct(t)
	for range 10 {
		timedGet(t, e, p.ID, 1)
	}
	if _, err := e.cache.Get(context.Background(), uuid.Must(uuid.NewV7())); err != product.ErrNotFound {
		t.Errorf("Get(unknown id) with Redis down error = %v, want ErrNotFound", err)
	}
}
