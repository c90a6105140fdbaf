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
	"github.com/pms-dev/pms/platform/telemetry"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
	"github.com/pms-dev/pms/webhook"
)

// app is a command's config, logger and what it opened: each command opens
// what it needs in dependency order (see serve.go, worker.go, all.go) and
// the app closes it all in reverse order when the command is done.
type app struct {
	configFile string
	cfg        Config
	log        zerolog.Logger
	closers    []func() error
	registry   *prometheus.Registry
}

// load reads the config and builds the root logger.
func (a *app) load() error {
	cfg, err := loadConfig(a.configFile, lookupEnv)
	if err != nil {
		return err
	}
	a.cfg = cfg
	var flush func() error
	a.log, flush = newLogger(cfg.Log)
	a.onClose(flush) // first opened, so the last line is written last
	for _, w := range cfg.warnings {
		a.log.Warn().Msg(w)
	}
	return nil
}

// startTracing installs the tracer provider of the process, named for the
// command, exporting over OTLP when tracing.otlp_endpoint is set; the app
// flushes it last when it closes.
func (a *app) startTracing(command string) error {
	shutdown, err := telemetry.Setup(a.cfg.Tracing, "pms-"+command, version, nil)
	if err != nil {
		return err
	}
	if a.cfg.Tracing.OTLPEndpoint != "" {
		a.log.Info().Str("endpoint", redact.URL(a.cfg.Tracing.OTLPEndpoint)).Float64("sample_ratio", a.cfg.Tracing.SampleRatio).Msg("exporting traces over OTLP")
	}
	a.onClose(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			return fmt.Errorf("flush traces: %w", err)
		}
		return nil
	})
	return nil
}

// newLogger returns the root logger, writing to stderr, and the function
// that writes the lines it still holds.
func newLogger(cfg LogConfig) (zerolog.Logger, func() error) {
	level, _ := zerolog.ParseLevel(cfg.Level) // validated with the config
	if cfg.Format == "console" {
		l := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"})
		return telemetry.Logger(l, level), func() error { return nil }
	}
	out := telemetry.NewLogBuffer(os.Stderr, logBufferSize, cfg.FlushInterval)
	return telemetry.Logger(zerolog.New(out), level), out.Close
}

// logBufferSize is how many bytes of log lines wait at most: about a
// hundred request lines.
const logBufferSize = 64 << 10

func (a *app) component(name string) zerolog.Logger {
	return a.log.With().Str("component", name).Logger()
}

func (a *app) onClose(f func() error) { a.closers = append(a.closers, f) }

// close closes what was opened, newest first, and returns every error.
func (a *app) close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	a.closers = nil
	return errors.Join(errs...)
}

// openPool opens the PostgreSQL pool; it does not wait for the server.
func (a *app) openPool() (*postgres.DB, error) {
	db, err := postgres.Open(a.cfg.Postgres)
	if err != nil {
		return nil, err
	}
	a.log.Info().Str("url", redact.URL(a.cfg.Postgres.URL)).Int("max_open_conns", a.cfg.Postgres.MaxOpenConns).Msg("postgres pool opened")
	a.onClose(db.Close)
	if err := a.metrics().Register(db); err != nil {
		return nil, fmt.Errorf("register postgres metrics: %w", err)
	}
	return db, nil
}

// openPostgres opens the pool, waits for PostgreSQL to answer (it may start
// after pms) and refuses a schema with migrations pending: only migrate
// changes it.
func (a *app) openPostgres(ctx context.Context) (*postgres.DB, error) {
	db, err := a.openPool()
	if err != nil {
		return nil, err
	}
	m, err := db.Migrator()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := m.CheckSchema(ctx)
		if err == nil || !errors.Is(err, product.ErrUnavailable) {
			return db, err
		}
		a.log.Warn().Err(err).Dur("retry_in", wait).Msg("waiting for postgres")
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("postgres did not answer in time: %w", err)
		case <-time.After(wait):
		}
	}
}

// openRedis returns the Redis client. It does not wait for the server: pms
// works without Redis, only slower.
func (a *app) openRedis() (*redis.Client, error) {
	c, err := redis.New(a.cfg.Redis, a.component("redis"))
	if err != nil {
		return nil, err
	}
	a.onClose(c.Close)
	if err := a.metrics().Register(c); err != nil {
		return nil, fmt.Errorf("register cache metrics: %w", err)
	}
	return c, nil
}

// openProducer returns the Kafka producer that the relay publishes with and
// the worker dead-letters with; it connects lazily.
func (a *app) openProducer() (*kafka.Producer, error) {
	p, err := kafka.NewProducer(a.cfg.Kafka, a.component("kafka"))
	if err != nil {
		return nil, fmt.Errorf("connect kafka producer: %w", err)
	}
	a.onClose(p.Close)
	return p, nil
}

