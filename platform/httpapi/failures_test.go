package httpapi_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/platform/httpapi"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/platform/redis/redistest"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
)

// countingKeys counts the key lookups that reach PostgreSQL.
type countingKeys struct {
	account.Store
	lookups atomic.Int64
}

func (k *countingKeys) KeyByPrefix(ctx context.Context, prefix string) (account.KeyOwner, error) {
	k.lookups.Add(1)
	return k.Store.KeyByPrefix(ctx, prefix)
}

// guardedAPI is the API as pms wires it: keys in PostgreSQL behind the
// Redis key cache, and failed authentications limited per client address
// in Redis, allowing burst at once and one a second.
type guardedAPI struct {
	*api
	keys *countingKeys
}

func newGuardedAPI(t *testing.T, redisAddr string, burst int) *guardedAPI {
	t.Helper()
	db := postgrestest.New(t)
	rcfg := redis.DefaultConfig()
	// Time enough on a loaded machine: a Redis call that times out fails
	// open, and a lookup it would have spared reaches PostgreSQL.
	rcfg.Addr, rcfg.Timeout = redisAddr, time.Second
	rc, err := redis.New(rcfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	failures, err := redis.NewLimiter(rc, redis.LimitConfig{ReadRate: 1000, ReadBurst: 1000, WriteRate: 1000, WriteBurst: 1000,
		AuthFailuresPerMinute: 60, AuthFailureBurst: burst})
	if err != nil {
		t.Fatal(err)
	}
	keys := &countingKeys{Store: postgres.NewAccountStore(db)}
	store, err := postgres.NewProductStore(db, postgres.DefaultIdempotencyConfig())
	if err != nil {
		t.Fatal(err)
	}
	svc := product.NewService(store, imageTasks, product.Policy{})
	auth := account.NewService(redis.NewKeyCache(rc, keys, nil))
	s, err := httpapi.New(testConfig(), httpapi.API{Products: svc, Auth: auth, Failures: failures}, prometheus.NewRegistry(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	a := &api{srv: specServer(t, s.Handler()), server: s, svc: svc, auth: auth}
	a.key = a.newKey(t, false)
	return &guardedAPI{api: a, keys: keys}
}

// clientAt returns a client whose connections come from a loopback address
// of its own (all of 127.0.0.0/8 is loopback): another client address
// without leaving the machine, and a failure budget in the shared Redis
// that no other test spends.
func clientAt(t *testing.T) (*http.Client, string) {
	t.Helper()
	ip := net.IPv4(127, byte(1+mrand.IntN(254)), byte(mrand.IntN(256)), byte(1+mrand.IntN(254)))
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, ip.String()
}

// madeUpKey returns a well-formed API key that names no key.
func madeUpKey() string {
	b := make([]byte, 9+32)
	_, _ = rand.Read(b)
	return "pms_" + base64.RawURLEncoding.EncodeToString(b[:9]) + "_" + base64.RawURLEncoding.EncodeToString(b[9:])
}

// outcome is the status of one request and its Retry-After.
type outcome struct {
	status     int
	retryAfter string
	err        error
}

// getMe sends GET /api/v1/me with key and any header pairs through c; it
// may run on any goroutine.
func (a *api) getMe(c *http.Client, key string, header ...string) outcome {
	req, err := http.NewRequest(http.MethodGet, a.srv.URL+"/api/v1/me", nil)
	if err != nil {
		return outcome{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	res.Body.Close()
	return outcome{status: res.StatusCode, retryAfter: res.Header.Get("Retry-After")}
}

// TestFailedAuthenticationsLimitedPerAddress: an address sending made-up
// keys, concurrently and with forged X-Forwarded-For headers, gets key
// lookups up to its budget and 429s after; a client at another address,
// and one that authenticated before from the same address, carry on.
func TestFailedAuthenticationsLimitedPerAddress(t *testing.T) {
	t.Parallel()
	const burst = 5
	g := newGuardedAPI(t, redistest.Addr(t), burst)
	attacker, attackerIP := clientAt(t)
	// A client behind the same NAT, seen before the attack.
	neighbour := g.newKey(t, false)
	if o := g.getMe(attacker, neighbour); o.status != http.StatusOK {
		t.Fatalf("GET /api/v1/me with a valid key from %s = %+v, want 200", attackerIP, o)
	}

	before := g.keys.lookups.Load()
	start := time.Now()
	// The first failure marks the address; from then on each made-up key
	// takes from its budget before being looked up. (A process lets the
	// requests that arrive together before an address's first failure
	// through unreserved, once.)
	if o := g.getMe(attacker, madeUpKey()); o.status != http.StatusUnauthorized {
		t.Fatalf("first made-up key from %s = %+v, want 401", attackerIP, o)
	}
	const workers, each = 8, 25
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				o := g.getMe(attacker, madeUpKey(), "X-Forwarded-For", net.IPv4(203, 0, 113, byte(mrand.IntN(256))).String())
				mu.Lock()
				counts[o.status]++
				mu.Unlock()
				if o.status == http.StatusTooManyRequests {
					if n, err := strconv.Atoi(o.retryAfter); err != nil || n < 1 {
						t.Errorf("429 with Retry-After %q, want whole seconds >= 1", o.retryAfter)
					}
				} else if o.status != http.StatusUnauthorized {
					t.Errorf("made-up key = %+v, want 401 or 429", o)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	lookups := g.keys.lookups.Load() - before
	t.Logf("%d made-up keys from %s in %v: %v; %d key lookups", 1+workers*each, attackerIP, elapsed.Round(time.Millisecond), counts, lookups)
	// The budget refills by one a second meanwhile.
	most := int64(burst) + int64(elapsed/time.Second) + 1
	if lookups > most || lookups != int64(counts[http.StatusUnauthorized]+1) {
		t.Errorf("%d made-up keys from one address cost %d key lookups (%d answered 401), want at most %d, one per 401",
			1+workers*each, lookups, counts[http.StatusUnauthorized]+1, most)
	}
	if counts[http.StatusTooManyRequests] < workers*each-int(most) {
		t.Errorf("%d of %d made-up keys past the budget answered 429, want the rest of them", counts[http.StatusTooManyRequests], workers*each)
	}

	// Still blocked; the neighbour's known key works from there, and a
	// valid key from another address, new to this process, too.
	// (On a loaded machine the attack can outlast a second, and the token
	// refilled meanwhile is spent first: a 401 then, within the budget.)
	o := g.getMe(attacker, madeUpKey())
	if o.status == http.StatusUnauthorized && g.keys.lookups.Load()-before <= int64(burst)+int64(time.Since(start)/time.Second)+1 {
		o = g.getMe(attacker, madeUpKey())
	}
	if o.status != http.StatusTooManyRequests {
		t.Errorf("another made-up key from %s = %+v, want 429", attackerIP, o)
	}
	if o := g.getMe(attacker, neighbour); o.status != http.StatusOK {
		t.Errorf("GET /api/v1/me with the neighbour's key from the blocked %s = %+v, want 200", attackerIP, o)
	}
	before = g.keys.lookups.Load()
	other, otherIP := clientAt(t)
	if o := g.getMe(other, g.newKey(t, false)); o.status != http.StatusOK {
		t.Errorf("GET /api/v1/me with a valid key from %s = %+v, want 200", otherIP, o)
	}
	if o := g.getMe(other, madeUpKey()); o.status != http.StatusUnauthorized {
		t.Errorf("a made-up key from %s, which has its own budget = %+v, want 401", otherIP, o)
	}
	if n := g.keys.lookups.Load() - before; n != 2 {
		t.Errorf("a valid key new to the process and a made-up key from another address cost %d key lookups, want 2", n)
	}
}

// TestRepeatedUnknownKeyCostsOneLookup: one made-up key sent again and
// again is looked up in PostgreSQL once, then known to be unknown.
func TestRepeatedUnknownKeyCostsOneLookup(t *testing.T) {
	t.Parallel()
	g := newGuardedAPI(t, redistest.Addr(t), 100)
	c, _ := clientAt(t)
	key := madeUpKey()
	before := g.keys.lookups.Load()
	for i := range 50 {
		if o := g.getMe(c, key); o.status != http.StatusUnauthorized {
			t.Fatalf("made-up key #%d = %+v, want 401", i+1, o)
		}
	}
	if n := g.keys.lookups.Load() - before; n != 1 {
		t.Errorf("one made-up key sent 50 times cost %d key lookups, want 1", n)
	}
}

// TestBusyClientNeverLimitedByFailures: with a budget of one failure, a
// client with a valid key making many concurrent requests from an address
// that has used it up is never refused.
func TestBusyClientNeverLimitedByFailures(t *testing.T) {
	t.Parallel()
	g := newGuardedAPI(t, redistest.Addr(t), 1)
	c, ip := clientAt(t)
	var wg sync.WaitGroup
	for round := range 2 {
		for range 8 {
			wg.Go(func() {
				for range 25 {
					if o := g.getMe(c, g.key); o.status != http.StatusOK {
						t.Errorf("round %d: GET /api/v1/me with a valid key from %s = %+v, want 200", round, ip, o)
					}
				}
			})
		}
		wg.Wait()
		// Use up the address's budget before the second round.
		g.getMe(c, madeUpKey())
		if o := g.getMe(c, madeUpKey()); round == 0 && o.status != http.StatusTooManyRequests {
			t.Errorf("a second made-up key with a budget of 1 = %+v, want 429", o)
		}
	}
}

// TestFailureLimitFailsOpen: with Redis gone, made-up keys are refused
// with 401 as usual, never 429, and valid keys work.
func TestFailureLimitFailsOpen(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	g := newGuardedAPI(t, rs.Addr(), 2)
	c, _ := clientAt(t)
	rs.Stop()
	for i := range 10 {
		if o := g.getMe(c, madeUpKey()); o.status != http.StatusUnauthorized {
			t.Errorf("made-up key #%d with Redis down = %+v, want 401", i+1, o)
		}
	}
	if o := g.getMe(c, g.key); o.status != http.StatusOK {
		t.Errorf("valid key with Redis down = %+v, want 200", o)
	}
}

func TestAddressKey(t *testing.T) {
	for ip, want := range map[string]string{
		"203.0.113.7":          "203.0.113.7",
		"::ffff:203.0.113.7":   "203.0.113.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2::9":      "2001:db8:1:2::/64",
		"::1":                  "::/64",
	} {
		if got := httpapi.AddressKey(ip); got != want {
			t.Errorf("AddressKey(%q) = %q, want %q", ip, got, want)
		}
	}
}
