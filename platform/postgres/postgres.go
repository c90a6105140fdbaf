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
}

// DefaultConfig returns the defaults of every setting, for a server on
// localhost.
func DefaultConfig() Config {
	return Config{
		URL:             "postgres://postgres@127.0.0.1:5432/pms?sslmode=disable",
		MaxOpenConns:    20,
		MaxIdleConns:    10,
		ConnMaxLifetime: 30 * time.Minute,
		ConnMaxIdleTime: 5 * time.Minute,
		ConnectTimeout:  5 * time.Second,
		IOTimeout:       30 * time.Second,
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
	db  *sqlx.DB
	dsn string
}

// Open validates cfg and opens a pool. It does not wait for the server: a
// database that is down at start-up makes requests fail until it is back.
func Open(cfg Config) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dsn, err := withConnectTimeout(cfg.URL, cfg.ConnectTimeout)
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
	return &DB{db: db, dsn: dsn}, nil
}

// withConnectTimeout adds lib/pq's connect_timeout unless the URL sets one.
func withConnectTimeout(raw string, d time.Duration) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("postgres.url: malformed")
	}
	q := u.Query()
	if q.Get("connect_timeout") == "" {
		q.Set("connect_timeout", strconv.Itoa(int(d.Seconds())))
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
func (d *DB) Close() error { return d.db.Close() }

// withTx runs fn in a transaction, committing when it returns nil.
func (d *DB) withTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := d.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // the error from fn is the one worth reporting
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
