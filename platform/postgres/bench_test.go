package postgres_test

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
)

var benchProducts = flag.Int("bench.products", 1_000_000, "products in BenchmarkProductList's database")

// BenchmarkProductList measures single requests through product.Service and
// postgres.ProductStore against a seeded catalogue (see BENCHMARKS.md). Each
// sub-benchmark reports the median and 99th percentile of one request's
// latency; parameters are random, from a fixed seed.
func BenchmarkProductList(b *testing.B) {
	env := newBenchEnv(b, *benchProducts)
	for _, sc := range env.scenarios() {
		b.Run(sc.name, func(b *testing.B) { measureLatency(b, sc.next) })
	}
}

// benchRequest prepares one call from r; only the call is timed.
type benchRequest func(r *rand.Rand) func(context.Context) error

type benchScenario struct {
	name string
	next benchRequest
}

type benchEnv struct {
	svc   *product.Service
	admin account.Caller // sees the whole catalogue
	ids   []uuid.UUID    // a sample of live products
	users []uuid.UUID
}

func newBenchEnv(b *testing.B, n int) *benchEnv {
	dbURL := benchDatabase(b, n)
	ctx := context.Background()
	db, err := postgres.Open(postgres.Config{URL: dbURL, MaxOpenConns: 4, MaxIdleConns: 4, ConnectTimeout: 5 * time.Second, IOTimeout: 30 * time.Second})
	if err != nil {
		b.Fatalf("open: %v", err)
	}
	b.Cleanup(func() { db.Close() })
	raw, err := sql.Open("postgres", dbURL)
	if err != nil {
		b.Fatalf("open: %v", err)
	}
	defer raw.Close()
	env := &benchEnv{svc: product.NewService(newProductStore(b, db, postgres.DefaultIdempotencyConfig()), imageTasks, product.Policy{})}
	pct := math.Min(100, 1e6/float64(n)) // about 10,000 ids
	env.ids = selectIDs(b, raw, fmt.Sprintf(`SELECT id FROM products TABLESAMPLE BERNOULLI (%g) REPEATABLE (7)
		WHERE deleted_at IS NULL ORDER BY id`, pct))
	env.users = selectIDs(b, raw, `SELECT id FROM users ORDER BY id`)
	if len(env.ids) == 0 || len(env.users) == 0 {
		b.Fatalf("database holds no products or users")
	}
	env.admin = account.Caller{UserID: env.users[0], Admin: true}
	// Read every table and index into the page cache so that all scenarios,
	// and runs that reuse the database after a restart, start warm.
	if _, err := raw.ExecContext(ctx, `CREATE EXTENSION IF NOT EXISTS pg_prewarm`); err != nil {
		b.Fatalf("warm up: %v", err)
	}
	if _, err := raw.ExecContext(ctx, `SELECT pg_prewarm(oid, 'read') FROM pg_class
		WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'i')`); err != nil {
		b.Fatalf("warm up: %v", err)
	}
	logMatches(b, raw)
	return env
}

