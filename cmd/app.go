package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/httpapi"
	"github.com/pms-dev/pms/platform/kafka"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/redact"
	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
)

// app builds each shared dependency once, on first use, and closes them in
// reverse order when the command is done.
type app struct {
	configFile string
	cfg        Config
	log        zerolog.Logger
	closers    []func() error

	db            *postgres.DB
	cache         *redis.Client
	kafkaProducer *kafka.Producer
	registry      *prometheus.Registry
}

// load reads the config and builds the root logger.
func (a *app) load() error {
	cfg, err := loadConfig(a.configFile, lookupEnv)
	if err != nil {
		return err
	}
	a.cfg = cfg
	a.log = newLogger(cfg.Log)
	for _, w := range cfg.warnings {
		a.log.Warn().Msg(w)
	}
	return nil
}

func newLogger(cfg LogConfig) zerolog.Logger {
	level, _ := zerolog.ParseLevel(cfg.Level) // validated with the config
	zerolog.TimeFieldFormat = time.RFC3339Nano
	zerolog.DurationFieldUnit = time.Millisecond
	zerolog.DurationFieldInteger = false
	var l zerolog.Logger
	if cfg.Format == "console" {
		l = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"})
	} else {
		l = zerolog.New(os.Stderr)
	}
	return l.Level(level).With().Timestamp().Str("service", "pms").Logger()
}

// require validates the config sections a command needs beyond log and
// postgres, listing every problem.
func (a *app) require(sections ...string) error {
	if err := a.cfg.Validate(sections...); err != nil {
		return fmt.Errorf("invalid config:\n%w", err)
	}
	return nil
}

func (a *app) onClose(f func() error) { a.closers = append(a.closers, f) }

// close closes what was built, newest first, and returns every error.
func (a *app) close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	a.closers = nil
	return errors.Join(errs...)
}

func (a *app) postgres() (*postgres.DB, error) {
	if a.db != nil {
		return a.db, nil
	}
	db, err := postgres.Open(a.cfg.Postgres)
	if err != nil {
		return nil, err
	}
	a.log.Info().Str("url", redact.URL(a.cfg.Postgres.URL)).Int("max_open_conns", a.cfg.Postgres.MaxOpenConns).Msg("postgres pool opened")
	a.db = db
	a.onClose(db.Close)
	return db, nil
}

// redis returns the Redis client. It does not wait for the server: pms
// works without Redis, only slower.
func (a *app) redis() (*redis.Client, error) {
	if a.cache != nil {
		return a.cache, nil
	}
	c, err := redis.New(a.cfg.Redis, a.log.With().Str("component", "redis").Logger())
	if err != nil {
		return nil, err
	}
	a.cache = c
	a.onClose(c.Close)
	return c, nil
}

// stores returns PostgreSQL and the Redis cache in front of it.
func (a *app) stores() (*postgres.DB, *redis.Client, error) {
	db, err := a.postgres()
	if err != nil {
		return nil, nil, err
	}
	cache, err := a.redis()
	return db, cache, err
}

// productService keeps products in PostgreSQL behind the Redis cache.
func (a *app) productService() (*product.Service, error) {
	db, cache, err := a.stores()
	if err != nil {
		return nil, err
	}
	products, err := postgres.NewProductStore(db, a.cfg.Idempotency)
	if err != nil {
		return nil, err
	}
	store := redis.NewProductCache(cache, products)
	tasks := imaging.NewTaskMessages(a.cfg.Kafka.Topic)
	return product.NewService(store, tasks, product.Policy{PublicReads: a.cfg.Auth.PublicReads}), nil
}

// authService keeps users and keys in PostgreSQL and looks keys up behind
// the Redis cache, which revoking a key clears.
func (a *app) authService() (*account.Service, error) {
	db, cache, err := a.stores()
	if err != nil {
		return nil, err
	}
	auth := account.NewService(redis.NewKeyCache(cache, postgres.NewAccountStore(db)))
	// Closed before the pool: last_used_at writes in flight finish first.
	a.onClose(func() error { auth.Wait(); return nil })
	return auth, nil
}

// rateLimiters limit each API key, and the failed authentications from
// each client address, in Redis, failing open without it.
func (a *app) rateLimiters() (httpapi.RateLimiter, httpapi.FailureLimiter, error) {
	cache, err := a.redis()
	if err != nil {
		return nil, nil, err
	}
	l, err := redis.NewLimiter(cache, a.cfg.Limits)
	if err != nil {
		return nil, nil, err
	}
	perKey := func(ctx context.Context, key string, write bool) httpapi.RateLimit {
		d, _ := l.Allow(ctx, key, write) // an error means ctx ended: the request is over anyway
		return httpapi.RateLimit(d)
	}
	return perKey, l, nil
}

// metrics returns the registry every part registers its metrics on, with
// the Go runtime and process collectors.
func (a *app) metrics() *prometheus.Registry {
	if a.registry == nil {
		a.registry = prometheus.NewRegistry()
		a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return a.registry
}

// requireSchema waits for PostgreSQL to answer (it may start after pms) and
// refuses to go on when migrations are pending.
func (a *app) requireSchema(ctx context.Context) error {
	db, err := a.postgres()
	if err != nil {
		return err
	}
	m, err := db.Migrator()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := m.CheckSchema(ctx)
		if err == nil || !errors.Is(err, product.ErrUnavailable) {
			return err
		}
		a.log.Warn().Err(err).Dur("retry_in", wait).Msg("waiting for postgres")
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres did not answer in time: %w", err)
		case <-time.After(wait):
		}
	}
}

// runner is a long-lived part of pms: Run blocks until ctx ends, shuts down
// gracefully and returns nil, or returns an error on failure.
type runner interface {
	Run(ctx context.Context) error
}

// parts is a runner of several parts, run together (see run).
type parts []runner

// Run runs the parts; see run.
func (ps parts) Run(ctx context.Context) error { return run(ctx, ps...) }

// run runs the parts until ctx ends or one fails; then all stop and the
// first failure is returned.
func run(ctx context.Context, parts ...runner) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, p := range parts {
		g.Go(func() error { return p.Run(ctx) })
	}
	return g.Wait()
}
