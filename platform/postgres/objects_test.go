package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/product"
)

// removals records the keys a Collect removes, failing those in fail.
type removals struct {
	mu      sync.Mutex
	removed []string
	fail    map[string]bool
}

func (r *removals) remove(_ context.Context, key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail[key] {
		return errors.New("s3 says no")
	}
	r.removed = append(r.removed, key)
	return nil
}

// take returns the keys removed since the last take, sorted.
func (r *removals) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.removed
	r.removed = nil
	slices.Sort(got)
	return got
}

// makeReady stores the objects at keys for the task's image and records it
// ready with one variant in each, as the worker does.
func makeReady(t *testing.T, results *postgres.ImageResults, task imaging.Task, keys ...string) {
	t.Helper()
	ctx := t.Context()
	if err := results.Storing(ctx, keys); err != nil {
		t.Fatalf("Storing(%v) = %v", keys, err)
	}
	var res imaging.Result
	for i, k := range keys {
		res.Variants = append(res.Variants, imaging.Variant{Name: []string{"main", "thumbnail", "webp-320"}[i], Key: k, URL: "https://cdn.test/" + k, Width: 1, Height: 1, Bytes: 1, Format: "jpeg"})
	}
	if _, err := results.Begin(ctx, task); err != nil && !errors.Is(err, imaging.ErrStale) { // stale: ready already, re-made
		t.Fatalf("Begin = %v", err)
	}
	if err := results.Ready(ctx, task, res); err != nil {
		t.Fatalf("Ready(%v) = %v", keys, err)
	}
}

// storedKeys returns the keys stored_objects has, sorted, and those of
// them that are unreferenced.
func storedKeys(t *testing.T, raw *sql.DB) (all, unreferenced []string) {
	t.Helper()
	rows, err := raw.QueryContext(t.Context(), `SELECT key, unreferenced_since IS NOT NULL FROM stored_objects ORDER BY key`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var unref bool
		if err := rows.Scan(&k, &unref); err != nil {
			t.Fatal(err)
		}
		all = append(all, k)
		if unref {
			unreferenced = append(unreferenced, k)
		}
	}
	return all, unreferenced
}