func selectIDs(b *testing.B, db *sql.DB, query string) []uuid.UUID {
	rows, err := db.Query(query)
	if err != nil {
		b.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			b.Fatalf("scan id: %v", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		b.Fatalf("%s: %v", query, err)
	}
	return ids
}

// logMatches records how many products the search terms match.
func logMatches(b *testing.B, db *sql.DB) {
	for _, set := range []struct {
		name  string
		words []string
	}{{"common", commonWords}, {"medium", mediumWords}, {"rare", rareWords}} {
		lo, hi := math.MaxInt, 0
		for _, w := range set.words {
			var n int
			err := db.QueryRow(`SELECT count(*) FROM products WHERE product_name ILIKE $1 AND deleted_at IS NULL`, "%"+w+"%").Scan(&n)
			if err != nil {
				b.Fatalf("count %q: %v", w, err)
			}
			lo, hi = min(lo, n), max(hi, n)
		}
		b.Logf("%s words (%d) each match %d to %d products", set.name, len(set.words), lo, hi)
	}
}

func (e *benchEnv) scenarios() []benchScenario {
	get := func(r *rand.Rand) func(context.Context) error {
		id := e.ids[r.IntN(len(e.ids))]
		return func(ctx context.Context) error {
			_, err := e.svc.Get(ctx, e.admin, id)
			return err
		}
	}
	return []benchScenario{
		{"get_by_id", get},
		{"sort=created_at", e.list(func(*rand.Rand, *product.Filter) {})},
		{"sort=-created_at", e.list(sorted(product.SortCreatedDesc))},
		{"user,sort=-created_at", e.list(sorted(product.SortCreatedDesc), e.user)},
		{"price,sort=price", e.list(sorted(product.SortPrice), priceRange)},
		{"price,sort=-created_at", e.list(sorted(product.SortCreatedDesc), priceRange)},
		{"name=common,sort=-created_at", e.list(sorted(product.SortCreatedDesc), nameFrom(commonWords))},
		{"name=common,sort=name", e.list(sorted(product.SortName), nameFrom(commonWords))},
		{"name=medium,sort=-created_at", e.list(sorted(product.SortCreatedDesc), nameFrom(mediumWords))},
		{"name=medium,sort=name", e.list(sorted(product.SortName), nameFrom(mediumWords))},
		{"name=medium,sort=-price", e.list(sorted(product.SortPriceDesc), nameFrom(mediumWords))},
		{"name=rare,sort=-created_at", e.list(sorted(product.SortCreatedDesc), nameFrom(rareWords))},
		{"name=rare,sort=name", e.list(sorted(product.SortName), nameFrom(rareWords))},
		{"user+price,sort=created_at", e.list(e.user, priceRange)},
		{"user+name=medium,sort=-created_at", e.list(sorted(product.SortCreatedDesc), e.user, nameFrom(mediumWords))},
		{"pages_1-50,sort=any", e.walk(50)},
		{"limit=100,sort=-created_at", e.list(sorted(product.SortCreatedDesc), func(_ *rand.Rand, f *product.Filter) {
			f.Limit = product.MaxLimit
		})},
	}
}

// list returns requests for one page of the list that edits make of the
// default filter (sort created_at, 20 items).
func (e *benchEnv) list(edits ...func(*rand.Rand, *product.Filter)) benchRequest {
	return func(r *rand.Rand) func(context.Context) error {
		f := product.Filter{Sort: product.SortCreated, Limit: product.DefaultLimit}
		for _, edit := range edits {
			edit(r, &f)
		}
		return func(ctx context.Context) error {
			_, err := e.svc.List(ctx, e.admin, f)
			return err
		}
	}
}

// walk returns requests that follow next_cursor through the first pages of
// lists in a random order, then start another list.
func (e *benchEnv) walk(pages int) benchRequest {
	sorts := []product.Sort{product.SortCreated, product.SortCreatedDesc, product.SortPrice, product.SortPriceDesc, product.SortName}
	var f product.Filter
	page := pages
	return func(r *rand.Rand) func(context.Context) error {
		if page == pages || f.After == nil && page > 0 {
			f, page = product.Filter{Sort: sorts[r.IntN(len(sorts))], Limit: product.DefaultLimit}, 0
		}
		return func(ctx context.Context) error {
			p, err := e.svc.List(ctx, e.admin, f)
			f.After = p.Next
			page++
			return err
		}
	}
}

func sorted(s product.Sort) func(*rand.Rand, *product.Filter) {
	return func(_ *rand.Rand, f *product.Filter) { f.Sort = s }
}

func (e *benchEnv) user(r *rand.Rand, f *product.Filter) {
	id := e.users[r.IntN(len(e.users))]
	f.UserID = &id
}

// priceRange picks a band from a minimum spread log-uniformly over 1–5,000
// to 1.2–4 times that.
func priceRange(r *rand.Rand, f *product.Filter) {
	lo := math.Exp(r.Float64() * math.Log(5000))
	minP, maxP := product.Price(lo*100), product.Price(lo*(1.2+2.8*r.Float64())*100)
	f.MinPrice, f.MaxPrice = &minP, &maxP
}

func nameFrom(words []string) func(*rand.Rand, *product.Filter) {
	return func(r *rand.Rand, f *product.Filter) { f.Name = words[r.IntN(len(words))] }
}

// measureLatency times b.N requests one at a time after a short warm-up and reports
// the median and 99th percentile latency in milliseconds.
func measureLatency(b *testing.B, next benchRequest) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(42, 42))
	for range 20 {
		if err := next(r)(ctx); err != nil {
			b.Fatalf("warm-up request: %v", err)
		}
	}
	var took []time.Duration
	stall, start := cpuStall(), time.Now()
	for b.Loop() {
		call := next(r)
		start := time.Now()
		err := call(ctx)
		took = append(took, time.Since(start))
		if err != nil {
			b.Fatalf("request %d: %v", len(took), err)
		}
	}
	if s := cpuStall(); s >= 0 && stall >= 0 {
		b.ReportMetric(100*float64(s-stall)/float64(time.Since(start)), "cpu-stall-%")
	}
	slices.Sort(took)
	b.ReportMetric(quantileMS(took, 0.50), "p50-ms")
	b.ReportMetric(quantileMS(took, 0.99), "p99-ms")
}

// cpuStall returns how long, in all, some task on the machine has waited for
// a CPU (Linux pressure stall information), or -1 where that is unknown. The
// CPUs are shared, so this tells a slow query from a busy neighbour.
func cpuStall() time.Duration {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return -1
	}
	var avg10, avg60, avg300 float64
	var total int64
	if _, err := fmt.Sscanf(string(b), "some avg10=%f avg60=%f avg300=%f total=%d", &avg10, &avg60, &avg300, &total); err != nil {
		return -1
	}
	return time.Duration(total) * time.Microsecond
}

// quantileMS returns the q-quantile of sorted durations (nearest rank) in
// milliseconds.
func quantileMS(sorted []time.Duration, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return float64(sorted[max(i, 0)]) / float64(time.Millisecond)
}
