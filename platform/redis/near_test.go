package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/platform/redis/redistest"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/message"
)

// waitNear waits until the env's client keeps near copies (it does not
// before it listens for invalidations): until a Get is answered with the
// Redis value gone and no store read.
func waitNear(t *testing.T, e *env, key string, get func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := get(); err != nil {
			t.Fatal(err)
		}
		if err := e.raw.Del(context.Background(), key).Err(); err != nil {
			t.Fatal(err)
		}
		before := e.store.gets.Load()
		if err := get(); err != nil {
			t.Fatal(err)
		}
		if e.store.gets.Load() == before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no near copy kept within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNearCopyAnswersWithoutRedis(t *testing.T) {
	t.Parallel()
	const ttl = 500 * time.Millisecond
	e := newEnv(t, redistest.Addr(t), func(c *redis.Config) { c.LocalTTL = ttl })
	p := e.newProduct(t)
	ctx := context.Background()
	get := func() error { _, err := e.cache.Get(ctx, p.ID); return err }
	// With the Redis value gone (not through an invalidation), the near copy
	// answers until LocalTTL, then the store is read again.
	waitNear(t, e, productKey(p.ID), get)
	reads := e.store.gets.Load()
	time.Sleep(ttl + 50*time.Millisecond)
	if err := get(); err != nil {
		t.Fatal(err)
	}
	if got := e.store.gets.Load(); got != reads+1 {
		t.Errorf("a Get after LocalTTL read the store %d times, want once", got-reads)
	}
}

// TestNearCopiesInvalidatedAcrossProcesses: two processes share Redis; a
// change through one reaches the other's near copy at once, long before its
// TTL could.
func TestNearCopiesInvalidatedAcrossProcesses(t *testing.T) {
	t.Parallel()
	long := func(c *redis.Config) { c.KeyTTL, c.LocalTTL = time.Minute, time.Minute }
	a := newEnv(t, redistest.Addr(t), long)
	b := newEnv(t, redistest.Addr(t), long)
	p := a.newProduct(t)
	ctx := context.Background()
	waitNear(t, b, productKey(p.ID), func() error { _, err := b.cache.Get(ctx, p.ID); return err })

	renamed := a.rename(t, p.ID)
	deadline := time.Now().Add(2 * time.Second)
	for {
		got, err := b.cache.Get(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version == renamed.Version && got.Name == renamed.Name {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other process still serves version %d two seconds after version %d was committed", got.Version, renamed.Version)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNearCopyOfRevokedKey: revoking a key through one process stops it in
// the other at once.
func TestNearCopyOfRevokedKey(t *testing.T) {
	t.Parallel()
	long := func(c *redis.Config) { c.KeyTTL, c.LocalTTL = time.Minute, time.Minute }
	a := newEnv(t, redistest.Addr(t), long)
	b := newEnv(t, redistest.Addr(t), long)
	k := a.newKey(t)
	ctx := context.Background()
	for range 3 {
		if _, err := b.keyCach.KeyByPrefix(ctx, k.Prefix); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.keyCach.RevokeKey(ctx, k.ID, now()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		ko, err := b.keyCach.KeyByPrefix(ctx, k.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		if !ko.Key.RevokedAt.IsZero() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the other process still has the key unrevoked two seconds after it was revoked")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNearCopiesUnusedWhileSubscriptionSilent: when this process stops
// hearing from its subscription (here Redis pauses every write, so no
// heartbeat and no invalidation is published), it stops trusting its near
// copies within seconds, long before LocalTTL, and uses them again once it
// hears from Redis.
func TestNearCopiesUnusedWhileSubscriptionSilent(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t) // private: the pause would stall other tests
	e := newEnv(t, srv.Addr(), func(c *redis.Config) { c.KeyTTL, c.LocalTTL = time.Minute, time.Minute })
	p := e.newProduct(t)
	ctx := context.Background()
	get := func() error { _, err := e.cache.Get(ctx, p.ID); return err }
	waitNear(t, e, productKey(p.ID), get) // the Redis value is gone now
	reads := e.store.gets.Load()
	if err := e.raw.Do(ctx, "CLIENT", "PAUSE", "8000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.raw.Do(context.Background(), "CLIENT", "UNPAUSE") })
	paused := time.Now()
	if err := get(); err != nil {
		t.Fatal(err)
	}
	if got := e.store.gets.Load(); got != reads {
		t.Fatalf("right after the pause a Get read the store %d times, want the near copy", got-reads)
	}
	// Within subscriptionSilence (3 s) and some slack, Gets stop using the
	// near copy: the Redis value is gone, so they read the store.
	if !eventually(6*time.Second, func() bool { _ = get(); return e.store.gets.Load() > reads }) {
		t.Fatalf("a Get still used the near copy %v after Redis stopped publishing", time.Since(paused).Round(time.Millisecond))
	}
	if waited := time.Since(paused); waited < 2*time.Second {
		t.Errorf("near copies stopped being used %v after the pause, before any heartbeat could be missed", waited)
	}
	if err := e.raw.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	waitNear(t, e, productKey(p.ID), get) // near copies come back by themselves
}

// TestNearCopiesUnusedWhileBreakerOpen: a near copy answers while Redis is
// trusted, but not once the breaker has opened: a change that no
// invalidation announced (it was made in the store alone) is read from the
// store then, before the silence of the invalidations' subscription would
// have turned near copies off by itself.
func TestNearCopiesUnusedWhileBreakerOpen(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	e := newEnv(t, srv.Addr(), func(c *redis.Config) {
		c.Timeout, c.BreakerFailures, c.BreakerCooldown = opTimeout, 5, time.Minute
	})
	ctx := context.Background()
	p := e.newProduct(t)
	waitNear(t, e, productKey(p.ID), func() error { _, err := e.cache.Get(ctx, p.ID); return err })
	// Changed in the store alone: Redis and the near copy still hold version 1.
	if _, err := e.store.Store.Update(ctx, p.ID, func(p *product.Product) ([]message.Message, error) {
		p.Version++
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}

	srv.Pause()
	t.Cleanup(srv.Resume)
	paused := time.Now()
	timedGet(t, e, p.ID, 1) // the near copy, without asking the hung Redis
	for range 5 {           // the breaker's threshold of calls that time out
		if _, err := e.cache.Get(ctx, uuid.Must(uuid.NewV7())); err != product.ErrNotFound {
			t.Fatalf("Get(unknown id) with Redis hung error = %v, want ErrNotFound", err)
		}
	}
	timedGet(t, e, p.ID, 2)
	if took := time.Since(paused); took >= 3*time.Second {
		t.Skipf("the breaker took %v to open: the subscription's silence may have turned near copies off first", took)
	}
}
