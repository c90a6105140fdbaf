// Package redis caches product reads and API key lookups in Redis and
// rate-limits callers; every Redis failure is soft.
//
// Redis is never the source of truth. Each Redis call gets a short timeout
// and runs behind a circuit breaker; when it fails the caches read the
// wrapped store instead, the limiter lets the request through, and a warning
// is logged at a limited rate. Once the breaker is open a Redis outage costs
// no latency at all, and the breaker closes again by itself when Redis
// answers.
package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/singleflight"

	"github.com/pms-dev/pms/platform/redact"
)

// Config says how to reach Redis, how long to wait for it and how long
// cached entries live.
type Config struct {
	Addr        string        `mapstructure:"addr"` // host:port
	Password    string        `mapstructure:"password"`
	DB          int           `mapstructure:"db"`
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	// Timeout bounds each Redis call, so it bounds the latency a slow or
	// hung Redis adds to a request before the breaker opens. It must stay
	// above the delays of a saturated host: a call that times out only
	// because the CPU is busy sends its work to PostgreSQL, which costs
	// more, and at 50 ms that opened the breaker under make load and halved
	// its creates per second.
	Timeout  time.Duration `mapstructure:"timeout"`
	PoolSize int           `mapstructure:"pool_size"` // 0: go-redis default (10 per CPU)
	// ProductTTL is how long a product stays cached, give or take TTLJitter
	// (a fraction: 0.1 spreads expiry over ±10%).
	ProductTTL time.Duration `mapstructure:"product_ttl"`
	TTLJitter  float64       `mapstructure:"ttl_jitter"`
	// KeyTTL is how long an API key lookup stays fresh while this process
	// reads the key epoch (account.Epochs) and it does not move: a hygiene
	// bound, since a revocation moves the epoch, which every process sees
	// within about a second, whether or not the cache invalidation on
	// revoke arrives.
	KeyTTL time.Duration `mapstructure:"key_ttl"`
	// KeyFallbackTTL is how long a key lookup stays fresh while this
	// process cannot read the key epoch (PostgreSQL unreachable): half of it
	// in Redis and half as a near copy. It bounds how long a revoked key
	// keeps working when the epoch cannot be read and the cache
	// invalidation on revoke is lost too.
	KeyFallbackTTL time.Duration `mapstructure:"key_fallback_ttl"`
	// KeyStaleTTL is how long a key stays in Redis after it was fetched,
	// to authenticate requests while PostgreSQL is unavailable (and only
	// then); at least KeyTTL and KeyFallbackTTL.
	KeyStaleTTL time.Duration `mapstructure:"key_stale_ttl"`
	// UnknownKeyTTL is how long a prefix that names no key is remembered
	// as unknown, so repeating a made-up key costs no PostgreSQL lookup.
	// Creating a key with the prefix forgets it at once.
	UnknownKeyTTL time.Duration `mapstructure:"unknown_key_ttl"`

	// LocalTTL is how long a process keeps its near copy of a cached
	// product; 0 turns near copies (of keys too) off. Near copies of keys
	// follow the keys' rules (KeyTTL, KeyFallbackTTL). Invalidations drop
	// near copies everywhere at once, and a process that stops hearing them
	// stops using its copies within seconds (see near), so LocalTTL bounds
	// only what those miss.
	LocalTTL time.Duration `mapstructure:"local_ttl"`
	// BreakerFailures consecutive failures open the circuit breaker; after
	// BreakerCooldown one call probes Redis again.
	BreakerFailures int           `mapstructure:"breaker_failures"`
	BreakerCooldown time.Duration `mapstructure:"breaker_cooldown"`
}

// DefaultConfig returns the defaults for every setting, for Redis on
// localhost.
func DefaultConfig() Config {
	return Config{
		Addr:            "127.0.0.1:6379",
		DialTimeout:     500 * time.Millisecond,
		Timeout:         500 * time.Millisecond,
		ProductTTL:      30 * time.Minute,
		TTLJitter:       0.1,
		KeyTTL:          10 * time.Minute,
		KeyFallbackTTL:  30 * time.Second,
		KeyStaleTTL:     30 * time.Minute,
		UnknownKeyTTL:   10 * time.Second,
		LocalTTL:        30 * time.Second,
		BreakerFailures: 5,
		BreakerCooldown: 2 * time.Second,
	}
}

