package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product"
)

// imageState is an image row and its product's version as stored, read with
// plain SQL so that deleted products can be looked at too.
type imageState struct {
	Status    string
	Attempts  int
	ErrorCode string
	URL       string // of the main variant
	Version   int
}

func readImage(t *testing.T, raw *sql.DB, imageID uuid.UUID) imageState {
	t.Helper()
	const q = `
SELECT i.status, i.attempts, COALESCE(i.error_code, ''),
       COALESCE(i.variants->0->>'url', ''), p.version
FROM product_images i JOIN products p ON p.id = i.product_id WHERE i.id = $1`
	var s imageState
	if err := raw.QueryRowContext(t.Context(), q, imageID).Scan(&s.Status, &s.Attempts, &s.ErrorCode, &s.URL, &s.Version); err != nil {
		t.Fatalf("read image %s: %v", imageID, err)
	}
	return s
}

// rawDB is a plain connection to the database postgrestest.New opens.
func rawDB(t *testing.T) *sql.DB {
	t.Helper()
	raw, err := sql.Open("postgres", postgrestest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

// mainOnly is a result with one variant, a 1×1 JPEG at url.
func mainOnly(url string) imaging.Result {
	return imaging.Result{Variants: []imaging.Variant{{Name: "main", URL: url, Width: 1, Height: 1, Bytes: 1, Format: "jpeg"}}}
}

func taskOf(p product.Product, i int) imaging.Task {
	return imaging.Task{ID: uuid.New(), ProductID: p.ID, ImageID: p.Images[i].ID, SourceURL: p.Images[i].SourceURL}
}

// TestImageResultsCountAttempts: Begin counts every attempt durably, refuses
// a fourth with the count, and a failed image starts a new round.
func TestImageResultsCountAttempts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	raw := rawDB(t)
	ctx := context.Background()
	p := f.create(t, ctx, "https://example.com/crash.jpg")
	task := taskOf(p, 0)
	results := postgres.NewImageResults(f.db)

	for want := 1; want <= imaging.MaxAttempts; want++ {
		if n, err := results.Begin(ctx, task); err != nil || n != want {
			t.Fatalf("Begin #%d = %d, %v; want attempt %d", want, n, err, want)
		}
		if s := readImage(t, raw, task.ImageID); s.Status != "processing" || s.Attempts != want || s.Version != p.Version+want {
			t.Errorf("after Begin #%d image is %s with %d attempts at product version %d, want processing with %d at %d (each Begin bumps it)",
				want, s.Status, s.Attempts, s.Version, want, p.Version+want)
		}
	}
	n, err := results.Begin(ctx, task)
	if !errors.Is(err, imaging.ErrAttemptsUsed) || n != imaging.MaxAttempts {
		t.Fatalf("Begin after %d unfinished attempts = %d, %v; want %d, ErrAttemptsUsed", imaging.MaxAttempts, n, err, imaging.MaxAttempts)
	}
	if s := readImage(t, raw, task.ImageID); s.Attempts != imaging.MaxAttempts || s.Version != p.Version+imaging.MaxAttempts {
		t.Errorf("a refused Begin changed the count to %d or the version to %d, want %d and %d", s.Attempts, s.Version, imaging.MaxAttempts, p.Version+imaging.MaxAttempts)
	}

	if err := results.Failed(ctx, task, n, imaging.CodeWorkerCrashed); err != nil {
		t.Fatalf("Failed: %v", err)
	}
	want := imageState{Status: "failed", Attempts: 3, ErrorCode: imaging.CodeWorkerCrashed, Version: p.Version + imaging.MaxAttempts + 1}
	if diff := cmp.Diff(want, readImage(t, raw, task.ImageID)); diff != "" {
		t.Errorf("image after Failed (-want +got):\n%s", diff)
	}
	// A replay of the dead-lettered task starts afresh.
	if n, err := results.Begin(ctx, task); err != nil || n != 1 {
		t.Fatalf("Begin of a failed image = %d, %v; want attempt 1", n, err)
	}
	want = imageState{Status: "processing", Attempts: 1, Version: p.Version + imaging.MaxAttempts + 2}
	if diff := cmp.Diff(want, readImage(t, raw, task.ImageID)); diff != "" {
		t.Errorf("image after Begin of a failed image (-want +got):\n%s", diff)
	}
}

// TestImageResultsAbandon: an abandoned attempt is given back, unless
// another attempt began since. Each step that changes the image bumps the
// product's version (its ETag): status and attempts are in its
// representation.
func TestImageResultsAbandon(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	raw := rawDB(t)
	ctx := context.Background()
	p := f.create(t, ctx, "https://example.com/abandon.jpg")
	task := taskOf(p, 0)
	results := postgres.NewImageResults(f.db)

	steps := []struct {
		name         string
		run          func() error
		wantStatus   string
		wantAttempts int
		changes      bool
	}{
		{"Begin", func() error { _, err := results.Begin(ctx, task); return err }, "processing", 1, true},
		{"Abandon 1", func() error { return results.Abandon(ctx, task, 1) }, "pending", 0, true},
		{"Begin", func() error { _, err := results.Begin(ctx, task); return err }, "processing", 1, true},
		{"Begin", func() error { _, err := results.Begin(ctx, task); return err }, "processing", 2, true},
		{"Abandon 1 after attempt 2 began", func() error { return results.Abandon(ctx, task, 1) }, "processing", 2, false},
		{"Abandon 2", func() error { return results.Abandon(ctx, task, 2) }, "processing", 1, true},
		{"Ready", func() error { return results.Ready(ctx, task, mainOnly("http://s3/a.jpg")) }, "ready", 1, true},
		{"Abandon 1 of a ready image", func() error { return results.Abandon(ctx, task, 1) }, "ready", 1, false},
	}
	version := p.Version
	for _, s := range steps {
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if s.changes {
			version++
		}
		if got := readImage(t, raw, task.ImageID); got.Status != s.wantStatus || got.Attempts != s.wantAttempts || got.Version != version {
			t.Errorf("after %s image is %s with %d attempts at product version %d, want %s with %d at %d",
				s.name, got.Status, got.Attempts, got.Version, s.wantStatus, s.wantAttempts, version)
		}
	}
}

// TestImageResultsDeletedProduct: once a product is deleted, no result
// changes its images or its version, and it stays 404.
func TestImageResultsDeletedProduct(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	raw := rawDB(t)
	ctx := context.Background()
	p := f.create(t, ctx, "https://example.com/d0.jpg", "https://example.com/d1.jpg")
	results := postgres.NewImageResults(f.db)
	processing, pending := taskOf(p, 0), taskOf(p, 1)
	if _, err := results.Begin(ctx, processing); err != nil {
		t.Fatalf("Begin: %v", err)
	}
	if err := f.svc.Delete(ctx, f.as, p.ID, 0); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	before := []imageState{readImage(t, raw, processing.ImageID), readImage(t, raw, pending.ImageID)}

	if err := results.Ready(ctx, processing, mainOnly("http://s3/late.jpg")); err != nil {
		t.Errorf("Ready: %v", err)
	}
	if err := results.Failed(ctx, pending, 3, "source_not_found"); err != nil {
		t.Errorf("Failed: %v", err)
	}
	if err := results.Abandon(ctx, processing, 1); err != nil {
		t.Errorf("Abandon: %v", err)
	}
	if _, err := results.Begin(ctx, pending); !errors.Is(err, imaging.ErrStale) {
		t.Errorf("Begin for a deleted product = %v, want ErrStale", err)
	}
	after := []imageState{readImage(t, raw, processing.ImageID), readImage(t, raw, pending.ImageID)}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("results changed a deleted product's images (-before +after):\n%s", diff)
	}
	if _, err := f.svc.Get(ctx, f.as, p.ID); !errors.Is(err, product.ErrNotFound) {
		t.Errorf("Get of the deleted product = %v, want ErrNotFound", err)
	}
}

