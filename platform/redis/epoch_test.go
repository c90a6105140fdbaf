package redis_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/platform/redis/redistest"
	"github.com/pms-dev/pms/product/account"
)

// waitEpoch waits until each env's cache goes by a key epoch it read.
func waitEpoch(t *testing.T, envs ...*env) {
	t.Helper()
	for _, e := range envs {
		if !eventually(15*time.Second, func() bool { _, ok := e.keyCach.CurrentEpoch(); return ok }) {
			t.Fatal("the cache read no key epoch within 15s")
		}
	}
}

// epochReadsCounted returns pms_cache_epoch_reads_total{cache="api_key"}
// with the result, from the env's client.
func epochReadsCounted(t *testing.T, e *env, result string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.client)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "pms_cache_epoch_reads_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["cache"] == "api_key" && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no pms_cache_epoch_reads_total{cache=\"api_key\",result=%q}", result)
	return 0
}

// privateDB returns a pool on a database of the test's own: its key epoch
// moves only with the test's revocations.
func privateDB(t *testing.T) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(postgrestest.Config(t, postgrestest.Private(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// revoked reports whether a lookup through e says the key is revoked.
func revoked(t *testing.T, e *env, k account.APIKey) bool {
	t.Helper()
	ko, err := e.keyCach.KeyByPrefix(context.Background(), k.Prefix)
	if err != nil {
		t.Fatalf("KeyByPrefix(%s) error = %v", k.Prefix, err)
	}
	return !ko.Key.RevokedAt.IsZero()
}

// TestKeyEpochSteadyKeyCostsOneLookup: a key used steadily through two
// processes (one with near copies, one reading Redis every time) costs one
// store lookup in all, over several epoch reads, although by time alone
// (KeyFallbackTTL 2s) it would be read again every second.
func TestKeyEpochSteadyKeyCostsOneLookup(t *testing.T) {
	t.Parallel()
	addr, db := redistest.Addr(t), privateDB(t)
	a := newEnvOn(t, addr, db, func(c *redis.Config) { c.KeyFallbackTTL = 2 * time.Second })
	b := newEnvOn(t, addr, db, func(c *redis.Config) { c.KeyFallbackTTL, c.LocalTTL = 2*time.Second, 0 })
	waitEpoch(t, a, b)
	k := a.newKey(t)
	ctx := context.Background()
	startA, startB := a.keys.epochReads.Load(), b.keys.epochReads.Load()
	requests := 0
	// Until each process has read the epoch four more times (3s or more).
	for deadline := time.Now().Add(30 * time.Second); a.keys.epochReads.Load() < startA+4 || b.keys.epochReads.Load() < startB+4; time.Sleep(5 * time.Millisecond) {
		for _, e := range []*env{a, b} {
			if ko, err := e.keyCach.KeyByPrefix(ctx, k.Prefix); err != nil || ko.Key.ID != k.ID || ko.Stale {
				t.Fatalf("KeyByPrefix() = %+v, %v; want key %s, fresh", ko.Key, err, k.ID)
			}
			requests++
		}
		if time.Now().After(deadline) {
			t.Fatal("fewer than 4 epoch reads per process in 30s")
		}
	}
	lookups := a.keys.lookups.Load() + b.keys.lookups.Load()
	t.Logf("%d lookups of one key through 2 processes, over %d and %d epoch reads: %d store lookups",
		requests, a.keys.epochReads.Load()-startA, b.keys.epochReads.Load()-startB, lookups)
	if lookups != 1 {
		t.Errorf("%d lookups of a key in steady use read the store %d times, want once", requests, lookups)
	}
}

// TestKeyEpochRevocationReachesOtherProcess: a key revoked through one
// process, or behind the cache's back, is refused by another process
// within the epoch's bound although the invalidation is lost: the revoke
// bypassed Redis, or the old Redis entry was put back after the revoke
// dropped it, and in both cases the other process holds a near copy that
// would otherwise live KeyTTL (10 minutes).
func TestKeyEpochRevocationReachesOtherProcess(t *testing.T) {
	t.Parallel()
	addr := redistest.Addr(t)
	for _, lost := range []string{"revoked behind the cache", "redis entry put back"} {
		t.Run(lost, func(t *testing.T) {
			a, b := newEnv(t, addr, nil), newEnv(t, addr, nil)
			waitEpoch(t, a, b)
			k := a.newKey(t)
			ctx := context.Background()
			for range 3 { // cached in Redis and as b's near copy
				if revoked(t, b, k) {
					t.Fatal("a new key looks revoked")
				}
			}
			entry := "pms:apikey:{" + k.Prefix + "}"
			old, err := a.raw.Get(ctx, entry).Bytes()
			if err != nil {
				t.Fatalf("GET %s: %v", entry, err)
			}
			at := time.Now()
			switch lost {
			case "revoked behind the cache":
				_, err = postgres.NewAccountStore(a.db).RevokeKey(ctx, k.ID, now())
			default:
				if _, err = a.keyCach.RevokeKey(ctx, k.ID, now()); err == nil {
					err = a.raw.Set(ctx, entry, old, time.Hour).Err()
				}
			}
			if err != nil {
				t.Fatalf("revoke: %v", err)
			}
			if !eventually(10*time.Second, func() bool { return revoked(t, b, k) }) {
				t.Fatal("the other process still takes the key 10s after it was revoked")
			}
			took := time.Since(at)
			t.Logf("%s: refused by the other process after %v", lost, took.Round(time.Millisecond))
			// And it stays refused, through the next epoch reads.
			for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				if !revoked(t, b, k) || !revoked(t, a, k) {
					t.Fatal("a revoked key was taken again")
				}
			}
		})
	}
}

// TestKeyEpochUnreadable: while the key epoch cannot be read, keys are
// fresh by time alone (KeyFallbackTTL) and a revocation behind the cache
// takes that long; the failure is logged once, not per read; once the epoch
// is read again, a key in use costs no store lookup again.
func TestKeyEpochUnreadable(t *testing.T) {
	t.Parallel()
	e := newEnvOn(t, redistest.Addr(t), privateDB(t), func(c *redis.Config) { c.KeyFallbackTTL = time.Second })
	waitEpoch(t, e)
	ctx := context.Background()
	k := e.newKey(t)
	use := func() {
		t.Helper()
		if ko, err := e.keyCach.KeyByPrefix(ctx, k.Prefix); err != nil || ko.Key.ID != k.ID {
			t.Fatalf("KeyByPrefix() = %+v, %v; want key %s", ko.Key, err, k.ID)
		}
	}
	use()

	e.keys.epochDown.Store(true)
	if !eventually(10*time.Second, func() bool { _, ok := e.keyCach.CurrentEpoch(); return !ok }) {
		t.Fatal("the cache still trusts a key epoch 10s after its reads began to fail")
	}
	before := e.keys.lookups.Load()
	if !eventually(10*time.Second, func() bool { use(); return e.keys.lookups.Load() > before }) {
		t.Fatal("a key was not read again from the store within 10s although the epoch cannot be read (KeyFallbackTTL 1s)")
	}
	other := e.newKey(t)
	use2 := func() bool { return revoked(t, e, other) }
	if use2() {
		t.Fatal("a new key looks revoked")
	}
	if _, err := postgres.NewAccountStore(e.db).RevokeKey(ctx, other.ID, now()); err != nil {
		t.Fatal(err)
	}
	if !eventually(10*time.Second, use2) {
		t.Fatal("a key revoked behind the cache still works 10s later, with KeyFallbackTTL 1s")
	}
	if n := epochReadsCounted(t, e, "error"); n < 1 {
		t.Errorf(`pms_cache_epoch_reads_total{result="error"} = %v while the epoch could not be read, want at least 1`, n)
	}
	if n := e.logs.count("api key epoch read failed"); n < 1 || n > 2 {
		t.Errorf("the failing epoch reads were logged %d times, want once (or twice, past 10s)", n)
	}

	e.keys.epochDown.Store(false)
	waitEpoch(t, e)
	use()
	before, reads := e.keys.lookups.Load(), e.keys.epochReads.Load()
	if !eventually(30*time.Second, func() bool { use(); return e.keys.epochReads.Load() >= reads+3 }) {
		t.Fatal("fewer than 3 epoch reads in 30s")
	}
	if n := e.keys.lookups.Load() - before; n != 0 {
		t.Errorf("with the epoch readable again, a key in use read the store %d times over 3 epoch reads, want 0", n)
	}
	if n := e.logs.count("api key epoch read again"); n != 1 {
		t.Errorf("the recovery was logged %d times, want once", n)
	}
	// A read is counted once its result is in, a moment after the store
	// answered it.
	if !eventually(5*time.Second, func() bool { return epochReadsCounted(t, e, "unchanged") >= 3 }) {
		t.Errorf(`pms_cache_epoch_reads_total{result="unchanged"} = %v after 3 reads of an epoch that did not move, want at least 3`,
			epochReadsCounted(t, e, "unchanged"))
	}
}

// TestKeyEpochEntryWithoutEpoch: a cached key without an epoch (from a
// process of the last release, or one that could not read the epoch) is
// read again once by a process that knows the epoch, and then kept.
func TestKeyEpochEntryWithoutEpoch(t *testing.T) {
	t.Parallel()
	e := newEnvOn(t, redistest.Addr(t), privateDB(t), func(c *redis.Config) { c.LocalTTL = 0 })
	waitEpoch(t, e)
	ctx := context.Background()
	k := e.newKey(t)
	if _, err := e.keyCach.KeyByPrefix(ctx, k.Prefix); err != nil {
		t.Fatal(err)
	}
	entry := "pms:apikey:{" + k.Prefix + "}"
	var cached map[string]any
	data, err := e.raw.Get(ctx, entry).Bytes()
	if err == nil {
		err = json.Unmarshal(data, &cached)
	}
	if err != nil || cached["ep"] == nil {
		t.Fatalf("cached key %s = %s, %v; want one with its epoch (ep)", entry, data, err)
	}
	delete(cached, "ep")
	if data, err = json.Marshal(cached); err == nil {
		err = e.raw.Set(ctx, entry, data, time.Hour).Err()
	}
	if err != nil {
		t.Fatal(err)
	}
	before := e.keys.lookups.Load()
	for range 5 {
		if ko, err := e.keyCach.KeyByPrefix(ctx, k.Prefix); err != nil || ko.Key.ID != k.ID {
			t.Fatalf("KeyByPrefix() = %+v, %v; want key %s", ko.Key, err, k.ID)
		}
	}
	if n := e.keys.lookups.Load() - before; n != 1 {
		t.Errorf("5 lookups of a key cached without an epoch read the store %d times, want once", n)
	}
}