// Validate reports every problem with the config.
func (c Config) Validate() error {
	var errs []error
	if host, port, err := net.SplitHostPort(c.Addr); err != nil || host == "" || port == "" {
		errs = append(errs, errors.New("redis.addr: must be host:port"))
	}
	if c.DB < 0 {
		errs = append(errs, errors.New("redis.db: must not be negative"))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, errors.New("redis.dial_timeout: must be positive"))
	}
	if c.Timeout <= 0 || c.Timeout > 5*time.Second {
		errs = append(errs, errors.New("redis.timeout: must be positive and at most 5s"))
	}
	if c.PoolSize < 0 {
		errs = append(errs, errors.New("redis.pool_size: must not be negative"))
	}
	if c.ProductTTL < time.Second {
		errs = append(errs, errors.New("redis.product_ttl: must be at least 1s"))
	}
	if c.TTLJitter < 0 || c.TTLJitter > 0.5 {
		errs = append(errs, errors.New("redis.ttl_jitter: must be between 0 and 0.5"))
	}
	if c.LocalTTL < 0 || c.LocalTTL > time.Minute {
		errs = append(errs, errors.New("redis.local_ttl: must be between 0 and 1m"))
	}
	errs = append(errs, c.validateKeys()...)
	if c.UnknownKeyTTL < time.Second || c.UnknownKeyTTL > time.Minute {
		errs = append(errs, errors.New("redis.unknown_key_ttl: must be between 1s and 1m"))
	}
	if c.BreakerFailures < 1 {
		errs = append(errs, errors.New("redis.breaker_failures: must be at least 1"))
	}
	if c.BreakerCooldown <= 0 {
		errs = append(errs, errors.New("redis.breaker_cooldown: must be positive"))
	}
	return errors.Join(errs...)
}

// validateKeys reports the problems with the API key settings.
func (c Config) validateKeys() []error {
	var errs []error
	keyTTLOK := c.KeyTTL >= time.Millisecond && c.KeyTTL <= time.Hour
	if !keyTTLOK {
		errs = append(errs, errors.New("redis.key_ttl: must be between 1ms and 1h"))
	}
	fallbackOK := c.KeyFallbackTTL >= time.Millisecond && c.KeyFallbackTTL <= time.Minute
	if !fallbackOK {
		errs = append(errs, errors.New("redis.key_fallback_ttl: must be between 1ms and 1m"))
	}
	switch {
	case c.KeyStaleTTL < time.Second || c.KeyStaleTTL > 24*time.Hour:
		errs = append(errs, errors.New("redis.key_stale_ttl: must be between 1s and 24h"))
	case keyTTLOK && fallbackOK && c.KeyStaleTTL < max(c.KeyTTL, c.KeyFallbackTTL):
		errs = append(errs, errors.New("redis.key_stale_ttl: must be at least key_ttl and key_fallback_ttl"))
	}
	return errs
}

// String describes the config with the password masked, so that logging a
// Config by accident leaks nothing.
func (c Config) String() string {
	password := ""
	if c.Password != "" {
		password = redact.Mask
	}
	return fmt.Sprintf("{Addr:%s Password:%s DB:%d DialTimeout:%s Timeout:%s PoolSize:%d ProductTTL:%s TTLJitter:%g "+
		"KeyTTL:%s KeyFallbackTTL:%s LocalTTL:%s BreakerFailures:%d BreakerCooldown:%s}",
		redact.URL(c.Addr), password, c.DB, c.DialTimeout, c.Timeout, c.PoolSize, c.ProductTTL, c.TTLJitter,
		c.KeyTTL, c.KeyFallbackTTL, c.LocalTTL, c.BreakerFailures, c.BreakerCooldown)
}

// GoString is String, so that %#v redacts too.
func (c Config) GoString() string { return c.String() }

