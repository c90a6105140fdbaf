package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/platform/redis/redistest"
	"github.com/pms-dev/pms/product"
)

func TestProductCacheHitMissAndInvalidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Addr(t), nil)
	ctx := context.Background()
	created := e.newProduct(t, "https://example.com/a.jpg")

	want, err := e.store.Store.Get(ctx, created.ID) // what the database holds
	if err != nil {
		t.Fatalf("store Get() error = %v", err)
	}
	for i := range 2 {
		got, err := e.cache.Get(ctx, created.ID)
		if err != nil {
			t.Fatalf("Get() #%d error = %v", i+1, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Get() #%d mismatch (-store +cache):\n%s", i+1, diff)
		}
	}
	if n := e.store.gets.Load(); n != 1 {
		t.Errorf("two Gets read the store %d times, want 1 (miss, then hit)", n)
	}
	if v := e.cachedVersion(t, created.ID); v != 1 {
		t.Errorf("cached version = %d, want 1", v)
	}

	updated := e.rename(t, created.ID)
	if v := e.cachedVersion(t, created.ID); v != 0 {
		t.Errorf("after Update the cache holds version %d, want no value", v)
	}
	got, err := e.cache.Get(ctx, created.ID)
	if err != nil || got.Version != updated.Version || got.Name != updated.Name {
		t.Errorf("Get() after Update = version %d %q, %v; want version %d %q", got.Version, got.Name, err,
			updated.Version, updated.Name)
	}
	if n := e.store.gets.Load(); n != 2 {
		t.Errorf("store reads after Update and Get = %d, want 2", n)
	}

	if err := e.cache.Delete(ctx, created.ID, 0, nil); err != nil {
		t.Fatalf("Delete() error = %v", err)
	}
	for i := range 2 {
		if _, err := e.cache.Get(ctx, created.ID); !errors.Is(err, product.ErrNotFound) {
			t.Errorf("Get() #%d after Delete error = %v, want ErrNotFound", i+1, err)
		}
	}
	if n := e.store.gets.Load(); n != 4 {
		t.Errorf("store reads after two Gets of a deleted product = %d, want 4 (not found is not cached)", n)
	}
}

func TestResultsCacheInvalidates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Addr(t), nil)
	ctx := context.Background()
	p := e.newProduct(t, "https://example.com/a.jpg", "https://example.com/b.jpg")
	results := redis.NewResultsCache(e.client, postgres.NewImageResults(e.db))
	task := imaging.Task{ProductID: p.ID, ImageID: p.Images[0].ID, SourceURL: p.Images[0].SourceURL}
	task2 := imaging.Task{ProductID: p.ID, ImageID: p.Images[1].ID, SourceURL: p.Images[1].SourceURL}

	steps := []struct {
		name       string
		run        func() error
		image      int
		wantStatus product.ImageStatus
	}{
		{"Begin", func() error { _, err := results.Begin(ctx, task); return err }, 0, product.ImageProcessing},
		{"Abandon", func() error { return results.Abandon(ctx, task, 1) }, 0, product.ImagePending},
		{"Begin again", func() error { _, err := results.Begin(ctx, task); return err }, 0, product.ImageProcessing},
		{"Ready", func() error { return results.Ready(ctx, task, twoVariants) }, 0, product.ImageReady},
		{"Failed", func() error { return results.Failed(ctx, task2, 3, "not_an_image") }, 1, product.ImageFailed},
	}
	for _, s := range steps {
		before, err := e.cache.Get(ctx, p.ID) // cached now
		if err != nil {
			t.Fatalf("Get() before %s error = %v", s.name, err)
		}
		if err := s.run(); err != nil {
			t.Fatalf("%s() error = %v", s.name, err)
		}
		got, err := e.cache.Get(ctx, p.ID)
		if err != nil {
			t.Fatalf("Get() after %s error = %v", s.name, err)
		}
		if got.Images[s.image].Status != s.wantStatus {
			t.Errorf("after %s image %d is %s, want %s (stale cache?)", s.name, s.image, got.Images[s.image].Status,
				s.wantStatus)
		}
		if v := e.cachedVersion(t, p.ID); v != got.Version || got.Version < before.Version {
			t.Errorf("after %s: cached version %d, Get version %d, before %d", s.name, v, got.Version, before.Version)
		}
	}
	if _, err := results.Begin(ctx, task); !errors.Is(err, imaging.ErrStale) {
		t.Errorf("Begin() on a ready image error = %v, want ErrStale", err)
	}
	got, err := e.cache.Get(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []product.Variant{
		{Name: "main", URL: "https://cdn.example.com/a.webp", Width: 4, Height: 3, Bytes: 100, Format: "webp"},
		{Name: "thumbnail", URL: "https://cdn.example.com/t.webp", Width: 2, Height: 1, Bytes: 10, Format: "webp"},
	}
	if diff := cmp.Diff(want, got.Images[0].Variants); diff != "" {
		t.Errorf("cached variants of the ready image (-want +got):\n%s", diff)
	}
}

