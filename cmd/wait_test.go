package cmd

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/platform/redis/redistest"
)

// startServe runs the real `pms serve` binary on the rig and Redis and
// returns it as a stack, once it is ready.
func startServe(t *testing.T, bin string, env map[string]string, key string) *stack {
	t.Helper()
	addr, ops := freeAddr(t), freeAddr(t)
	env = copyEnv(env)
	env["PMS_HTTP_ADDR"], env["PMS_OPS_ADDR"] = addr, ops
	p := startProcess(t, bin, env, "serve", "--config", filepath.Join("..", "config.yaml"))
	s := &stack{base: "http://" + addr, ops: "http://" + ops, key: key, logs: p.out}
	done := make(chan error, 1)
	go func() { <-p.done; done <- p.err }()
	s.waitReady(t, done)
	return s
}

func copyEnv(env map[string]string) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		out[k] = v
	}
	return out
}

// waited is what one GET ?wait= came back with, and when.
type waited struct {
	p    e2eProduct
	code int
	at   time.Time
}

// getWait GETs the product with ?wait=d in the background.
func getWait(t *testing.T, s *stack, id string, d time.Duration) <-chan waited {
	ch := make(chan waited, 1)
	go func() {
		var p e2eProduct
		code := s.do(t, http.MethodGet, fmt.Sprintf("/api/v1/products/%s?wait=%s", id, d), "", "", &p)
		ch <- waited{p, code, time.Now()}
	}()
	return ch
}

// TestWaitAcrossTwoServes runs two real `pms serve` processes on one
// database and Redis, and records image results as the worker does
// (PostgreSQL, then the cache invalidation announced on Redis) from this
// process. A GET ?wait=20s on each serve returns as soon as the product's
// last image settled, not before and not 20s later; a GET ?wait=2s on a
// product whose image never settles returns on time, still pending.
func TestWaitAcrossTwoServes(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: builds and runs pms serve twice")
	}
	t.Parallel()
	bin := buildPMS(t)
	r := newRig(t)
	env := r.env(map[string]string{"PMS_REDIS_ADDR": redistest.Addr(t), "PMS_LOG_LEVEL": "debug", "PMS_KAFKA_RETRY_BACKOFF": "50ms"})
	cfg := DefaultConfig()
	cfg.Postgres.URL, cfg.Redis.Addr = r.dbURL, env["PMS_REDIS_ADDR"]
	key, err := newTestKey(testAccounts(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	a, b := startServe(t, bin, env, key), startServe(t, bin, env, key)

	// The worker's side: the stores it records results with.
	app := testApp(t, cfg)
	db, err := app.openPool()
	if err != nil {
		t.Fatal(err)
	}
	cache, err := app.openRedis()
	if err != nil {
		t.Fatal(err)
	}
	results := redis.NewResultsCache(cache, postgres.NewImageResults(db))
	settle := func(p e2eProduct, i int) {
		t.Helper()
		id, _ := uuid.Parse(p.ID)
		task := imaging.Task{ProductID: id, ImageID: imageID(t, r, p.ID, i), SourceURL: p.ProductImages[i]}
		if _, err := results.Begin(context.Background(), task); err != nil {
			t.Fatalf("Begin image %d: %v", i, err)
		}
		if err := results.Ready(context.Background(), task, imaging.Result{Variants: []imaging.Variant{
			{Name: "main", URL: "https://cdn.test/x.jpg", Width: 10, Height: 10, Bytes: 100, Format: "jpeg"}}}); err != nil {
			t.Fatalf("Ready image %d: %v", i, err)
		}
	}

	id := createProduct(t, a, "wait-early", "https://img.test/a.jpg", "https://img.test/b.jpg")
	p := getProduct(t, a, id)
	start := time.Now()
	onA, onB := getWait(t, a, id, 20*time.Second), getWait(t, b, id, 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	settle(p, 0)
	select {
	case w := <-onA:
		t.Fatalf("GET ?wait on serve A returned after one of two images settled: %d %+v", w.code, w.p.Images)
	case w := <-onB:
		t.Fatalf("GET ?wait on serve B returned after one of two images settled: %d %+v", w.code, w.p.Images)
	case <-time.After(time.Second):
	}
	settle(p, 1)
	last := time.Now()
	for name, ch := range map[string]<-chan waited{"A": onA, "B": onB} {
		w := <-ch
		if w.code != http.StatusOK || !settled(w.p) || len(w.p.CompressedProductImages) != 2 {
			t.Errorf("GET ?wait=20s on serve %s = %d, images %+v; want 200 with both ready", name, w.code, w.p.Images)
		}
		// Generous for a loaded machine, and far below the 20s asked for.
		if d := w.at.Sub(last); d > 3*time.Second {
			t.Errorf("GET ?wait=20s on serve %s returned %v after the last image settled, want at once", name, d)
		}
		t.Logf("serve %s: returned %v after the last image settled, %v after the request", name, w.at.Sub(last).Round(time.Millisecond), w.at.Sub(start).Round(time.Millisecond))
	}

	never := createProduct(t, b, "wait-on-time", "https://img.test/never.jpg")
	begin := time.Now()
	w := <-getWait(t, a, never, 2*time.Second)
	took := w.at.Sub(begin)
	if w.code != http.StatusOK || len(w.p.Images) != 1 || w.p.Images[0].Status != "pending" {
		t.Errorf("GET ?wait=2s of an image that never settles = %d %+v, want 200 with it pending", w.code, w.p.Images)
	}
	if took < 2*time.Second || took > 5*time.Second {
		t.Errorf("GET ?wait=2s of an image that never settles took %v, want 2s (at most 5s on a loaded machine)", took)
	}

	if code := a.do(t, http.MethodGet, "/api/v1/products/"+id+"?wait=1h", "", "", nil); code != http.StatusBadRequest {
		t.Errorf("GET ?wait=1h = %d, want 400", code)
	}
}

// imageID returns the id of the product's image at position i.
func imageID(t *testing.T, r *rig, productID string, i int) uuid.UUID {
	t.Helper()
	db, err := sql.Open("postgres", r.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id uuid.UUID
	if err := db.QueryRow(`SELECT id FROM product_images WHERE product_id = $1 AND position = $2`, productID, i).Scan(&id); err != nil {
		t.Fatalf("image %d of %s: %v", i, productID, err)
	}
	return id
}
