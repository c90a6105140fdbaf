// Package postgres keeps products and accounts in PostgreSQL through sqlx and
// lib/pq, and runs the schema migrations.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/pms-dev/pms/platform/redact"
)

// Config says how to reach PostgreSQL and how large the pool is.
type Config struct {
	URL             string        `mapstructure:"url"`
	MaxOpenConns    int           `mapstructure:"max_open_conns"`
	MaxIdleConns    int           `mapstructure:"max_idle_conns"`
	ConnMaxLifetime time.Duration `mapstructure:"conn_max_lifetime"`
	ConnMaxIdleTime time.Duration `mapstructure:"conn_max_idle_time"`
	ConnectTimeout  time.Duration `mapstructure:"connect_timeout"`
	// IOTimeout bounds the wait for the server's reply to anything sent on
	// a connection; longer than any query may take.
	IOTimeout time.Duration `mapstructure:"io_timeout"`
	// MaxConcurrentWrites is how many product writes (creates, updates,
	// deletes) a process has in PostgreSQL at once; the rest wait their
	// turn in the process (see writeGate). 0: no limit but the pool's.
	MaxConcurrentWrites int `mapstructure:"max_concurrent_writes"`
}

// DefaultConfig returns the defaults of every setting, for a server on
// localhost.
func DefaultConfig() Config {
	return Config{
		URL:             "postgres://postgres@127.0.0.1:5432/pms?sslmode=disable",
		MaxOpenConns:    20,
		MaxIdleConns:    20,
		ConnMaxLifetime: 30 * time.Minute,
		ConnMaxIdleTime: 5 * time.Minute,
		ConnectTimeout:  5 * time.Second,
		IOTimeout:       30 * time.Second,
		// A few per core of a small server: on make load's one core, 6
		// kept the rate and had the shortest tail; 4 cost a sixth of the
		// rate (BENCHMARKS.md, "POST's tail").
		MaxConcurrentWrites: 6,
	}
}

// Validate reports every problem with the config.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		errs = append(errs, errors.New("postgres.url: must be a postgres:// URL"))
	}
	if c.MaxOpenConns < 1 {
		errs = append(errs, errors.New("postgres.max_open_conns: must be at least 1"))
	}
	if c.MaxIdleConns < 0 || c.MaxIdleConns > c.MaxOpenConns {
		errs = append(errs, errors.New("postgres.max_idle_conns: must be between 0 and max_open_conns"))
	}
	if c.MaxConcurrentWrites < 0 {
		errs = append(errs, errors.New("postgres.max_concurrent_writes: must be 0 (no limit) or more"))
	}
	if c.ConnectTimeout < time.Second {
		errs = append(errs, errors.New("postgres.connect_timeout: must be at least 1s"))
	}
	if c.IOTimeout < time.Second {
		errs = append(errs, errors.New("postgres.io_timeout: must be at least 1s"))
	}
	if c.ConnMaxLifetime < 0 || c.ConnMaxIdleTime < 0 {
		errs = append(errs, errors.New("postgres.conn_max_lifetime, conn_max_idle_time: must not be negative"))
	}
	return errors.Join(errs...)
}

// String describes the config with the URL's credentials masked, so that
// logging a Config by accident leaks nothing.
func (c Config) String() string {
	return fmt.Sprintf("{URL:%s MaxOpenConns:%d MaxIdleConns:%d ConnMaxLifetime:%s ConnMaxIdleTime:%s ConnectTimeout:%s IOTimeout:%s}",
		redact.URL(c.URL), c.MaxOpenConns, c.MaxIdleConns, c.ConnMaxLifetime, c.ConnMaxIdleTime, c.ConnectTimeout, c.IOTimeout)
}

// GoString is String, so that %#v redacts too.
func (c Config) GoString() string { return c.String() }

// DB is a pool of PostgreSQL connections.
type DB struct {
	db     *sqlx.DB
	dsn    string
	bell   *relayBell
	stmts  sync.Map // query text → *sqlx.Stmt, see prepared
	writes *writeGate
}

// Open validates cfg and opens a pool. It does not wait for the server: a
// database that is down at start-up makes requests fail until it is back.
func Open(cfg Config) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dsn, err := withDriverDefaults(cfg.URL, cfg.ConnectTimeout)
	if err != nil {
		return nil, err
	}
	connector, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	connector.Dialer(hangGuard{dialer: net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}, ioTimeout: cfg.IOTimeout})
	db := sqlx.NewDb(sql.OpenDB(connector), "postgres")
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	db.SetMaxIdleConns(cfg.MaxIdleConns)
	db.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	db.SetConnMaxIdleTime(cfg.ConnMaxIdleTime)
	return &DB{db: db, dsn: dsn, bell: newRelayBell(), writes: newWriteGate(cfg.MaxConcurrentWrites)}, nil
}

// withDriverDefaults adds lib/pq's connect_timeout unless the URL sets one,
// and binary_parameters unless the URL sets it: with it, a statement with
// arguments that is not prepared (most of them, and every list, whose plan
// depends on its arguments) takes one round trip instead of two, and is
// still planned for its arguments. It sends []byte arguments in binary, as
// bytea wants them; JSON for a jsonb column goes as a string.
func withDriverDefaults(raw string, d time.Duration) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("postgres.url: malformed")
	}
	q := u.Query()
	if q.Get("connect_timeout") == "" {
		q.Set("connect_timeout", strconv.Itoa(int(d.Seconds())))
	}
	if q.Get("binary_parameters") == "" {
		q.Set("binary_parameters", "yes")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Ping checks that the server answers.
func (d *DB) Ping(ctx context.Context) error {
	if err := d.db.PingContext(ctx); err != nil {
		return translate(fmt.Errorf("ping postgres: %w", err))
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (d *DB) Close() error {
	d.stmts.Range(func(_, s any) bool {
		_ = s.(*sqlx.Stmt).Close() // the pool's close below is what matters
		return true
	})
	return d.db.Close()
}

// prepared returns query as a statement prepared on the pool, preparing it
// the first time. A prepared statement is parsed and planned once per
// connection (database/sql prepares it on each connection it runs on) and
// then runs in one round trip instead of two; the hot statements use it.
// Only statements whose plan does not depend on their arguments belong here:
// after five runs PostgreSQL may keep one generic plan for all of them.
func (d *DB) prepared(ctx context.Context, query string) (*sqlx.Stmt, error) {
	if s, ok := d.stmts.Load(query); ok {
		return s.(*sqlx.Stmt), nil
	}
	s, err := d.db.PreparexContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if earlier, loaded := d.stmts.LoadOrStore(query, s); loaded {
		_ = s.Close() // a concurrent call prepared it first
		return earlier.(*sqlx.Stmt), nil
	}
	return s, nil
}

// txn is a transaction that knows whether it wrote to the outbox, so that
// its commit wakes the relays.
type txn struct {
	*sqlx.Tx
	db          *DB
	wroteOutbox bool
}

// withTx runs fn in a transaction, committing when it returns nil.
func (d *DB) withTx(ctx context.Context, fn func(t *txn) error) error {
	tx, err := d.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	t := &txn{Tx: tx, db: d}
	if err := fn(t); err != nil {
		_ = tx.Rollback() // the error from fn is the one worth reporting
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if t.wroteOutbox {
		d.bell.wake()
	}
	return nil
}