var twoVariants = imaging.Result{Variants: []imaging.Variant{
	{Name: "main", URL: "https://cdn.example.com/a.webp", Width: 4, Height: 3, Bytes: 100, Format: "webp"},
	{Name: "thumbnail", URL: "https://cdn.example.com/t.webp", Width: 2, Height: 1, Bytes: 10, Format: "webp"},
}}

// TestProductCacheRereadsOldFormat: an entry cached in the layout before
// variants (format 1) is a miss: the product is read from the store, with
// its variants, and the next read caches it in the current layout.
func TestProductCacheRereadsOldFormat(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Addr(t), nil)
	ctx := context.Background()
	p := e.newProduct(t, "https://example.com/old.png")
	results := postgres.NewImageResults(e.db)
	task := imaging.Task{ProductID: p.ID, ImageID: p.Images[0].ID, SourceURL: p.Images[0].SourceURL}
	if _, err := results.Begin(ctx, task); err != nil {
		t.Fatal(err)
	}
	if err := results.Ready(ctx, task, twoVariants); err != nil {
		t.Fatal(err)
	}
	want, err := e.store.Store.Get(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	old := fmt.Sprintf(`{"f":1,"id":%q,"uid":%q,"n":"Lamp","d":"","p":100,"v":%d,"ca":"2026-01-01T00:00:00Z",
		"ua":"2026-01-01T00:00:00Z","im":[{"id":%q,"pos":0,"src":"https://example.com/old.png","st":"ready","at":1,
		"url":"https://cdn.example.com/a.webp","w":4,"h":3,"b":100,"fmt":"webp","ua":"2026-01-01T00:00:00Z"}]}`,
		p.ID, p.UserID, want.Version, p.Images[0].ID)
	if err := e.raw.Set(ctx, productKey(p.ID), old, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := e.cache.Get(ctx, p.ID)
	if err != nil {
		t.Fatalf("Get() error = %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Get() over a format 1 entry (-store +cache):\n%s", diff)
	}
	if n := e.store.gets.Load(); n != 1 {
		t.Errorf("Get() over a format 1 entry read the store %d times, want 1", n)
	}
	// The unreadable entry was dropped; the next miss caches the product anew.
	if _, err := e.cache.Get(ctx, p.ID); err != nil {
		t.Fatalf("second Get() error = %v", err)
	}
	if v := e.cachedVersion(t, p.ID); v != want.Version {
		t.Errorf("after the re-read the cache holds version %d, want %d", v, want.Version)
	}
}

func TestProductCacheStampede(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Addr(t), nil)
	p := e.newProduct(t)
	// A slow read keeps the miss open while all readers arrive.
	e.store.blockGet = func(product.Product) { time.Sleep(200 * time.Millisecond) }

	const readers = 100
	var start, done sync.WaitGroup
	start.Add(1)
	errs := make(chan error, readers)
	for range readers {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			got, err := e.cache.Get(context.Background(), p.ID)
			if err == nil && (got.ID != p.ID || got.Version != 1) {
				err = errors.New("wrong product")
			}
			errs <- err
		}()
	}
	start.Done()
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Get() error = %v", err)
		}
	}
	if n := e.store.gets.Load(); n != 1 {
		t.Errorf("%d concurrent Gets on a cold key read the store %d times, want 1", readers, n)
	}
}