// TestStoredObjectsCollect: objects that images share are stored once and
// stay while one image uses them; a deleted product's own objects, a
// replaced image's, a re-made image's old ones and ones stored but never
// used go once their grace is up, and not before; a failed removal is
// tried again later.
func TestStoredObjectsCollect(t *testing.T) {
	t.Parallel()
	db, raw := privateDB(t)
	f := newFixtureOn(t, db)
	ctx := t.Context()
	results := postgres.NewImageResults(db)
	objects := postgres.NewStoredObjects(db)
	r := &removals{fail: map[string]bool{}}
	collect := func(grace time.Duration) imaging.CollectStats {
		t.Helper()
		s, err := objects.Collect(ctx, grace, 100, r.remove)
		if err != nil {
			t.Fatalf("Collect(%s) = %v", grace, err)
		}
		return s
	}
	const (
		shared = "images/shared.jpg"
		aOnly  = "images/a-only.jpg"
		bOnly  = "images/b-only.jpg"
		orphan = "images/orphan.jpg"
		remade = "images/remade.jpg"
	)
	a := f.create(t, ctx, "https://example.com/same.jpg", "https://example.com/a.jpg")
	b := f.create(t, ctx, "https://example.com/same.jpg")
	makeReady(t, results, taskOf(a, 0), shared)
	makeReady(t, results, taskOf(a, 1), aOnly)
	makeReady(t, results, taskOf(b, 0), shared, bOnly)
	if err := results.Storing(ctx, []string{orphan}); err != nil { // an attempt that failed after it uploaded
		t.Fatal(err)
	}
	all, unref := storedKeys(t, raw)
	if want := []string{aOnly, bOnly, orphan, shared}; !cmp.Equal(all, want) || !cmp.Equal(unref, []string{orphan}) {
		t.Fatalf("stored objects %v (unreferenced %v), want %v (unreferenced [%s]): a shared object once", all, unref, want, orphan)
	}

	if s := collect(time.Hour); s != (imaging.CollectStats{}) {
		t.Errorf("Collect within the grace = %+v, want nothing done", s)
	}
	if s, got := collect(0), r.take(); s != (imaging.CollectStats{Removed: 1}) || !cmp.Equal(got, []string{orphan}) {
		t.Errorf("Collect after the grace = %+v removing %v, want the orphan %s alone", s, got, orphan)
	}

	// A deleted product's own object goes; the one another product uses stays.
	if err := f.svc.Delete(ctx, f.as, a.ID, 0); err != nil {
		t.Fatal(err)
	}
	if s := collect(time.Hour); s != (imaging.CollectStats{}) {
		t.Errorf("Collect within the grace of a deletion = %+v, want nothing done", s)
	}
	if s, got := collect(0), r.take(); s != (imaging.CollectStats{Removed: 1, Kept: 1}) || !cmp.Equal(got, []string{aOnly}) {
		t.Errorf("Collect after a deletion = %+v removing %v, want %s removed and %s kept", s, got, aOnly, shared)
	}
	if all, unref := storedKeys(t, raw); !cmp.Equal(all, []string{bOnly, shared}) || unref != nil {
		t.Errorf("stored objects after the deletion %v (unreferenced %v), want [%s %s], both in use", all, unref, bOnly, shared)
	}

	// Re-making b's image with other outputs lets go of the old one only.
	makeReady(t, results, taskOf(b, 0), shared, remade)
	if s, got := collect(0), r.take(); s != (imaging.CollectStats{Removed: 1}) || !cmp.Equal(got, []string{bOnly}) {
		t.Errorf("Collect after a re-make = %+v removing %v, want %s", s, got, bOnly)
	}

	// Replacing b's image lets go of its objects; a failed removal stays
	// and is put off.
	urls := []string{"https://example.com/other.jpg"}
	if _, err := f.svc.Update(ctx, f.as, b.ID, product.Patch{ImageURLs: &urls}, 0); err != nil {
		t.Fatal(err)
	}
	r.fail[remade] = true
	if s, got := collect(0), r.take(); s != (imaging.CollectStats{Removed: 1, Failed: 1}) || !cmp.Equal(got, []string{shared}) {
		t.Errorf("Collect after a replacement = %+v removing %v, want %s removed and %s failed", s, got, shared, remade)
	}
	if s := collect(0); s != (imaging.CollectStats{}) {
		t.Errorf("Collect right after a failed removal = %+v, want it put off", s)
	}
	if all, _ := storedKeys(t, raw); !cmp.Equal(all, []string{remade}) {
		t.Errorf("stored objects after a failed removal %v, want [%s]", all, remade)
	}
}

