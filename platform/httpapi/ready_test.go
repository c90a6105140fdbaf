package httpapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/platform/httpapi"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
)

// countedCheck is a readiness check that counts its runs.
func countedCheck(name string, critical bool, runs *atomic.Int64, run func(context.Context) error) httpapi.Check {
	return httpapi.Check{Name: name, Critical: critical, Run: func(ctx context.Context) error {
		runs.Add(1)
		return run(ctx)
	}}
}

// TestReadyFloodSparesTheAPI floods the operator listener's /ready from
// several goroutines while API requests run on a PostgreSQL pool of two
// connections: the checks run about once a second however many ask, every
// API request succeeds, the failing check's detail reaches the log once
// and the caller never, and the public listener has no /ready or /metrics.
func TestReadyFloodSparesTheAPI(t *testing.T) {
	t.Parallel()
	db, err := postgres.Open(postgres.Config{URL: postgrestest.URL(t), MaxOpenConns: 2, MaxIdleConns: 2,
		ConnectTimeout: time.Second, IOTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	m, err := db.Migrator()
	if err != nil {
		t.Fatal(err)
	}
	var pings, schemas, redisRuns atomic.Int64
	const secret = "hunter2@10.20.30.40"
	checks := []httpapi.Check{
		countedCheck("postgres", true, &pings, db.Ping),
		countedCheck("schema", true, &schemas, m.CheckSchema),
		countedCheck("redis", false, &redisRuns, func(context.Context) error {
			return errors.New("dial redis://pms:" + secret + ":6379: connection refused")
		}),
	}
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	store, err := postgres.NewProductStore(db, postgres.DefaultIdempotencyConfig())
	if err != nil {
		t.Fatal(err)
	}
	svc := product.NewService(store, imageTasks, product.Policy{})
	auth := account.NewService(postgres.NewAccountStore(db))
	public, err := httpapi.New(testConfig(), httpapi.API{Products: svc, Auth: auth}, reg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ops, err := httpapi.NewOps(testConfig(), checks, reg, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	a := &api{srv: specServer(t, public.Handler()), ops: httptest.NewServer(ops.Handler()), server: public, svc: svc, auth: auth}
	t.Cleanup(a.ops.Close)
	a.key = a.newKey(t, false)

	// About 4000 requests over 2.5s, so that reports expire meanwhile.
	const flooders, maxPerFlooder, pause, apiClients, maxPerClient = 8, 500, 4 * time.Millisecond, 4, 200
	floodFor := 2500 * time.Millisecond
	var readyOK, readyOther, apiOK atomic.Int64
	var apiFailures sync.Map // status → a response, for the failure message
	start := time.Now()
	deadline := start.Add(floodFor)
	var wg sync.WaitGroup
	for range flooders {
		wg.Go(func() {
			for i := 0; i < maxPerFlooder && time.Now().Before(deadline); i++ {
				res, err := a.ops.Client().Get(a.ops.URL + "/ready")
				if err != nil {
					readyOther.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					readyOK.Add(1)
				} else {
					readyOther.Add(1)
				}
				time.Sleep(pause)
			}
		})
	}
	for range apiClients {
		wg.Go(func() {
			for i := 0; i < maxPerClient && time.Now().Before(deadline); i++ {
				status, err := getWithKey(a.srv.Client(), a.srv.URL+"/api/v1/products?limit=5", a.key)
				if err == nil && status == http.StatusOK {
					apiOK.Add(1)
				} else {
					apiFailures.Store(status, err)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%v: %d /ready answered 200, %d otherwise; %d API requests succeeded; checks ran %d, %d and %d times",
		elapsed.Round(time.Millisecond), readyOK.Load(), readyOther.Load(), apiOK.Load(), pings.Load(), schemas.Load(), redisRuns.Load())

	apiFailures.Range(func(status, err any) bool {
		t.Errorf("an API request during the /ready flood = %v (error %v), want 200", status, err)
		return true
	})
	if readyOK.Load() < flooders || readyOther.Load() != 0 {
		t.Errorf("/ready during the flood: %d answered 200 and %d otherwise, want all 200 (degraded)", readyOK.Load(), readyOther.Load())
	}
	// A report is reused for a second after it was made.
	most := int64(elapsed/time.Second) + 2
	for name, runs := range map[string]int64{"postgres": pings.Load(), "schema": schemas.Load(), "redis": redisRuns.Load()} {
		if runs < 1 || runs > most {
			t.Errorf("check %s ran %d times for %d requests in %v, want 1 to %d (once a second)", name, runs, readyOK.Load(), elapsed, most)
		}
	}

	r := a.doOps(t, "/ready")
	if !strings.Contains(string(r.body), `"redis":"failed"`) || strings.Contains(string(r.body), secret) ||
		strings.Contains(string(r.body), "refused") {
		t.Errorf("%v, want redis reported as failed, without its error", r)
	}
	if n := strings.Count(logs.String(), "readiness check failed"); n != 1 || !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("the log has %d lines for the failing check in %v, want 1 with its error (one per 10s):\n%s", n, elapsed, logs)
	}

	// The public listener serves neither.
	for _, path := range []string{"/ready", "/metrics"} {
		wantError(t, a.do(t, http.MethodGet, path, ""), http.StatusNotFound, "not_found")
	}
	if r := a.do(t, http.MethodGet, "/health", ""); r.status != http.StatusOK {
		t.Errorf("%v, want 200: load balancers probe the public listener", r)
	}
}

// TestReadyNoticesRecovery: a failing check that passes again is reported
// ok within a second and logged as recovered.
func TestReadyNoticesRecovery(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	down.Store(true)
	var runs atomic.Int64
	check := countedCheck("kafka", true, &runs, func(context.Context) error {
		if down.Load() {
			return errors.New("kafka metadata: broker 10.0.0.9:9092 refused")
		}
		return nil
	})
	logs := &syncBuffer{}
	ops, err := httpapi.NewOps(testConfig(), []httpapi.Check{check}, prometheus.NewRegistry(), zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	a := &api{ops: httptest.NewServer(ops.Handler())}
	t.Cleanup(a.ops.Close)
	if r := a.doOps(t, "/ready"); r.status != http.StatusServiceUnavailable || strings.Contains(string(r.body), "10.0.0.9") {
		t.Fatalf("%v, want 503 without the check's error", r)
	}
	down.Store(false)
	var last response
	start := time.Now()
	if !eventually(3*time.Second, func() bool { last = a.doOps(t, "/ready"); return last.status == http.StatusOK }) {
		t.Fatalf("%v 3s after the check passes again, want 200", last)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("/ready said 200 %v after the check passed again, want within about a second", took)
	}
	if !strings.Contains(logs.String(), "readiness check passes again") {
		t.Errorf("log:\n%s\nwant a line saying kafka passes again", logs)
	}
}

// getWithKey sends GET url with the API key and returns the status; it may
// run on any goroutine.
func getWithKey(c *http.Client, url, key string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, err = io.Copy(io.Discard, res.Body)
	return res.StatusCode, err
}

// syncBuffer collects log lines from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
