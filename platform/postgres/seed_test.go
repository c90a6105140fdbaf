package postgres_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/sync/errgroup"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/sql/migrations"
)

// seedVersion changes whenever the catalogue generator does, so databases
// seeded by an older one are seeded again.
const seedVersion = 3

// benchDatabase returns the URL of a migrated database named pms_bench_<n>
// on the server in PMS_TEST_POSTGRES_URL holding n generated products. It
// seeds the database only when it is missing or was made for another size,
// schema or generator, so later runs against the same server start at once.
// It skips under -short and fails when no server is configured.
func benchDatabase(tb testing.TB, n int) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("benchmark: needs PostgreSQL (run via deploy/services.sh test or make bench)")
	}
	admin := os.Getenv(postgrestest.EnvURL)
	if admin == "" {
		tb.Fatalf("%s is not set: run the benchmark via `deploy/services.sh test go test -bench ...`", postgrestest.EnvURL)
	}
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("parse %s: %v", postgrestest.EnvURL, err)
	}
	name := "pms_bench_" + sizeName(n)
	u.Path = "/" + name
	marker := fmt.Sprintf("pms bench seed v%d: %d products, schema %s", seedVersion, n, schemaHash(tb))

	ctx := context.Background()
	server, err := sql.Open("postgres", admin)
	if err != nil {
		tb.Fatalf("open %s: %v", postgrestest.EnvURL, err)
	}
	defer server.Close()
	var comment sql.NullString
	err = server.QueryRowContext(ctx, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`, name).Scan(&comment)
	switch {
	case err == nil && comment.String == marker:
		seedLog("reusing database %s (%s)", name, marker)
		return u.String()
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		tb.Fatalf("look up database %s: %v", name, err)
	}

	start := time.Now()
	if err := createMigrated(ctx, server, name, u.String()); err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	if err := seedCatalogue(ctx, u.String(), n); err != nil {
		tb.Fatalf("seed database %s: %v", name, err)
	}
	// The marker goes on last: an interrupted seed is redone next time.
	if _, err := server.ExecContext(ctx, "COMMENT ON DATABASE "+pq.QuoteIdentifier(name)+" IS "+pq.QuoteLiteral(marker)); err != nil {
		tb.Fatalf("mark database %s: %v", name, err)
	}
	seedLog("seeded %s with %d products in %s", name, n, time.Since(start).Round(100*time.Millisecond))
	return u.String()
}

// sizeName writes 1000000 as "1m" and 50000 as "50k".
func sizeName(n int) string {
	switch {
	case n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "m"
	case n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// schemaHash identifies the migrations, so a changed index means a new seed.
func schemaHash(tb testing.TB) string {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return err
	})
	if err != nil {
		tb.Fatalf("hash migrations: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// createMigrated drops the database if it exists, creates it and migrates it.
func createMigrated(ctx context.Context, server *sql.DB, name, dbURL string) error {
	if _, err := server.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(name)+" WITH (FORCE)"); err != nil {
		return err
	}
	if _, err := server.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil {
		return err
	}
	db, err := postgres.Open(postgres.Config{URL: dbURL, MaxOpenConns: 2, ConnectTimeout: 5 * time.Second, IOTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	m, err := db.Migrator()
	if err != nil {
		return err
	}
	return m.Up(ctx, func(postgres.Migration) {})
}

// deferredDDL lists the secondary indexes and foreign keys of the bulk-loaded
// tables as statements that drop and re-create them, as the migrations
// defined them. Loading without them and building them afterwards is several
// times faster than maintaining them row by row.
const deferredDDL = `
SELECT format('DROP INDEX %I', c.relname), pg_get_indexdef(i.indexrelid), CASE WHEN am.amname = 'gin' THEN 'gin' ELSE 'index' END
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_am am ON am.oid = c.relam
WHERE t.relnamespace = 'public'::regnamespace AND t.relname IN ('products', 'product_images')
  AND NOT i.indisunique
UNION ALL
SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', t.relname, k.conname),
       format('ALTER TABLE %I ADD CONSTRAINT %I %s', t.relname, k.conname, pg_get_constraintdef(k.oid)), 'fk'
FROM pg_constraint k
JOIN pg_class t ON t.oid = k.conrelid
WHERE t.relnamespace = 'public'::regnamespace AND t.relname IN ('products', 'product_images')
  AND k.contype = 'f'`

type ddl struct{ drop, create, kind string }

// seedCatalogue loads the catalogue into the empty, migrated database at dbURL with
// COPY, rebuilds the indexes and foreign keys, then vacuums and analyzes.
func seedCatalogue(ctx context.Context, dbURL string, n int) error {
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	deferred, err := dropDeferred(ctx, db)
	if err != nil {
		return err
	}

	c := newCatalogue(n)
	start := time.Now()
	err = copyRows(ctx, db, `COPY users (id, email, name, is_admin, created_at) FROM STDIN`, func(put func(...any) error) error {
		for i := range c.users {
			if err := put(c.userRow(i)...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("copy users: %w", err)
	}
	if err := copyProducts(ctx, db, c, newSeedProgress(n)); err != nil {
		return err
	}
	seedLog("copied %d users, %d products and their images in %s", len(c.users), n, time.Since(start).Round(100*time.Millisecond))

	start = time.Now()
	if err := rebuild(ctx, db, deferred); err != nil {
		return err
	}
	seedLog("built %d indexes and foreign keys in %s", len(deferred), time.Since(start).Round(100*time.Millisecond))
	start = time.Now()
	if _, err := db.ExecContext(ctx, `VACUUM (ANALYZE) users, products, product_images`); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	seedLog("vacuum and analyze in %s", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// dropDeferred drops the indexes and foreign keys that deferredDDL lists and
// returns the statements that re-create them.
func dropDeferred(ctx context.Context, db *sql.DB) ([]ddl, error) {
	rows, err := db.QueryContext(ctx, deferredDDL)
	if err != nil {
		return nil, fmt.Errorf("list indexes: %w", err)
	}
	defer rows.Close()
	var deferred []ddl
	for rows.Next() {
		var d ddl
		if err := rows.Scan(&d.drop, &d.create, &d.kind); err != nil {
			return nil, err
		}
		deferred = append(deferred, d)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, d := range deferred {
		if _, err := db.ExecContext(ctx, d.drop); err != nil {
			return nil, fmt.Errorf("%s: %w", d.drop, err)
		}
	}
	return deferred, nil
}

// copyRows streams rows into one COPY statement inside a transaction.
func copyRows(ctx context.Context, db *sql.DB, copySQL string, rows func(put func(...any) error) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // a no-op after Commit
	stmt, err := tx.PrepareContext(ctx, copySQL)
	if err != nil {
		return err
	}
	put := func(v ...any) error {
		_, err := stmt.ExecContext(ctx, v...)
		return err
	}
	if err := rows(put); err != nil {
		return err
	}
	if _, err := stmt.ExecContext(ctx); err != nil { // ends the COPY and reports its errors
		return err
	}
	if err := stmt.Close(); err != nil {
		return err
	}
	return tx.Commit()
}

// copyProducts copies products and images at the same time on two
// connections; the generator hands each product's images to the other.
func copyProducts(ctx context.Context, db *sql.DB, c *catalogue, p *seedProgress) error {
	images := make(chan []any, 4096)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(images)
		err := copyRows(ctx, db, `COPY products (id, user_id, product_name, product_description, product_price,
			version, created_at, updated_at, deleted_at) FROM STDIN`, func(put func(...any) error) error {
			for i := range c.n {
				row, id, created := c.next()
				if err := put(row...); err != nil {
					return err
				}
				if err := send(ctx, images, c.images(id, created)); err != nil {
					return err
				}
				p.add(i + 1)
			}
			return nil
		})
		p.finish()
		if err != nil {
			return fmt.Errorf("copy products: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		return copyFrom(ctx, db, images, "images", `COPY product_images (id, product_id, position, source_url, status,
			attempts, error_code, variants, updated_at) FROM STDIN`)
	})
	return g.Wait()
}

// send hands rows to a copyFrom, or returns ctx's error.
func send(ctx context.Context, to chan<- []any, rows [][]any) error {
	for _, row := range rows {
		select {
		case to <- row:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// copyFrom copies the rows it receives until the channel closes.
func copyFrom(ctx context.Context, db *sql.DB, rows <-chan []any, what, copySQL string) error {
	err := copyRows(ctx, db, copySQL, func(put func(...any) error) error {
		for row := range rows {
			if err := put(row...); err != nil {
				return err
			}
		}
		return ctx.Err() // a failed products copy must not commit these rows
	})
	if err != nil {
		return fmt.Errorf("copy %s: %w", what, err)
	}
	return nil
}

// rebuild re-creates the dropped indexes, the GIN ones on one connection and
// the B-trees on another, then the foreign keys.
func rebuild(ctx context.Context, db *sql.DB, deferred []ddl) error {
	run := func(ctx context.Context, kinds ...string) error {
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `SET maintenance_work_mem = '512MB'`); err != nil {
			return err
		}
		for _, d := range deferred {
			if !slices.Contains(kinds, d.kind) {
				continue
			}
			if _, err := conn.ExecContext(ctx, d.create); err != nil {
				return fmt.Errorf("%s: %w", d.create, err)
			}
		}
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return run(gctx, "gin") })
	g.Go(func() error { return run(gctx, "index") })
	if err := g.Wait(); err != nil {
		return err
	}
	return run(ctx, "fk")
}

// seedLog reports on seeding on stderr, which go test shows without -v.
func seedLog(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "seed: "+format+"\n", args...)
}

// seedProgress shows how many products are loaded: a bar on a terminal, else a
// line per 100,000 rows.
type seedProgress struct {
	bar   *progressbar.ProgressBar
	n     int
	start time.Time
}

func newSeedProgress(n int) *seedProgress {
	p := &seedProgress{n: n, start: time.Now()}
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		p.bar = progressbar.NewOptions(n, progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription("seeding products"), progressbar.OptionShowCount(),
			progressbar.OptionShowIts(), progressbar.OptionSetItsString("rows"),
			progressbar.OptionThrottle(200*time.Millisecond))
	}
	return p
}

func (p *seedProgress) add(done int) {
	switch {
	case p.bar != nil:
		_ = p.bar.Add(1) // drawing errors don't matter
	case done%100_000 == 0 || done == p.n:
		seedLog("%d/%d products (%s)", done, p.n, time.Since(p.start).Round(100*time.Millisecond))
	}
}

func (p *seedProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(os.Stderr)
	}
}
