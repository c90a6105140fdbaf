package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
)

// BenchmarkListPage measures the list handler's own work for a page of 20
// products, as make load's list target asks for it: from the rows
// PostgreSQL sends through to the response body (the middleware and the
// authentication are left out). ns/op includes the wait for PostgreSQL;
// cpu-ns/op is the CPU this process spent per page (getrusage), which
// leaves PostgreSQL's out. "variants=1" is make load's seeded image (one
// variant, no source facts); "ladder" an image as the worker makes it with
// the default presets and ladder: ten variants, source facts, a placeholder.
func BenchmarkListPage(b *testing.B) {
	db := postgrestest.New(b)
	for _, shape := range []struct {
		name   string
		result imaging.Result
	}{
		{"variants=1", oneVariant()},
		{"ladder", defaultLadder()},
	} {
		b.Run(shape.name, func(b *testing.B) {
			s, caller, target := newListBench(b, db, shape.result)
			w := &discardResponse{header: http.Header{}}
			req := httptest.NewRequest(http.MethodGet, target, nil)
			serve := func() {
				clear(w.header)
				w.status, w.n = 0, 0
				c := &requestContext{Context: s.echo.NewContext(req, w), caller: caller}
				if err := s.listProducts(c); err != nil || w.status != http.StatusOK {
					b.Fatalf("list: %v, status %d", err, w.status)
				}
			}
			serve() // warm the connection and the prepared plans
			b.ReportAllocs()
			b.ResetTimer()
			before := cpuTime(b)
			for b.Loop() {
				serve()
			}
			b.ReportMetric(float64((cpuTime(b)-before).Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(w.n), "bytes/page")
		})
	}
}

// newListBench makes a user with 21 products priced between 10 and 50,
// each with one image that res made ready, and returns a server on db, the
// user as a caller, and the list request's target.
func newListBench(b *testing.B, db *postgres.DB, res imaging.Result) (*Server, account.Caller, string) {
	store, err := postgres.NewProductStore(db, postgres.DefaultIdempotencyConfig())
	if err != nil {
		b.Fatal(err)
	}
	svc := product.NewService(store, imaging.NewTaskMessages("pms.image-tasks"), product.Policy{})
	auth := account.NewService(postgres.NewAccountStore(db))
	u, err := auth.CreateUser(b.Context(), "bench-"+uuid.NewString()+"@example.test", "Bench", false)
	if err != nil {
		b.Fatalf("CreateUser: %v", err)
	}
	caller := account.Caller{UserID: u.ID}
	results := postgres.NewImageResults(db)
	for i := range product.DefaultLimit + 1 {
		d := product.Draft{UserID: u.ID, Name: fmt.Sprintf("Schreibtischlampe «Nº %d» & <Zubehör>", i),
			Description: "A desk lamp with a \"warm\" light.\nDimmable.", Price: product.Price(1000 + i*150),
			ImageURLs: []string{fmt.Sprintf("https://images.example/%d/lamp.jpg", i)}}
		p, _, err := svc.Create(b.Context(), caller, d, "")
		if err != nil {
			b.Fatalf("Create: %v", err)
		}
		task := imaging.Task{ProductID: p.ID, ImageID: p.Images[0].ID, SourceURL: p.Images[0].SourceURL}
		if _, err := results.Begin(b.Context(), task); err != nil {
			b.Fatalf("Begin: %v", err)
		}
		if err := results.Ready(b.Context(), task, withURLs(res, p.ID)); err != nil {
			b.Fatalf("Ready: %v", err)
		}
	}
	s, err := New(Config{Addr: "127.0.0.1:0", ReadHeaderTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: 2 * time.Second,
		IdleTimeout: time.Second, RequestTimeout: time.Second, ShutdownTimeout: time.Second, MaxBodyBytes: 1 << 20, MaxHeaderBytes: 64 << 10},
		API{Products: svc, Auth: auth}, prometheus.NewRegistry(), zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	return s, caller, "/api/v1/products?user_id=" + u.ID.String() + "&min_price=10&max_price=50&limit=20"
}

// oneVariant is the image make load seeds: a main JPEG, nothing else.
func oneVariant() imaging.Result {
	return imaging.Result{Variants: []imaging.Variant{{Name: "main", Width: 1600, Height: 1200, Bytes: 183211, Format: "jpeg"}}}
}

// defaultLadder is an image as the default presets and ladder make it.
func defaultLadder() imaging.Result {
	res := imaging.Result{
		Variants: []imaging.Variant{
			{Name: "main", Width: 1600, Height: 1200, Bytes: 183211, Format: "webp"},
			{Name: "thumbnail", Width: 320, Height: 240, Bytes: 9876, Format: "webp"},
		},
		Source: imaging.SourceFacts{Width: 4032, Height: 3024, Format: "jpeg", Bytes: 3_456_789,
			ThumbHash: "1QcSHQRnh493V4dIh4eXh1h4kJUI", Color: "#5a7d3c"},
		PresetSet: "bench",
	}
	for _, f := range imaging.DefaultLadder().Formats {
		for _, w := range imaging.DefaultLadder().Widths {
			res.Variants = append(res.Variants, imaging.Variant{Name: imaging.RungName(f, w), Width: w, Height: w * 3 / 4, Bytes: int64(w * 90), Format: f})
		}
	}
	return res
}

// withURLs gives res's variants URLs of the product's, as the worker's are.
func withURLs(res imaging.Result, id uuid.UUID) imaging.Result {
	vs := make([]imaging.Variant, len(res.Variants))
	for i, v := range res.Variants {
		v.URL = fmt.Sprintf("https://cdn.example/products/%s/%s-%x.%s", id, v.Name, i*7919, v.Format)
		vs[i] = v
	}
	res.Variants = vs
	return res
}

// cpuTime returns the CPU time this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// discardResponse is a ResponseWriter that keeps only the status and the
// body's length.
type discardResponse struct {
	header http.Header
	status int
	n      int
}

func (d *discardResponse) Header() http.Header { return d.header }

func (d *discardResponse) WriteHeader(code int) { d.status = code }

func (d *discardResponse) Write(p []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	d.n += len(p)
	return len(p), nil
}
