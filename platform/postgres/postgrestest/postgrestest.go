// Package postgrestest gives tests migrated PostgreSQL databases on the
// server named by PMS_TEST_POSTGRES_URL (`make test` starts one).
package postgrestest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/pms-dev/pms/platform/postgres"
)

// EnvURL names the environment variable with the test server's URL.
const EnvURL = "PMS_TEST_POSTGRES_URL"

var (
	once  sync.Once
	dbURL string
	dbErr error
)

// serverURL returns the test server's URL. It skips the test under -short
// and fails it when no test server is configured.
func serverURL(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("integration test: needs PostgreSQL (run without -short, via make test)")
	}
	admin := os.Getenv(EnvURL)
	if admin == "" {
		tb.Fatalf("%s is not set: run the integration tests with `make test`, or -short to skip them", EnvURL)
	}
	return admin
}

// URL returns the URL of a migrated database shared by this test binary,
// creating it on first use. Tests sharing it use rows of their own.
func URL(tb testing.TB) string {
	tb.Helper()
	admin := serverURL(tb)
	once.Do(func() {
		dbURL, dbErr = create(admin, "pms_test_")
		if dbErr == nil {
			dbErr = migrate(dbURL)
		}
	})
	if dbErr != nil {
		tb.Fatalf("create test database: %v", dbErr)
	}
	return dbURL
}

// Private returns the URL of a migrated database of the test's own, dropped
// when the test ends: for tests that act on every row, like an outbox relay.
func Private(tb testing.TB) string {
	tb.Helper()
	u := Empty(tb)
	if err := migrate(u); err != nil {
		tb.Fatalf("migrate private test database: %v", err)
	}
	return u
}

// Empty returns the URL of an unmigrated database of the test's own,
// dropped when the test ends.
func Empty(tb testing.TB) string {
	tb.Helper()
	admin := serverURL(tb)
	u, err := create(admin, "pms_private_")
	if err != nil {
		tb.Fatalf("create private test database: %v", err)
	}
	tb.Cleanup(func() {
		if err := drop(admin, u); err != nil {
			tb.Errorf("drop private test database: %v", err)
		}
	})
	return u
}

// New returns a pool on the test binary's migrated database, closed when the
// test ends.
func New(tb testing.TB) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(Config(tb, URL(tb)))
	if err != nil {
		tb.Fatalf("open test database: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// connectTimeout bounds a test pool's dial. It is long: under the whole
// suite, on a loaded 2-core machine, a loopback dial to the shared server
// has been seen to go unanswered for 5 s (CI, 2026-12-03), and a test's
// setup should not fail for that.
const connectTimeout = 30 * time.Second

// Config returns a pool config for a test database.
func Config(tb testing.TB, dbURL string) postgres.Config {
	tb.Helper()
	return postgres.Config{URL: dbURL, MaxOpenConns: 20, MaxIdleConns: 5, ConnectTimeout: connectTimeout, IOTimeout: 30 * time.Second,
		MaxConcurrentWrites: postgres.DefaultConfig().MaxConcurrentWrites}
}

// create makes a database with a random name starting with prefix and
// returns its URL.
func create(admin, prefix string) (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	name := prefix + hex.EncodeToString(b[:])
	if err := exec(admin, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil {
		return "", err
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

func drop(admin, dbURL string) error {
	u, err := url.Parse(dbURL)
	if err != nil {
		return err
	}
	return exec(admin, "DROP DATABASE "+pq.QuoteIdentifier(u.Path[1:])+" WITH (FORCE)")
}

func exec(admin, statement string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := sql.Open("postgres", admin)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, statement); err != nil {
		return fmt.Errorf("%s: %w", statement, err)
	}
	return nil
}

// migrate applies every migration to the database at dbURL.
func migrate(dbURL string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := postgres.Open(postgres.Config{URL: dbURL, MaxOpenConns: 2, ConnectTimeout: connectTimeout, IOTimeout: 30 * time.Second})
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
