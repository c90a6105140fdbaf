package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/platform/httpapi"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
)

func TestHealth(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	r := a.do(t, http.MethodGet, "/health", "")
	if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"status":"ok"}` {
		t.Errorf(`%v, want 200 {"status":"ok"}`, r)
	}
}

func TestReady(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	ok := httpapi.Check{Name: "postgres", Critical: true, Run: db.Ping}
	failing := func(name string, critical bool) httpapi.Check {
		return httpapi.Check{Name: name, Critical: critical, Run: func(context.Context) error { return errors.New(name + " is down") }}
	}
	hanging := httpapi.Check{Name: "hanging", Critical: true, Run: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	panicking := httpapi.Check{Name: "panics", Critical: true, Run: func(context.Context) error { panic("check bug") }}
	tests := []struct {
		name   string
		checks []httpapi.Check
		status int
		want   string // status member
		report map[string]string
	}{
		{"all pass", []httpapi.Check{ok}, http.StatusOK, "ok", map[string]string{"postgres": "ok"}},
		{"no checks", nil, http.StatusOK, "ok", map[string]string{}},
		{"critical fails", []httpapi.Check{ok, failing("kafka", true)}, http.StatusServiceUnavailable, "unavailable",
			map[string]string{"postgres": "ok", "kafka": "failed"}},
		{"non-critical fails", []httpapi.Check{ok, failing("redis", false)}, http.StatusOK, "degraded",
			map[string]string{"postgres": "ok", "redis": "failed"}},
		{"both fail", []httpapi.Check{failing("redis", false), failing("kafka", true)}, http.StatusServiceUnavailable, "unavailable",
			map[string]string{"redis": "failed", "kafka": "failed"}},
		{"critical hangs", []httpapi.Check{ok, hanging}, http.StatusServiceUnavailable, "unavailable",
			map[string]string{"postgres": "ok", "hanging": "timeout"}},
		{"critical panics", []httpapi.Check{ok, panicking}, http.StatusServiceUnavailable, "unavailable",
			map[string]string{"postgres": "ok", "panics": "failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newAPIOn(t, db, testConfig(), tt.checks...)
			start := time.Now()
			r := a.doOps(t, "/ready")
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("%v took %v, want the check timeout to bound it", r, took)
			}
			if strings.Contains(string(r.body), "down") || strings.Contains(string(r.body), "check bug") {
				t.Errorf("%v: the body tells the checks' errors, want only ok, failed or timeout", r)
			}
			var got struct {
				Status string            `json:"status"`
				Checks map[string]string `json:"checks"`
			}
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatalf("%v: %v", r, err)
			}
			if r.status != tt.status || got.Status != tt.want {
				t.Errorf("%v, want %d with status %q", r, tt.status, tt.want)
			}
			if diff := cmp.Diff(tt.report, got.Checks); diff != "" {
				t.Errorf("%v: checks (-want +got):\n%s", r, diff)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	generated := regexp.MustCompile(`^[0-9a-f]{32}$`)
	tests := []struct {
		name, sent string
		kept       bool
	}{
		{"kept", "req-123_abc.DEF:42", true},
		{"128 characters kept", strings.Repeat("r", 128), true},
		{"printable punctuation kept", `!"#$%&'()*+,-./~`, true},
		{"none", omit, false},
		{"empty", "", false},
		{"129 characters", strings.Repeat("r", 129), false},
		{"inner space", "req 1", false},
		{"tab", "req\t1", false},
		{"non-ASCII", "réq", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, path := range []string{"/health", "/api/v1/products/not-a-uuid"} {
				r := a.do(t, http.MethodGet, path, "", httpapi.HeaderRequestID, tt.sent)
				got := r.header.Get(httpapi.HeaderRequestID)
				switch {
				case tt.kept && got != tt.sent:
					t.Errorf("%v: X-Request-ID %q, want %q echoed", r, got, tt.sent)
				case !tt.kept && !generated.MatchString(got):
					t.Errorf("%v: X-Request-ID %q, want a generated 32-hex-digit id", r, got)
				}
				if r.status >= 400 {
					// wantError checks that the envelope carries the header's id.
					wantError(t, r, http.StatusBadRequest, "validation_failed", "id")
				}
			}
		})
	}
	t.Run("generated ids differ", func(t *testing.T) {
		t.Parallel()
		first := a.do(t, http.MethodGet, "/health", "").header.Get(httpapi.HeaderRequestID)
		second := a.do(t, http.MethodGet, "/health", "").header.Get(httpapi.HeaderRequestID)
		if first == second {
			t.Errorf("two GET /health without X-Request-ID both got id %q, want different ids", first)
		}
	})
}