// TestStoredObjectsRemovedWhileStoring: an image is never recorded with an
// object the collector removed after it was stored: the result waits for
// the removal under way and then fails with object_removed, transient.
func TestStoredObjectsRemovedWhileStoring(t *testing.T) {
	t.Parallel()
	db, _ := privateDB(t)
	f := newFixtureOn(t, db)
	ctx := t.Context()
	results := postgres.NewImageResults(db)
	p := f.create(t, ctx, "https://example.com/slow.jpg")
	task := taskOf(p, 0)
	const key = "images/slow.jpg"
	if err := results.Storing(ctx, []string{key}); err != nil {
		t.Fatal(err)
	}
	if _, err := results.Begin(ctx, task); err != nil {
		t.Fatal(err)
	}

	inside, release := make(chan struct{}), make(chan struct{})
	collected := make(chan error, 1)
	go func() {
		_, err := postgres.NewStoredObjects(db).Collect(ctx, 0, 10, func(context.Context, string) error {
			close(inside)
			<-release
			return nil
		})
		collected <- err
	}()
	<-inside
	ready := make(chan error, 1)
	go func() { ready <- results.Ready(ctx, task, mainOnlyAt(key)) }()
	select {
	case err := <-ready:
		t.Fatalf("Ready returned %v while the collector was removing its object, want it to wait", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if err := <-collected; err != nil {
		t.Fatalf("Collect = %v", err)
	}
	err := <-ready
	if imaging.FailureCode(err) != imaging.CodeObjectRemoved || errors.Is(err, imaging.ErrPermanent) {
		t.Fatalf("Ready after its object was removed = %v, want a transient %s", err, imaging.CodeObjectRemoved)
	}
	if got, _ := f.svc.Get(ctx, f.as, p.ID); got.Images[0].Status == product.ImageReady {
		t.Errorf("image is ready with a removed object")
	}
	// The next attempt stores the object again and is recorded.
	makeReady(t, results, task, key)
}

// mainOnlyAt is a result with one variant, in the object at key.
func mainOnlyAt(key string) imaging.Result {
	res := mainOnly("https://cdn.test/" + key)
	res.Variants[0].Key = key
	return res
}

// TestMigrationRecordsStoredObjects: migration 0015 finds the objects of
// images made before it (keyed under their product) in their URLs: those of
// live products are in use, those of deleted products start their grace.
func TestMigrationRecordsStoredObjects(t *testing.T) {
	t.Parallel()
	_, m, raw := beforeMigration(t, 15)
	ctx := t.Context()
	user, live, gone := uuid.New(), uuid.New(), uuid.New()
	key := func(p uuid.UUID, c string) string {
		return "products/" + p.String() + "/" + strings.Repeat(c, 64) + ".jpg"
	}
	variants := func(keys ...string) string {
		var vs []string
		for _, k := range keys {
			vs = append(vs, `{"name": "main", "url": "http://127.0.0.1:9000/pms-images/`+k+`", "format": "jpeg"}`)
		}
		return "[" + strings.Join(vs, ",") + "]"
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO users (id, email, name, created_at) VALUES ($1, 'o@example.com', 'O', now())`, []any{user}},
		{`INSERT INTO products (id, user_id, product_name, product_price, created_at, updated_at, deleted_at)
		  VALUES ($1, $3, 'Live', 1, now(), now(), NULL), ($2, $3, 'Gone', 1, now(), now(), now())`, []any{live, gone, user}},
		{`INSERT INTO product_images (id, product_id, position, source_url, status, variants, updated_at)
		  VALUES (gen_random_uuid(), $1, 0, 'https://example.com/0.jpg', 'ready', $3, now()),
		         (gen_random_uuid(), $1, 1, 'https://example.com/1.jpg', 'pending', '[]', now()),
		         (gen_random_uuid(), $2, 0, 'https://example.com/2.jpg', 'ready', $4, now())`,
			[]any{live, gone, variants(key(live, "a"), key(live, "b")), variants(key(gone, "c"), "not/a/key.jpg")}},
	} {
		if _, err := raw.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("insert a row of the old schema: %v", err)
		}
	}
	if err := m.Up(ctx, func(postgres.Migration) {}); err != nil {
		t.Fatalf("Up through 0015: %v", err)
	}
	all, unref := storedKeys(t, raw)
	want := []string{key(live, "a"), key(live, "b"), key(gone, "c")}
	slices.Sort(want)
	if !cmp.Equal(all, want) || !cmp.Equal(unref, []string{key(gone, "c")}) {
		t.Errorf("stored objects after 0015: %v, unreferenced %v; want %v, unreferenced only the deleted product's", all, unref, want)
	}
	var uses int
	if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM image_objects`).Scan(&uses); err != nil || uses != 2 {
		t.Errorf("uses after 0015 = %d, %v; want the live product's 2", uses, err)
	}
	downThrough(t, m, 15)
}