// TestProductCacheStaleSet lets a reader read the old row, then commits a
// change (which invalidates), then lets the reader write its result to the
// cache: the guard must refuse that write.
func TestProductCacheStaleSet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// write changes the product while the reader is held; it returns the
		// version later Gets must see, or 0 for ErrNotFound.
		write func(t *testing.T, e *env, id product.Product) int
		// readAgain makes a second, unblocked reader fill the cache before
		// the slow one is released.
		readAgain bool
	}{
		{"update", func(t *testing.T, e *env, p product.Product) int { return e.rename(t, p.ID).Version }, false},
		{"update then fresh reader", func(t *testing.T, e *env, p product.Product) int {
			return e.rename(t, p.ID).Version
		}, true},
		{"delete", func(t *testing.T, e *env, p product.Product) int {
			if err := e.cache.Delete(context.Background(), p.ID, 0, nil); err != nil {
				t.Fatalf("Delete() error = %v", err)
			}
			return 0
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, redistest.Addr(t), nil)
			ctx := context.Background()
			p := e.newProduct(t)
			read, release := make(chan product.Product), make(chan struct{})
			var first atomic.Bool
			e.store.blockGet = func(old product.Product) {
				if first.CompareAndSwap(false, true) { // only the first reader is slow
					read <- old
					<-release
				}
			}
			slow := make(chan product.Product)
			go func() {
				got, err := e.cache.Get(ctx, p.ID)
				if err != nil {
					t.Errorf("slow Get() error = %v", err)
				}
				slow <- got
			}()
			if old := <-read; old.Version != 1 {
				t.Fatalf("slow reader read version %d, want 1", old.Version)
			}
			want := tt.write(t, e, p)
			if tt.readAgain {
				if got, err := e.cache.Get(ctx, p.ID); err != nil || got.Version != want {
					t.Fatalf("fresh Get() = version %d, %v; want %d", got.Version, err, want)
				}
			}
			close(release)
			if got := <-slow; got.Version != 1 {
				t.Errorf("slow Get() = version %d, want the 1 it read", got.Version)
			}

			if v := e.cachedVersion(t, p.ID); v != 0 && v != want {
				t.Errorf("cache holds version %d after the slow reader finished, want %d or nothing", v, want)
			}
			for i := range 2 { // a miss that fills, then a hit
				got, err := e.cache.Get(ctx, p.ID)
				switch {
				case want == 0 && !errors.Is(err, product.ErrNotFound):
					t.Errorf("Get() #%d after delete = version %d, %v; want ErrNotFound", i+1, got.Version, err)
				case want != 0 && (err != nil || got.Version != want):
					t.Errorf("Get() #%d = version %d, %v; want version %d", i+1, got.Version, err, want)
				}
			}
		})
	}
}