// openServices opens what every long-running command needs, in order:
// PostgreSQL (see openPostgres), Redis and the Kafka producer.
func (a *app) openServices(ctx context.Context) (*postgres.DB, *redis.Client, *kafka.Producer, error) {
	db, err := a.openPostgres(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	cache, err := a.openRedis()
	if err != nil {
		return nil, nil, nil, err
	}
	producer, err := a.openProducer()
	if err != nil {
		return nil, nil, nil, err
	}
	return db, cache, producer, nil
}

// accounts keeps users and keys in PostgreSQL and looks keys up behind the
// Redis cache, which revoking a key clears and whose keys stay fresh while
// the key epoch in PostgreSQL does not move.
func (a *app) accounts(db *postgres.DB, cache *redis.Client) *account.Service {
	keys := postgres.NewAccountStore(db)
	auth := account.NewService(redis.NewKeyCache(cache, keys, keys))
	// Closed before the pool: last_used_at writes in flight finish first.
	a.onClose(func() error { auth.Wait(); return nil })
	return auth
}

// products keeps products in PostgreSQL behind the Redis cache; a change
// that adds images writes their tasks to the outbox. The cache is returned
// too: the API waits for image results with its Watch.
func (a *app) products(db *postgres.DB, cache *redis.Client) (*product.Service, *redis.ProductCache, error) {
	store, err := postgres.NewProductStore(db, a.cfg.Idempotency)
	if err != nil {
		return nil, nil, err
	}
	tasks := imaging.NewTaskMessages(a.cfg.Kafka.Topic)
	cached := redis.NewProductCache(cache, store)
	svc := product.NewService(cached, tasks, product.Policy{PublicReads: a.cfg.Auth.PublicReads})
	svc.UseEvents(product.Events{Topic: a.cfg.Kafka.EventsTopic})
	return svc, cached, nil
}

// guard is the SSRF guard of image fetches, which webhook deliveries go
// through too: the same URL rules, the same address checks at dial time,
// the same development-only switch for private networks.
func (a *app) guard() (*imaging.Fetcher, error) {
	return imaging.NewFetcher(a.cfg.Imaging.Fetch, a.cfg.Imaging.Limits)
}

// webhooks keeps subscriptions in PostgreSQL, refusing URLs the guard
// refuses.
func (a *app) webhooks(db *postgres.DB) (*webhook.Service, error) {
	store, err := a.webhookStore(db)
	if err != nil {
		return nil, err
	}
	g, err := a.guard()
	if err != nil {
		return nil, err
	}
	return webhook.NewService(store, g.CheckURL, a.cfg.Webhooks.SecretOverlap), nil
}

// webhookStore keeps subscriptions and deliveries in db, the secrets
// sealed under webhooks.secret_keys.
func (a *app) webhookStore(db *postgres.DB) (*postgres.WebhookStore, error) {
	if err := a.cfg.Webhooks.Validate(); err != nil {
		return nil, err
	}
	keys, err := a.cfg.webhookKeys()
	if err != nil {
		return nil, err
	}
	return postgres.NewWebhookStore(db, keys), nil
}

// warnUnsealed tells the operator of a serving process how the webhook
// signing secrets are kept when that wants their attention: in clear,
// because no sealing keys are set, or not as the keys would keep them now
// (stored before keys were set, or sealed under a key no longer first),
// which `pms webhooks reseal` mends. A failed count is only logged: the
// process serves regardless.
func (a *app) warnUnsealed(ctx context.Context, db *postgres.DB) {
	keys, err := a.cfg.webhookKeys()
	if err != nil {
		return // refused with the config already
	}
	if !keys.On() {
		a.log.Warn().Msg("webhooks.secret_keys is empty: webhook signing secrets are stored in clear in PostgreSQL; set it (README, \"Webhooks\")")
	}
	n, err := postgres.NewWebhookStore(db, keys).Stale(ctx)
	switch {
	case err != nil:
		a.log.Warn().Err(err).Msg("could not check how the webhook signing secrets are stored")
	case n > 0:
		a.log.Warn().Int("subscriptions", n).Msg("webhook signing secrets are not stored as webhooks.secret_keys asks: run pms webhooks reseal")
	}
}

// openWebhookStore connects to PostgreSQL and returns webhookStore on it,
// for the CLI commands that change subscriptions or deliveries.
func (a *app) openWebhookStore(ctx context.Context) (*postgres.WebhookStore, error) {
	db, err := a.openPostgres(ctx)
	if err != nil {
		return nil, err
	}
	return a.webhookStore(db)
}

// rateLimiters limit each API key, and the failed authentications from
// each client address, in Redis, failing open without it.
func (a *app) rateLimiters(cache *redis.Client) (httpapi.RateLimiter, httpapi.FailureLimiter, error) {
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

// storeChecks are the readiness checks of PostgreSQL and Redis. Redis only
// degrades: pms serves without it. PostgreSQL is critical where
// needsPostgres: the worker can do nothing without it, while the API still
// answers the reads its caches hold, so a serve process without PostgreSQL
// is degraded and stays in rotation.
func storeChecks(db *postgres.DB, cache *redis.Client, needsPostgres bool) ([]httpapi.Check, error) {
	m, err := db.Migrator()
	if err != nil {
		return nil, err
	}
	return []httpapi.Check{
		{Name: "postgres", Critical: needsPostgres, Run: db.Ping},
		{Name: "schema", Critical: needsPostgres, Run: m.CheckSchema},
		{Name: "redis", Critical: false, Run: cache.Ping},
	}, nil
}

// ops builds the operator listener on ops.addr, with the HTTP timeouts,
// serving /ready from checks. A process has one, whatever parts it runs.
func (a *app) ops(checks []httpapi.Check) (*httpapi.Server, error) {
	if err := a.cfg.Ops.Validate(); err != nil {
		return nil, err
	}
	cfg := a.cfg.HTTP
	cfg.Addr = a.cfg.Ops.Addr
	return httpapi.NewOps(cfg, checks, a.metrics(), a.component("ops"))
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
