package postgres_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product"
)

// variantsOf turns a worker's variants into what a product read returns.
func variantsOf(res imaging.Result) []product.Variant {
	out := make([]product.Variant, len(res.Variants))
	for i, v := range res.Variants {
		out[i] = product.Variant{Name: v.Name, URL: v.URL, Width: v.Width, Height: v.Height, Bytes: v.Bytes, Format: v.Format}
	}
	return out
}

// TestImageResultsStoreVariants: Ready stores every variant with every
// field, in preset order, and Get and List read them back; a later result
// for the same image (a redelivered task, or one made after the presets
// changed) replaces them.
func TestImageResultsStoreVariants(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	p := f.create(t, ctx, "https://example.com/v0.png", "https://example.com/v1.jpg")
	results := postgres.NewImageResults(f.db)
	task := taskOf(p, 0)
	if _, err := results.Begin(ctx, task); err != nil {
		t.Fatalf("Begin: %v", err)
	}
	version := p.Version + 1 // Begin's bump

	first := imaging.Result{Variants: []imaging.Variant{
		{Name: "main", URL: "http://s3/products/a.webp", Width: 1600, Height: 1200, Bytes: 81_234, Format: "webp"},
		{Name: "thumbnail", URL: "http://s3/products/b.webp", Width: 320, Height: 240, Bytes: 9_876, Format: "webp"},
		{Name: "square-jpeg", URL: "http://s3/products/c.jpg", Width: 500, Height: 375, Bytes: 40_000, Format: "jpeg"},
	}}
	second := imaging.Result{Variants: []imaging.Variant{
		{Name: "square-jpeg", URL: "http://s3/products/d.jpg", Width: 600, Height: 450, Bytes: 50_000, Format: "jpeg"},
		{Name: "main", URL: "http://s3/products/e.webp", Width: 1400, Height: 1050, Bytes: 70_000, Format: "webp"},
		{Name: "tiny", URL: "http://s3/products/f.webp", Width: 64, Height: 48, Bytes: 1_000, Format: "webp"},
	}}
	for _, res := range []imaging.Result{first, second} {
		if err := results.Ready(ctx, task, res); err != nil {
			t.Fatalf("Ready(%d variants): %v", len(res.Variants), err)
		}
		version++
		got, err := f.svc.Get(ctx, f.as, p.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if diff := cmp.Diff(variantsOf(res), got.Images[0].Variants); diff != "" {
			t.Errorf("Get after Ready: variants (-want +got):\n%s", diff)
		}
		if got.Images[1].Variants != nil {
			t.Errorf("Get after Ready: the pending image has variants %+v, want none", got.Images[1].Variants)
		}
		if want := []string{res.Main().URL}; !cmp.Equal(got.CompressedURLs(), want) || got.Version != version {
			t.Errorf("Get after Ready: CompressedURLs() = %q at version %d, want %q at version %d", got.CompressedURLs(), got.Version, want, version)
		}
		page, err := f.svc.List(ctx, f.as, product.Filter{UserID: &f.owner, Sort: product.SortCreated, Limit: 10})
		if err != nil || len(page.Items) != 1 {
			t.Fatalf("List = %+v, %v; want the one product", page, err)
		}
		if diff := cmp.Diff(got, page.Items[0]); diff != "" {
			t.Errorf("List and Get disagree (-get +list):\n%s", diff)
		}
	}
}

// TestMigrationMovesVariants: migration 0008 moves each image's compressed
// copy and thumbnail URL into variants, and its down migration puts them
// back.
func TestMigrationMovesVariants(t *testing.T) {
	t.Parallel()
	db, m, raw := beforeMigration(t, 8)
	ctx := context.Background()

	user, prod := uuid.New(), uuid.New()
	ready, thumbless, pending := uuid.New(), uuid.New(), uuid.New()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO users (id, email, name, created_at) VALUES ($1, 'm@example.com', 'M', now())`, []any{user}},
		{`INSERT INTO products (id, user_id, product_name, product_price, created_at, updated_at)
		  VALUES ($1, $2, 'Lamp', 1, now(), now())`, []any{prod, user}},
		{`INSERT INTO product_images (id, product_id, position, source_url, status, attempts, compressed_url, width, height,
		  bytes, format, thumbnail_url, updated_at)
		  VALUES ($1, $2, 0, 'https://example.com/0.png', 'ready', 1, 'http://s3/m.webp', 1600, 900, 1234, 'webp', 'http://s3/t.webp', now()),
		         ($3, $2, 1, 'https://example.com/1.jpg', 'ready', 1, 'http://s3/n.jpg', 800, 600, 99, 'jpeg', NULL, now()),
		         ($4, $2, 2, 'https://example.com/2.jpg', 'pending', 0, NULL, NULL, NULL, NULL, NULL, NULL, now())`,
			[]any{ready, prod, thumbless, pending}},
	} {
		if _, err := raw.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("insert a row of the old schema: %v", err)
		}
	}
	if err := m.Up(ctx, func(postgres.Migration) {}); err != nil {
		t.Fatalf("Up through 0008: %v", err)
	}
	store, err := postgres.NewProductStore(db, postgres.DefaultIdempotencyConfig())
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.Get(ctx, prod)
	if err != nil {
		t.Fatalf("Get after 0008: %v", err)
	}
	want := [][]product.Variant{
		{{Name: "main", URL: "http://s3/m.webp", Width: 1600, Height: 900, Bytes: 1234, Format: "webp"},
			{Name: "thumbnail", URL: "http://s3/t.webp", Format: "webp"}},
		{{Name: "main", URL: "http://s3/n.jpg", Width: 800, Height: 600, Bytes: 99, Format: "jpeg"}},
		nil,
	}
	var gotVariants [][]product.Variant
	for _, im := range got.Images {
		gotVariants = append(gotVariants, im.Variants)
	}
	if diff := cmp.Diff(want, gotVariants); diff != "" {
		t.Errorf("variants after 0008 (-want +got):\n%s", diff)
	}

	downThrough(t, m, 8)
	const q = `
SELECT COALESCE(compressed_url, ''), COALESCE(width, 0), COALESCE(height, 0), COALESCE(bytes, 0),
       COALESCE(format, ''), COALESCE(thumbnail_url, '')
FROM product_images WHERE product_id = $1 ORDER BY position`
	rows, err := raw.QueryContext(ctx, q, prod)
	if err != nil {
		t.Fatalf("read the old columns after rolling 0008 back: %v", err)
	}
	defer rows.Close()
	type oldColumns struct {
		URL                  string
		Width, Height, Bytes int64
		Format, Thumbnail    string
	}
	var back []oldColumns
	for rows.Next() {
		var c oldColumns
		if err := rows.Scan(&c.URL, &c.Width, &c.Height, &c.Bytes, &c.Format, &c.Thumbnail); err != nil {
			t.Fatal(err)
		}
		back = append(back, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	wantBack := []oldColumns{
		{"http://s3/m.webp", 1600, 900, 1234, "webp", "http://s3/t.webp"},
		{"http://s3/n.jpg", 800, 600, 99, "jpeg", ""},
		{},
	}
	if diff := cmp.Diff(wantBack, back); diff != "" {
		t.Errorf("old columns after rolling 0008 back (-want +got):\n%s", diff)
	}
}

// downThrough rolls migrations back until version has been rolled back.
// beforeMigration migrates a database of the test's own up, then down to
// just before migration version, and returns it as the store and raw
// connection use it, with its migrator.
func beforeMigration(t *testing.T, version int64) (*postgres.DB, *postgres.Migrator, *sql.DB) {
	t.Helper()
	dbURL := postgrestest.Empty(t)
	db, err := postgres.Open(postgrestest.Config(t, dbURL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	m, err := db.Migrator()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Up(t.Context(), func(postgres.Migration) {}); err != nil {
		t.Fatalf("Up: %v", err)
	}
	downThrough(t, m, version)
	raw, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return db, m, raw
}

func downThrough(t *testing.T, m *postgres.Migrator, version int64) {
	t.Helper()
	for {
		down, err := m.Down(context.Background())
		if err != nil {
			t.Fatalf("Down towards %d: %v", version, err)
		}
		if down.Version <= version {
			return
		}
	}
}
