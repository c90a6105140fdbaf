package httpapi_test

import (
	"database/sql"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/httpapi"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
)

// openPool opens a small pool on the test database at another address
// and/or under an application_name, closed when the test ends.
func openPool(t *testing.T, hostPort, appName string) *postgres.DB {
	t.Helper()
	u, err := url.Parse(postgrestest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	if hostPort != "" {
		u.Host = hostPort
	}
	q := u.Query()
	if appName != "" {
		q.Set("application_name", appName)
	}
	u.RawQuery = q.Encode()
	db, err := postgres.Open(postgres.Config{URL: u.String(), MaxOpenConns: 5, MaxIdleConns: 5, ConnectTimeout: time.Second, IOTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("open pool on %s: %v", u.Redacted(), err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// wantUnavailable checks that r is a 503 telling the client to retry.
func wantUnavailable(t *testing.T, r response) {
	t.Helper()
	e := wantError(t, r, http.StatusServiceUnavailable, "")
	if e.Code != "unavailable" && e.Code != "timeout" {
		t.Errorf("%v: code %q, want unavailable or timeout", r, e.Code)
	}
	if r.header.Get("Retry-After") == "" {
		t.Errorf("%v: no Retry-After", r)
	}
}

// productCalls are one call of every product endpoint.
func productCalls(user, id uuid.UUID) []struct{ method, path, body string } {
	return []struct{ method, path, body string }{
		{http.MethodPost, "/api/v1/products", validDraft(user).String()},
		{http.MethodGet, "/api/v1/products", ""},
		{http.MethodGet, listPath("user_id", user.String(), "sort", "-price"), ""},
		{http.MethodGet, productURL(id), ""},
		{http.MethodPatch, productURL(id), `{"product_name":"Renamed"}`},
		{http.MethodDelete, productURL(id), ""},
	}
}

func TestDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1 of the loopback interface.
	db := openPool(t, "127.0.0.1:1", "")
	a := newAPIOn(t, db, testConfig(), httpapi.Check{Name: "postgres", Critical: true, Run: db.Ping})

	for _, c := range productCalls(uuid.New(), uuid.New()) {
		start := time.Now()
		r := a.do(t, c.method, c.path, c.body)
		wantUnavailable(t, r)
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("%v took %v, want a prompt answer", r, took)
		}
	}
	r := a.do(t, http.MethodPost, "/api/v1/products", validDraft(uuid.New()).String(), "Idempotency-Key", "k")
	wantUnavailable(t, r)

	// Without the database no key can be checked: still 503, never 401.
	wantUnavailable(t, a.do(t, http.MethodPost, "/api/v1/products", `{}`))
	// Requests that need no database still work.
	if r := a.do(t, http.MethodGet, "/health", ""); r.status != http.StatusOK {
		t.Errorf("%v, want 200: liveness does not depend on the database", r)
	}
	if r := a.doOps(t, "/ready"); r.status != http.StatusServiceUnavailable {
		t.Errorf("%v, want 503", r)
	}
}

func TestDatabaseOutageAndRecovery(t *testing.T) {
	t.Parallel()
	target, err := url.Parse(postgrestest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newProxy(t, target.Host)
	db := openPool(t, proxy.addr, "")
	a := newAPIOn(t, db, testConfig(), httpapi.Check{Name: "postgres", Critical: true, Run: db.Ping})
	user := a.newUser(t)
	p := a.create(t, validDraft(user))
	a.get(t, p.ID) // leaves an idle connection in the pool

	proxy.cut()
	for _, c := range productCalls(user, p.ID) {
		wantUnavailable(t, a.do(t, c.method, c.path, c.body))
	}
	if r := a.doOps(t, "/ready"); r.status != http.StatusServiceUnavailable {
		t.Errorf("%v during the outage, want 503", r)
	}

	proxy.restore(t)
	var last response
	if !eventually(10*time.Second, func() bool {
		last = a.do(t, http.MethodGet, productURL(p.ID), "")
		if last.status != http.StatusOK {
			wantUnavailable(t, last)
		}
		return last.status == http.StatusOK
	}) {
		t.Fatalf("%v 10s after the database came back, want 200", last)
	}
	a.create(t, validDraft(user))
	if r := a.patch(t, p.ID, `{"product_name":"After the outage"}`, `"1"`); r.status != http.StatusOK {
		t.Errorf("%v after recovery, want 200", r)
	}
	// /ready may repeat its last report for up to a second.
	if !eventually(3*time.Second, func() bool { last = a.doOps(t, "/ready"); return last.status == http.StatusOK }) {
		t.Errorf("%v 3s after recovery, want 200", last)
	}
}

func TestDatabaseConnectionsTerminated(t *testing.T) {
	t.Parallel()
	appName := "pms_terminate_" + uuid.NewString()[:8]
	db := openPool(t, "", appName)
	a := newAPIOn(t, db, testConfig())
	user := a.newUser(t)
	p := a.create(t, validDraft(user))
	// Fill the pool with idle connections.
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() { a.do(t, http.MethodGet, listPath("user_id", user.String()), "") })
	}
	wg.Wait()

	admin, err := sql.Open("postgres", postgrestest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	// Only this pool's connections: other tests share the database.
	var killed int
	if err := admin.QueryRowContext(t.Context(), `
SELECT count(*) FROM (
    SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()
) AS t`, appName).Scan(&killed); err != nil {
		t.Fatalf("terminate the pool's connections: %v", err)
	}
	if killed == 0 {
		t.Fatalf("terminated no connections named %s, want the pool's idle ones", appName)
	}

	// Each request may meet a dead connection (503) until the pool has
	// dropped them; none may fail otherwise.
	ok, failed := 0, 0
	for i := 0; i < killed+5 && ok < 3; i++ {
		r := a.do(t, http.MethodGet, productURL(p.ID), "")
		if r.status == http.StatusOK {
			ok++
		} else {
			failed++
			wantUnavailable(t, r)
		}
	}
	t.Logf("terminated %d connections; then %d requests answered 503 before 3 answered 200", killed, failed)
	if ok < 3 {
		t.Errorf("after terminating %d pooled connections, GET %s succeeded %d times in %d tries, want the pool to recover", killed, productURL(p.ID), ok, killed+5)
	}
	a.create(t, validDraft(user))
}

func TestDatabaseStalled(t *testing.T) {
	t.Parallel()
	target, err := url.Parse(postgrestest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newProxy(t, target.Host)
	proxy.stalled.Store(true) // before any connection is made
	db := openPool(t, proxy.addr, "")
	cfg := testConfig()
	cfg.RequestTimeout = 2 * time.Second
	a := newAPIOn(t, db, cfg)

	for _, c := range productCalls(uuid.New(), uuid.New())[:2] {
		start := time.Now()
		r := a.do(t, c.method, c.path, c.body)
		wantUnavailable(t, r)
		if took := time.Since(start); took > 4*time.Second {
			t.Errorf("%v took %v, want the 1s connect timeout to bound it", r, took)
		}
	}

	proxy.stalled.Store(false)
	if !eventually(10*time.Second, func() bool {
		if a.key == unknownKey { // made while the database was stalled
			a.key = a.newKey(t, true)
		}
		return a.do(t, http.MethodGet, "/api/v1/products?limit=1", "").status == http.StatusOK
	}) {
		t.Errorf("GET /api/v1/products not 200 within 10s of the database answering again")
	}
}

// proxy forwards loopback TCP connections to target. It can cut every
// connection and refuse new ones, listen again on the same address, or hold
// traffic back, to act out a database that goes away, returns or hangs.
type proxy struct {
	target  string
	addr    string
	stalled atomic.Bool // hold traffic back while set

	mu    sync.Mutex
	ln    net.Listener // nil while cut
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	p.serve(ln)
	t.Cleanup(func() {
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !p.track(c) {
				c.Close()
				continue
			}
			p.wg.Go(func() { p.forward(c) })
		}
	})
}

// track records open connections so cut can close them; it refuses while cut.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *proxy) open(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns[c]
}

func (p *proxy) forward(client net.Conn) {
	defer client.Close()
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer server.Close()
	if !p.track(server) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { p.pipe(server, client); done <- struct{}{} }()
	go func() { p.pipe(client, server); done <- struct{}{} }()
	<-done
	client.Close()
	server.Close()
	<-done
}

func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for n > 0 && p.stalled.Load() {
			if !p.open(src) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut closes the listener and every connection.
func (p *proxy) cut() {
	p.mu.Lock()
	ln, conns := p.ln, p.conns
	p.ln, p.conns = nil, map[net.Conn]bool{}
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for c := range conns {
		c.Close()
	}
}

// restore listens again on the proxy's address.
func (p *proxy) restore(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// TestDatabaseHangsMidQuery: a server that stops answering on open
// connections costs a request at most postgres.io_timeout, then a 503.
func TestDatabaseHangsMidQuery(t *testing.T) {
	t.Parallel()
	target, err := url.Parse(postgrestest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newProxy(t, target.Host)
	db := openPool(t, proxy.addr, "") // io_timeout 2s
	cfg := testConfig()
	cfg.RequestTimeout = time.Second
	a := newAPIOn(t, db, cfg)
	if r := a.do(t, http.MethodGet, "/api/v1/products?limit=1", ""); r.status != http.StatusOK {
		t.Fatalf("%v, want 200 before the hang", r)
	}
	proxy.stalled.Store(true)
	start := time.Now()
	wantUnavailable(t, a.do(t, http.MethodGet, "/api/v1/products?limit=1", ""))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a request to a hung database took %v, want about the 2s io_timeout", took)
	}
	proxy.stalled.Store(false)
	if !eventually(10*time.Second, func() bool {
		return a.do(t, http.MethodGet, "/api/v1/products?limit=1", "").status == http.StatusOK
	}) {
		t.Errorf("GET /api/v1/products not 200 within 10s of the database answering again")
	}
}