// Client is a connection pool to Redis with a circuit breaker in front of
// it. The caches and the limiter share one Client.
type Client struct {
	rdb     *goredis.Client
	cfg     Config
	log     zerolog.Logger
	breaker *gobreaker.CircuitBreaker[struct{}]
	// breakerOpen is whether the breaker last changed to open: read on
	// every near-copy hit, where breaker.State would read the clock under
	// a lock. It turns false once a call finds the cooldown over.
	breakerOpen atomic.Bool
	warns       *logLimiter
	retry       *retryQueue
	// flight collapses concurrent misses of one entry into one store read.
	flight singleflight.Group
	// health remembers whether the wrapped stores answered lately.
	health storeHealth
	// failures counts the Redis calls that failed (not those the open
	// breaker skipped).
	failures atomic.Int64
	// lookups counts cache reads by cache and result (metrics.go).
	lookups lookups

	stop chan struct{}
	// bg waits for the loops started with background.
	bg sync.WaitGroup
	// epochReads counts key epoch reads by result (epoch.go).
	epochReads *prometheus.CounterVec

	// Near caches: what to drop on an invalidation, and whether the
	// invalidations subscription is up.
	mu         sync.Mutex
	droppers   []func(key string)
	subscribed atomic.Bool
	heard      atomic.Int64 // unix nanoseconds of the last message on the subscription
	// watchers are rung when their key is announced invalidated.
	watchers  map[string]map[chan struct{}]struct{}
	closeOnce sync.Once
}

// silenceOnce turns off go-redis's own logger, which writes every failed
// dial to stderr unthrottled. The same failures come back from the calls and
// are logged here at a limited rate. go-redis has one logger per process, and
// this package is its only user.
var silenceOnce sync.Once

// New validates cfg and returns a Client. It does not wait for Redis: one
// that is down at start-up only means nothing is cached until it is back.
func New(cfg Config, log zerolog.Logger) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	silenceOnce.Do(func() { goredis.SetLogger(&logging.VoidLogger{}) })
	c := &Client{
		cfg:        cfg,
		log:        log,
		warns:      newLogLimiter(warnEvery),
		retry:      newRetryQueue(maxPendingInvalidations),
		stop:       make(chan struct{}),
		lookups:    newLookups(),
		epochReads: newEpochReads(),
	}
	c.rdb = goredis.NewClient(&goredis.Options{
		Addr:                  cfg.Addr,
		Password:              cfg.Password,
		DB:                    cfg.DB,
		DialTimeout:           cfg.DialTimeout,
		DialerRetries:         1,
		ReadTimeout:           cfg.Timeout,
		WriteTimeout:          cfg.Timeout,
		ContextTimeoutEnabled: true,
		PoolSize:              cfg.PoolSize,
		PoolTimeout:           cfg.Timeout,
		// A retry would double the latency of a call to a hung server; the
		// breaker, not retries, deals with failures.
		MaxRetries: -1,
		// Redis 7.0 knows neither CLIENT SETINFO nor maintenance notifications.
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	c.breaker = newBreaker(cfg, c)
	c.background(c.retryLoop)
	if cfg.LocalTTL > 0 {
		c.background(c.listen) // for near caches and watchers (ProductCache.Watch)
	}
	return c, nil
}

// Ping checks that Redis answers within the call timeout. The service works
// without Redis, so a failed Ping means degraded, not unready.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis: %w", err)
	}
	return nil
}

// background runs loop, which must return once stop is closed; Close
// closes it and waits for every such loop.
func (c *Client) background(loop func()) { c.bg.Go(loop) }

// Close makes one last attempt at the cache invalidations that are still
// pending, then closes the pool.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.stop)
		c.bg.Wait()
		c.retryInvalidations(context.Background())
		if n := c.retry.len(); n > 0 {
			c.log.Warn().Int("entries", n).Dur("max_stale", c.cfg.ProductTTL).
				Msg("redis cache invalidations lost at close")
		}
		if cerr := c.rdb.Close(); cerr != nil {
			err = fmt.Errorf("close redis: %w", cerr)
		}
	})
	return err
}
