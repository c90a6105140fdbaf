// Package postgrestest gives tests a migrated PostgreSQL database of their
// own on the server named by PMS_TEST_POSTGRES_URL (`make test` starts one).
package postgrestest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	_ "github.com/lib/pq" // registers the "postgres" driver

	"github.com/pms-dev/pms/platform/postgres"
)

// EnvURL names the environment variable with the test server's URL.
const EnvURL = "PMS_TEST_POSTGRES_URL"

var (
	once   sync.Once
	dbURL  string
	dbErr  error
	dbName string
)

// URL returns the URL of a migrated database private to this test binary,
// creating it on first use. It skips the test under -short and fails it when
// no test server is configured.
func URL(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("integration test: needs PostgreSQL (run without -short, via make test)")
	}
	admin := os.Getenv(EnvURL)
	if admin == "" {
		tb.Fatalf("%s is not set: run the integration tests with `make test`, or -short to skip them", EnvURL)
	}
	once.Do(func() { dbURL, dbErr = create(admin) })
	if dbErr != nil {
		tb.Fatalf("create test database: %v", dbErr)
	}
	return dbURL
}

// New returns a pool on the test binary's migrated database, closed when the
// test ends.
func New(tb testing.TB) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(Config(tb))
	if err != nil {
		tb.Fatalf("open test database: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// Config returns a pool config for the test binary's migrated database.
func Config(tb testing.TB) postgres.Config {
	tb.Helper()
	return postgres.Config{URL: URL(tb), MaxOpenConns: 20, MaxIdleConns: 5, ConnectTimeout: 5 * time.Second, IOTimeout: 30 * time.Second}
}

// create makes a fresh database named for this process and migrates it.
func create(admin string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	dbName = "pms_test_" + hex.EncodeToString(b[:])
	conn, err := sql.Open("postgres", admin)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+dbName); err != nil {
		return "", err
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", err
	}
	u.Path = "/" + dbName
	db, err := postgres.Open(postgres.Config{URL: u.String(), MaxOpenConns: 2, ConnectTimeout: 5 * time.Second, IOTimeout: 30 * time.Second})
	if err != nil {
		return "", err
	}
	defer db.Close()
	m, err := db.Migrator()
	if err != nil {
		return "", err
	}
	if err := m.Up(ctx, func(postgres.Migration) {}); err != nil {
		return "", err
	}
	return u.String(), nil
}
