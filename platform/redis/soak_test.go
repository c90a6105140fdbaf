package redis_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"flag"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/platform/redis/redistest"
	"github.com/pms-dev/pms/product/account"
)

var (
	soak     = flag.Duration("keys.soak", 0, "how long TestKeyLookupsSoak runs (0: skipped)")
	soakKeys = flag.Int("keys.soak_keys", 500, "keys in use in TestKeyLookupsSoak, each used about once a second")
)

// TestKeyLookupsSoak counts the store lookups that API keys in steady use
// cost, side by side in one run: with the key epoch, and by time alone as
// before it (no Epochs, key_fallback_ttl 30s: the old key_ttl rule). Each
// side has its own database, Redis entries and keys; every key is used
// about once a second. Run it with -keys.soak=40s (BENCHMARKS.md).
func TestKeyLookupsSoak(t *testing.T) {
	if *soak <= 0 {
		t.Skip("a measurement: run with -keys.soak=DURATION")
	}
	addr := redistest.Addr(t)
	sides := []struct {
		name  string
		epoch bool
	}{{"by time alone (before)", false}, {"key epoch", true}}
	type result struct {
		requests, lookups int64
		took              time.Duration
	}
	results := make([]result, len(sides))
	var wg sync.WaitGroup
	for i, side := range sides {
		e := newEnvOn(t, addr, privateDB(t), nil)
		kc := e.keyCach
		if !side.epoch {
			kc = redis.NewKeyCache(e.client, e.keys, nil)
		} else {
			waitEpoch(t, e)
		}
		keys := soakKeySet(t, e, *soakKeys)
		wg.Go(func() {
			requests, took := soakRun(t, kc, keys, *soak)
			results[i] = result{requests: requests, lookups: e.keys.lookups.Load(), took: took}
		})
	}
	wg.Wait()
	for i, side := range sides {
		r := results[i]
		again := r.lookups - int64(*soakKeys) // after each key's first lookup
		t.Logf("%-24s %d keys, %v: %d requests, %d store lookups (%.3f per request); after each key's first: %d, %.2f per key and minute",
			side.name, *soakKeys, r.took.Round(time.Second), r.requests, r.lookups, float64(r.lookups)/float64(r.requests),
			again, float64(again)/float64(*soakKeys)/r.took.Minutes())
	}
}

// soakKeySet stores n keys for the env's user.
func soakKeySet(t *testing.T, e *env, n int) []account.APIKey {
	t.Helper()
	keys := make([]account.APIKey, n)
	for i := range keys {
		secret := sha256.Sum256([]byte(rand.Text()))
		keys[i] = account.APIKey{ID: uuid.Must(uuid.NewV7()), UserID: e.user.ID, Prefix: rand.Text()[:12],
			Hash: secret[:], CreatedAt: now()}
		if err := e.keys.CreateKey(context.Background(), keys[i]); err != nil {
			t.Fatalf("CreateKey() error = %v", err)
		}
	}
	return keys
}

// soakRun looks the keys up in turn, each about once a second, for d, from
// 8 goroutines; it returns the number of lookups and how long they took.
func soakRun(t *testing.T, kc *redis.KeyCache, keys []account.APIKey, d time.Duration) (int64, time.Duration) {
	const workers = 8
	var requests atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			gap := time.Second * workers / time.Duration(len(keys))
			next := time.Now()
			for i := w; time.Since(start) < d; i += workers {
				if _, err := kc.KeyByPrefix(context.Background(), keys[i%len(keys)].Prefix); err != nil {
					t.Errorf("KeyByPrefix() error = %v", err)
					return
				}
				requests.Add(1)
				next = next.Add(gap)
				time.Sleep(time.Until(next))
			}
		})
	}
	wg.Wait()
	return requests.Load(), time.Since(start)
}