// TestImageResultsReadyRacesDelete: a result written while a delete of its
// product is in flight waits for it and then changes nothing.
func TestImageResultsReadyRacesDelete(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	raw := rawDB(t)
	ctx := context.Background()
	p := f.create(t, ctx, "https://example.com/race.jpg")
	task := taskOf(p, 0)
	results := postgres.NewImageResults(f.db)
	if _, err := results.Begin(ctx, task); err != nil {
		t.Fatalf("Begin: %v", err)
	}
	before := readImage(t, raw, task.ImageID)

	tx, err := raw.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var holder int
	if err := tx.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	// The statement ProductStore.Delete runs, held open.
	if _, err := tx.ExecContext(ctx, `UPDATE products SET deleted_at = now(), version = version + 1 WHERE id = $1`, p.ID); err != nil {
		t.Fatalf("delete in a transaction: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- results.Ready(ctx, task, mainOnly("http://s3/race.jpg"))
	}()
	waitBlocked(t, raw, holder)
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit the delete: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Ready: %v", err)
	}
	want := before
	want.Version++ // the delete's bump, and no other
	if diff := cmp.Diff(want, readImage(t, raw, task.ImageID)); diff != "" {
		t.Errorf("image after Ready raced a delete (-want +got):\n%s", diff)
	}
}

// waitBlocked waits until a session waits for a lock that the session with
// process id holder has, for up to 10s.
func waitBlocked(t *testing.T, raw *sql.DB, holder int) {
	t.Helper()
	const q = `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))`
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := raw.QueryRowContext(t.Context(), q, holder).Scan(&n); err != nil {
			t.Fatalf("look for blocked sessions: %v", err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing waits for the locks of session %d within 10s", holder)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
