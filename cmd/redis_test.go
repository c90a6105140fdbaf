package cmd

import (
	"context"
	"database/sql"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/platform/redis/redistest"
)

// createEmpty makes a product without images and returns its id.
func createEmpty(t *testing.T, s *stack) string {
	t.Helper()
	var p e2eProduct
	if code := s.do(t, http.MethodPost, "/api/v1/products", `{"product_name":"Cached lamp","product_price":5}`, "", &p); code != http.StatusCreated {
		t.Fatalf("POST = %d, want 201", code)
	}
	return p.ID
}

// TestRedisDownServesFromPostgres kills Redis under a running pms: every
// endpoint still answers without a 5xx, /ready says degraded, and once Redis
// is back the cache and rate limits work again by themselves.
func TestRedisDownServesFromPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs pms all")
	}
	t.Parallel()
	rs := redistest.Start(t)
	s, _ := startAll(t, map[string]string{"PMS_REDIS_ADDR": rs.Addr()})
	id := createEmpty(t, s)
	if code := s.do(t, http.MethodGet, "/api/v1/products/"+id, "", "", nil); code != http.StatusOK {
		t.Fatalf("GET = %d", code)
	}

	rs.Stop()
	for i := range 20 {
		start := time.Now()
		for _, c := range []struct{ method, path, body string }{
			{http.MethodGet, "/api/v1/products/" + id, ""},
			{http.MethodGet, "/api/v1/products", ""},
			{http.MethodPatch, "/api/v1/products/" + id, `{"product_price":6}`},
			{http.MethodGet, "/api/v1/me", ""},
			{http.MethodPost, "/api/v1/products", `{"product_name":"While Redis is down","product_price":1}`},
		} {
			if code := s.do(t, c.method, c.path, c.body, "", nil); code >= 500 {
				t.Fatalf("round %d: %s %s = %d with Redis down, want no 5xx", i, c.method, c.path, code)
			}
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("round %d of 5 requests took %v with Redis down, want about the 50ms Redis timeout at most", i, took)
		}
	}
	res, err := http.Get(s.ops + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("/ready = %d with Redis down, want 200 (degraded)", res.StatusCode)
	}

	rs.Restart()
	deadline := time.Now().Add(15 * time.Second)
	for !cached(t, rs, id, s) {
		if time.Now().After(deadline) {
			t.Fatal("the product was not cached again within 15s of Redis coming back")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cached reads the product through the API and reports whether Redis then
// holds it.
func cached(t *testing.T, rs *redistest.Server, id string, s *stack) bool {
	t.Helper()
	if code := s.do(t, http.MethodGet, "/api/v1/products/"+id, "", "", nil); code != http.StatusOK {
		t.Fatalf("GET = %d", code)
	}
	ok, err := rs.Exists("pms:product:{" + id + "}")
	return err == nil && ok
}

// TestRateLimitAgainstRedis: the limit is shared through Redis and resets.
func TestRateLimitAgainstRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs pms all")
	}
	t.Parallel()
	s, _ := startAll(t, map[string]string{"PMS_RATE_LIMIT_READ_RATE": "1", "PMS_RATE_LIMIT_READ_BURST": "3"})
	codes := make([]int, 5)
	for i := range codes {
		codes[i] = s.do(t, http.MethodGet, "/api/v1/me", "", "", nil)
	}
	if codes[0] != 200 || codes[4] != http.StatusTooManyRequests {
		t.Fatalf("5 quick GETs with a burst of 3 = %v, want 200s then 429", codes)
	}
	time.Sleep(1100 * time.Millisecond) // one second refills one request at 1/s
	if code := s.do(t, http.MethodGet, "/api/v1/me", "", "", nil); code != http.StatusOK {
		t.Errorf("GET after the limit refilled = %d, want 200", code)
	}
}

// TestRevokedKeyStopsOnEveryReplica: two pms processes share Redis and
// PostgreSQL; a key revoked through one is refused by both within a second.
func TestRevokedKeyStopsOnEveryReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs pms all twice")
	}
	t.Parallel()
	shared := map[string]string{"PMS_POSTGRES_URL": postgrestest.Private(t)}
	a, _ := startAll(t, shared)
	b, _ := startAll(t, shared)
	b.key = a.key
	for _, s := range []*stack{a, b} {
		if code := s.do(t, http.MethodGet, "/api/v1/me", "", "", nil); code != http.StatusOK {
			t.Fatalf("GET /me before revoking = %d", code) // and now the key is cached on both
		}
	}
	auth := testAccounts(t, a.app.cfg)
	keys, err := auth.ListKeys(context.Background(), userIDOf(t, a))
	if err != nil || len(keys) != 1 || !strings.HasPrefix(a.key, "pms_"+keys[0].Prefix+"_") {
		t.Fatalf("ListKeys = %+v, %v", keys, err)
	}
	if _, err := auth.RevokeKey(context.Background(), keys[0].ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for _, s := range []*stack{a, b} {
		for s.do(t, http.MethodGet, "/api/v1/me", "", "", nil) != http.StatusUnauthorized {
			if time.Now().After(deadline) {
				t.Fatalf("%s still accepts the revoked key a second later", s.base)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestKeyRevokedInSQLStopsOnEveryReplica: a key revoked by hand in SQL,
// behind both processes' caches (no Redis delete, no announcement), is
// refused by both once they read the key epoch the revocation moved: within
// about two seconds, not redis.key_ttl (10 minutes).
func TestKeyRevokedInSQLStopsOnEveryReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs pms all twice")
	}
	t.Parallel()
	dbURL := postgrestest.Private(t)
	shared := map[string]string{"PMS_POSTGRES_URL": dbURL}
	a, _ := startAll(t, shared)
	b, _ := startAll(t, shared)
	b.key = a.key
	for _, s := range []*stack{a, b} {
		for range 3 {
			if code := s.do(t, http.MethodGet, "/api/v1/me", "", "", nil); code != http.StatusOK {
				t.Fatalf("GET /me before revoking = %d", code) // and now the key is cached on both
			}
		}
	}
	raw, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	prefix := strings.TrimPrefix(a.key, "pms_")[:12] // base64url: the prefix may hold a _ itself
	res, err := raw.ExecContext(t.Context(), `UPDATE api_keys SET revoked_at = now() WHERE prefix = $1`, prefix)
	if err != nil {
		t.Fatalf("revoke in SQL: %v", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("revoke in SQL changed %d rows (%v), want 1", n, err)
	}
	revoked := time.Now()
	deadline := revoked.Add(10 * time.Second)
	for _, s := range []*stack{a, b} {
		for s.do(t, http.MethodGet, "/api/v1/me", "", "", nil) != http.StatusUnauthorized {
			if time.Now().After(deadline) {
				t.Fatalf("%s still accepts the key revoked in SQL 10s later", s.base)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("a key revoked in SQL was refused by both processes after %v", time.Since(revoked).Round(time.Millisecond))
}

func userIDOf(t *testing.T, s *stack) uuid.UUID {
	t.Helper()
	var me struct {
		UserID uuid.UUID `json:"user_id"`
	}
	if code := s.do(t, http.MethodGet, "/api/v1/me", "", "", &me); code != http.StatusOK {
		t.Fatalf("GET /me = %d", code)
	}
	return me.UserID
}
