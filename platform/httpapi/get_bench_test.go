package httpapi

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/platform/redis/redistest"
	"github.com/pms-dev/pms/platform/telemetry"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
)

var benchUsers = flag.Int("bench.users", 2000, "BenchmarkCachedGet: users, each with a key and a product, that the GETs rotate over")

// BenchmarkCachedGet serves GET /api/v1/products/{id} through the whole
// handler chain as pms serve wires it, with its production settings: the
// key cache and the product cache in Redis with near copies, the rate
// limits at their defaults, the failed-authentication limiter, tracing as
// telemetry.Setup makes it without an endpoint, and one JSON log line per
// request (to a file). Requests rotate over -bench.users
// users, each with their own key and product, as make load's do. "echo" is
// the ceiling make load compares with: a bare Echo handler answering the
// same bytes. ns/op includes the Redis round trips (a lease of rate-limit
// tokens every twentieth request per key); cpu-ns/op is this process's CPU per
// request, background goroutines and the garbage collector included.
func BenchmarkCachedGet(b *testing.B) {
	s, reqs, cacheMetrics := newGetBench(b, *benchUsers)
	w := &discardResponse{header: http.Header{}}
	serve := func(h http.Handler, req *http.Request) {
		clear(w.header)
		w.status, w.n = 0, 0
		r := *req // as net/http makes one per request
		h.ServeHTTP(w, &r)
		if w.status != http.StatusOK {
			b.Fatalf("GET %s: status %d", req.URL, w.status)
		}
	}
	// Near copies are kept once the invalidations subscription is up.
	for deadline := time.Now().Add(10 * time.Second); nearHits(b, cacheMetrics) == 0; {
		if time.Now().After(deadline) {
			b.Fatal("no near copy was read within 10 s")
		}
		serve(s.Handler(), reqs[0])
		time.Sleep(time.Millisecond)
	}
	for range 2 { // fill the caches, the near copies and the leases
		for _, req := range reqs {
			serve(s.Handler(), req)
		}
	}
	body := captureBody(b, s.Handler(), reqs[0])
	bare := echo.New()
	bare.GET("/api/v1/products/:id", func(c echo.Context) error { return c.JSONBlob(http.StatusOK, body) })

	for _, h := range []struct {
		name    string
		handler http.Handler
	}{{"pms", s.Handler()}, {"echo", bare}} {
		b.Run(h.name, func(b *testing.B) {
			b.ReportAllocs()
			hits, before := nearHits(b, cacheMetrics), cpuTime(b)
			i := 0
			for b.Loop() {
				serve(h.handler, reqs[i%len(reqs)])
				i++
			}
			b.ReportMetric(float64((cpuTime(b)-before).Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(w.n), "bytes/resp")
			if h.name == "pms" {
				b.ReportMetric((nearHits(b, cacheMetrics)-hits)/float64(b.N), "near-hits/op")
			}
		})
	}
}

// newGetBench makes users users, each with an API key and a product with a
// pending image (as make load creates them), and returns the API on them,
// wired as pms serve wires it, one GET request per user, and the registry
// of the cache's metrics.
func newGetBench(b *testing.B, users int) (*Server, []*http.Request, *prometheus.Registry) {
	db := postgrestest.New(b)
	rcfg := redis.DefaultConfig()
	rcfg.Addr = redistest.Addr(b)
	rc, err := redis.New(rcfg, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rc.Close() })
	cacheMetrics := prometheus.NewRegistry()
	cacheMetrics.MustRegister(rc)
	keys := postgres.NewAccountStore(db)
	auth := account.NewService(redis.NewKeyCache(rc, keys, keys))
	b.Cleanup(auth.Wait)
	store, err := postgres.NewProductStore(db, postgres.DefaultIdempotencyConfig())
	if err != nil {
		b.Fatal(err)
	}
	cached := redis.NewProductCache(rc, store)
	svc := product.NewService(cached, imaging.NewTaskMessages("pms.image-tasks"), product.Policy{})
	limiter, err := redis.NewLimiter(rc, redis.DefaultLimitConfig())
	if err != nil {
		b.Fatal(err)
	}
	perKey := func(ctx context.Context, key string, write bool) RateLimit {
		d, _ := limiter.Allow(ctx, key, write)
		return RateLimit(d)
	}
	shutdown, err := telemetry.Setup(telemetry.DefaultConfig(), "pms-bench", "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = shutdown(b.Context()) })
	s, err := New(DefaultConfig(), API{Products: svc, Auth: auth, Limiter: perKey, Failures: limiter, Changes: cached},
		prometheus.NewRegistry(), productionLogger(b))
	if err != nil {
		b.Fatal(err)
	}

	reqs := make([]*http.Request, users)
	g, ctx := errgroup.WithContext(b.Context())
	g.SetLimit(8)
	for i := range users {
		g.Go(func() error {
			u, err := auth.CreateUser(ctx, fmt.Sprintf("get-%d-%s@example.test", i, uuid.NewString()), "Load", false)
			if err != nil {
				return err
			}
			key, _, err := auth.CreateKey(ctx, u.ID)
			if err != nil {
				return err
			}
			p, _, err := svc.Create(ctx, account.Caller{UserID: u.ID}, product.Draft{UserID: u.ID, Name: "Cached lamp",
				Description: "Read by make load", Price: 1250, ImageURLs: []string{"http://127.0.0.1:9/lamp.jpg"}}, "")
			if err != nil {
				return err
			}
			req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:8080"+productPath(p.ID), nil)
			if err != nil {
				return err
			}
			req.RemoteAddr = "127.0.0.1:40000"
			req.Header.Set("Authorization", "Bearer "+key)
			reqs[i] = req
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatalf("make users, keys and products: %v", err)
	}
	return s, reqs, cacheMetrics
}

// productionLogger returns a logger set up as pms's (cmd's newLogger, JSON,
// buffered as log.flush_interval's default) that writes to a file, as make
// load's pms serve does.
func productionLogger(b *testing.B) zerolog.Logger {
	f, err := os.Create(filepath.Join(b.TempDir(), "pms.log"))
	if err != nil {
		b.Fatal(err)
	}
	out := telemetry.NewLogBuffer(f, 64<<10, 100*time.Millisecond)
	b.Cleanup(func() { out.Close(); f.Close() })
	format, unit, integer := zerolog.TimeFieldFormat, zerolog.DurationFieldUnit, zerolog.DurationFieldInteger
	b.Cleanup(func() {
		zerolog.TimeFieldFormat, zerolog.DurationFieldUnit, zerolog.DurationFieldInteger = format, unit, integer
	})
	return telemetry.Logger(zerolog.New(out), zerolog.InfoLevel).With().Str("component", "http").Logger()
}

// nearHits returns how many product reads a near copy answered, from the
// cache metrics gathered from reg.
func nearHits(b *testing.B, reg *prometheus.Registry) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "pms_cache_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["cache"] == "product" && labels["result"] == "near_hit" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// captureBody returns the body h answers req with.
func captureBody(b *testing.B, h http.Handler, req *http.Request) []byte {
	rec := &recordResponse{header: http.Header{}}
	r := *req
	h.ServeHTTP(rec, &r)
	if rec.status != http.StatusOK {
		b.Fatalf("GET %s: status %d", req.URL, rec.status)
	}
	return rec.body
}

// recordResponse is a ResponseWriter that keeps the status and the body.
type recordResponse struct {
	header http.Header
	status int
	body   []byte
}

func (r *recordResponse) Header() http.Header { return r.header }

func (r *recordResponse) WriteHeader(code int) { r.status = code }

func (r *recordResponse) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body = append(r.body, p...)
	return len(p), nil
}