func TestRouting(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	id := "/api/v1/products/" + "0190f1c4-0000-7000-8000-000000000000"
	tests := []struct {
		method, path, body string
		status             int
		code, allow        string
	}{
		{http.MethodGet, "/", "", http.StatusNotFound, "not_found", ""},
		{http.MethodGet, "/nope", "", http.StatusNotFound, "not_found", ""},
		{http.MethodGet, "/api/v1/product", "", http.StatusNotFound, "not_found", ""},
		{http.MethodGet, "/api/v2/products", "", http.StatusNotFound, "not_found", ""},
		{http.MethodPost, "/api/v1/nope", "{}", http.StatusNotFound, "not_found", ""},
		{http.MethodDelete, "/api/v1/products", "", http.StatusMethodNotAllowed, "method_not_allowed", "GET"},
		{http.MethodPut, id, "{}", http.StatusMethodNotAllowed, "method_not_allowed", "PATCH"},
		{http.MethodPost, id, "{}", http.StatusMethodNotAllowed, "method_not_allowed", "DELETE"},
		{http.MethodPatch, "/api/v1/products", "{}", http.StatusMethodNotAllowed, "method_not_allowed", "POST"},
		{http.MethodDelete, "/health", "", http.StatusMethodNotAllowed, "method_not_allowed", "GET"},
		{http.MethodPost, "/openapi.yaml", "{}", http.StatusMethodNotAllowed, "method_not_allowed", "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			r := a.do(t, tt.method, tt.path, tt.body)
			wantError(t, r, tt.status, tt.code)
			if allow := r.header.Get("Allow"); !strings.Contains(allow, tt.allow) {
				t.Errorf("%v: Allow %q, want it to name %s", r, allow, tt.allow)
			}
			// The router's own answers pass the common middleware too.
			if id := r.header.Get("X-Request-ID"); id == "" || !strings.Contains(string(r.body), id) {
				t.Errorf("%v: X-Request-ID %q, want one, named in the body", r, id)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	a.do(t, http.MethodGet, "/health", "")
	// Made-up methods share one label, so a client cannot add series.
	for _, m := range []string{"BREW", "PROPFIND"} {
		a.do(t, m, "/health", "")
	}
	r := a.doOps(t, "/metrics")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `pms_http_requests_total{method="GET",route="/health",status="200"} 1`) {
		t.Errorf("%v, want 200 counting the GET /health", r)
	}
	if want := `pms_http_requests_total{method="other",route="/health",status="405"} 2`; !strings.Contains(string(r.body), want) {
		t.Errorf("metrics do not count the made-up methods as %s:\n%s", want, r.body)
	}
	if strings.Contains(string(r.body), `method="BREW"`) {
		t.Error(`metrics have a series for method="BREW"`)
	}
}

// runServer starts s.Run on a free loopback port. It returns the bound
// address, a function that ends Run's context, and Run's result.
func runServer(t *testing.T, s *httpapi.Server) (addr string, cancel func(), done <-chan error) {
	t.Helper()
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	addr = s.Addr()
	if addr == "" || strings.HasSuffix(addr, ":0") {
		t.Fatalf("Addr() = %q after Listen, want the bound address", addr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	t.Cleanup(cancel)
	return addr, cancel, errc
}

// waitRun waits for Run's result, failing the test after d.
func waitRun(t *testing.T, done <-chan error, d time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("Run did not return within %v of its context ending", d)
		return nil
	}
}

// newBareServer returns a server whose product endpoints are never called.
func newBareServer(t *testing.T, cfg httpapi.Config) *httpapi.Server {
	t.Helper()
	s, err := httpapi.NewOps(cfg, nil, prometheus.NewRegistry(), zerolog.Nop())
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	return s
}

// refused reports whether a new connection to addr is refused.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return true
}

// eventually polls cond every 10ms until it holds or d has passed.
func eventually(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func TestRunStopsWithIdleConnections(t *testing.T) {
	t.Parallel()
	s := newBareServer(t, testConfig())
	if got := s.Addr(); got != "" {
		t.Errorf("Addr() = %q before Listen, want \"\"", got)
	}
	addr, cancel, done := runServer(t, s)

	// A keep-alive connection stays open and idle after this request.
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	res, err := client.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /health = %d, want 200", res.StatusCode)
	}

	start := time.Now()
	cancel()
	// The shutdown timeout is 5s: an idle connection must not hold Run up.
	if err := waitRun(t, done, 2*time.Second); err != nil {
		t.Errorf("Run after its context ended = %v, want nil", err)
	}
	t.Logf("Run returned %v after its context ended", time.Since(start))
	if !refused(addr) {
		t.Errorf("dial %s after Run returned: connected, want refused", addr)
	}
	if res, err := client.Get("http://" + addr + "/health"); err == nil {
		res.Body.Close()
		t.Errorf("GET /health after shutdown = %d, want an error", res.StatusCode)
	}
}

// slowRoute adds GET /test/slow, which answers "finished" once release is
// closed, and returns a channel closed when the handler has started.
func slowRoute(s *httpapi.Server, release <-chan struct{}) (started <-chan struct{}) {
	ch := make(chan struct{})
	httpapi.AddRoute(s, http.MethodGet, "/test/slow", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(ch)
		<-release
		_, _ = w.Write([]byte("finished"))
	}))
	return ch
}