// TestProductCacheWriterDiesAfterCommit: a process that dies between its
// commit and its invalidation (here it hangs there) leaves no stale value
// in Redis. The entry went before the change, and until the invalidation
// comes (or the count of changes in flight expires) readers elsewhere read
// the store, which holds the change, and keep it neither in Redis nor in
// a near copy. That holds when another change of the product began after
// it and finished meanwhile.
func TestProductCacheWriterDiesAfterCommit(t *testing.T) {
	for _, overlapped := range []bool{false, true} {
		t.Run(fmt.Sprintf("overlapped=%v", overlapped), func(t *testing.T) {
			t.Parallel()
			addr := redistest.Addr(t)
			e := newEnv(t, addr, nil)
			other := newEnvOn(t, addr, e.db, nil) // another process on the same Redis and database
			ctx := context.Background()
			p := e.newProduct(t)
			if _, err := e.cache.Get(ctx, p.ID); err != nil {
				t.Fatal(err)
			}
			if v := e.cachedVersion(t, p.ID); v != 1 {
				t.Fatalf("cached version = %d, want 1", v)
			}
			// The first update is the one whose process dies: it waits to be
			// let in, commits, and hangs. Any later one runs through.
			letIn, committed, dies := make(chan struct{}), make(chan struct{}), make(chan struct{})
			entered := make(chan struct{})
			e.store.aroundUpdate = func(n int64, update func() (product.Product, error)) (product.Product, error) {
				if n > 1 {
					return update()
				}
				close(entered)
				<-letIn
				got, err := update()
				close(committed)
				<-dies
				return got, err
			}
			dead := make(chan struct{})
			go func() {
				defer close(dead)
				if _, err := e.cache.Update(ctx, p.ID, bump); err != nil {
					t.Errorf("the dying Update: %v", err)
				}
			}()
			t.Cleanup(func() { close(dies); <-dead })
			<-entered
			want := 2
			if overlapped {
				// Another change begins after the first and ends before it
				// commits; a reader then must not fill the entry with its state.
				if _, err := e.cache.Update(ctx, p.ID, bump); err != nil {
					t.Fatal(err)
				}
				if got, err := other.cache.Get(ctx, p.ID); err != nil || got.Version != 2 {
					t.Fatalf("Get() between the changes = version %d, %v; want 2", got.Version, err)
				}
				want = 3
			}
			close(letIn)
			<-committed
			before := other.store.gets.Load()
			for i := range 2 {
				if got, err := other.cache.Get(ctx, p.ID); err != nil || got.Version != want {
					t.Errorf("Get() #%d while the writer is dead = version %d, %v; want the committed %d", i+1, got.Version, err, want)
				}
			}
			if v := e.cachedVersion(t, p.ID); v != 0 {
				t.Errorf("while the writer is dead the cache holds version %d, want nothing", v)
			}
			if n := other.store.gets.Load() - before; n != 2 {
				t.Errorf("two Gets read the store %d times, want 2 (nothing kept)", n)
			}
		})
	}
}

func TestProductTTLJitter(t *testing.T) {
	t.Parallel()
	ttl, jitter := 30*time.Minute, 0.1
	e := newEnv(t, redistest.Addr(t), func(c *redis.Config) { c.ProductTTL, c.TTLJitter = ttl, jitter })
	ctx := context.Background()
	lo, hi := time.Duration(float64(ttl)*(1-jitter))-time.Minute, time.Duration(float64(ttl)*(1+jitter))
	seen := map[time.Duration]bool{}
	for range 20 {
		p := e.newProduct(t)
		if _, err := e.cache.Get(ctx, p.ID); err != nil {
			t.Fatalf("Get() error = %v", err)
		}
		got, err := e.raw.PTTL(ctx, productKey(p.ID)).Result()
		if err != nil {
			t.Fatalf("PTTL: %v", err)
		}
		if got < lo || got > hi {
			t.Errorf("TTL of a cached product = %v, want within %v..%v", got, lo, hi)
		}
		seen[got.Truncate(time.Second)] = true
	}
	if len(seen) < 10 {
		t.Errorf("20 cached products have only %d distinct TTLs: no jitter?", len(seen))
	}
}

func TestProductCacheStorePanicIsAnError(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Addr(t), nil)
	p := e.newProduct(t)
	e.store.blockGet = func(product.Product) { panic("store bug") }
	if _, err := e.cache.Get(context.Background(), p.ID); err == nil || !strings.Contains(err.Error(), "store bug") {
		t.Errorf("Get() with a panicking store error = %v, want one naming the panic", err)
	}
}