type result struct {
	status int
	body   string
	err    error
}

// getAsync sends GET url on its own connection and delivers the result.
func getAsync(t *testing.T, url string) <-chan result {
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	out := make(chan result, 1)
	go func() {
		res, err := client.Get(url)
		if err != nil {
			out <- result{err: err}
			return
		}
		defer res.Body.Close()
		var b strings.Builder
		_, err = io.Copy(&b, res.Body)
		out <- result{res.StatusCode, b.String(), err}
	}()
	return out
}

func TestRunFinishesRequestsInFlight(t *testing.T) {
	t.Parallel()
	s := newBareServer(t, testConfig())
	release := make(chan struct{})
	started := slowRoute(s, release)
	addr, cancel, done := runServer(t, s)
	resc := getAsync(t, "http://"+addr+"/test/slow")
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("GET /test/slow: the handler did not start within 5s")
	}

	cancel()
	if !eventually(2*time.Second, func() bool { return refused(addr) }) {
		t.Errorf("dial %s after Run's context ended: still accepted after 2s, want refused", addr)
	}
	select {
	case err := <-done:
		t.Errorf("Run returned %v while a request was in flight, want it to wait", err)
	case <-time.After(100 * time.Millisecond):
	}

	close(release)
	select {
	case res := <-resc:
		if res.err != nil || res.status != http.StatusOK || res.body != "finished" {
			t.Errorf("GET /test/slow during shutdown = %d %q (%v), want 200 \"finished\"", res.status, res.body, res.err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("GET /test/slow: no response within 5s of the handler finishing")
	}
	if err := waitRun(t, done, 5*time.Second); err != nil {
		t.Errorf("Run after the last request finished = %v, want nil", err)
	}
}

func TestRunShutdownTimeout(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.ShutdownTimeout = 200 * time.Millisecond
	s := newBareServer(t, cfg)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	started := slowRoute(s, release)
	addr, cancel, done := runServer(t, s)
	getAsync(t, "http://"+addr+"/test/slow")
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("GET /test/slow: the handler did not start within 5s")
	}
	cancel()
	err := waitRun(t, done, 5*time.Second)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run with a request outlasting the %v shutdown timeout = %v, want a deadline error", cfg.ShutdownTimeout, err)
	}
}

func TestRunAddressInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig()
	cfg.Addr = ln.Addr().String()
	s := newBareServer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Run(ctx); err == nil || !strings.Contains(err.Error(), cfg.Addr) {
		t.Errorf("Run on %s, which is taken = %v, want an error naming the address", cfg.Addr, err)
	}
}
