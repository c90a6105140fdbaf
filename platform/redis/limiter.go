package redis

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// LimitConfig sets the request rates each caller may sustain, per second,
// and the bursts it may make above them. Reads and writes have separate
// budgets. Failed authentications have a budget per client address, per
// minute (see Limiter.Fail).
type LimitConfig struct {
	ReadRate   int `mapstructure:"read_rate"`
	ReadBurst  int `mapstructure:"read_burst"`
	WriteRate  int `mapstructure:"write_rate"`
	WriteBurst int `mapstructure:"write_burst"`

	AuthFailuresPerMinute int `mapstructure:"auth_failures_per_minute"`
	AuthFailureBurst      int `mapstructure:"auth_failure_burst"`
}

// DefaultLimitConfig returns the defaults of every rate limit.
func DefaultLimitConfig() LimitConfig {
	return LimitConfig{ReadRate: 50, ReadBurst: 100, WriteRate: 10, WriteBurst: 20, AuthFailuresPerMinute: 60, AuthFailureBurst: 20}
}

// Validate reports every problem with the config.
func (c LimitConfig) Validate() error {
	var errs []error
	if c.ReadRate < 1 || c.ReadBurst < 1 {
		errs = append(errs, errors.New("rate_limit.read_rate, read_burst: must be at least 1"))
	}
	if c.WriteRate < 1 || c.WriteBurst < 1 {
		errs = append(errs, errors.New("rate_limit.write_rate, write_burst: must be at least 1"))
	}
	if c.AuthFailuresPerMinute < 1 || c.AuthFailureBurst < 1 {
		errs = append(errs, errors.New("rate_limit.auth_failures_per_minute, auth_failure_burst: must be at least 1"))
	}
	return errors.Join(errs...)
}

// Decision is the limiter's answer for one request.
type Decision struct {
	Allowed bool
	// Limit is the burst size: how many requests may be made at once.
	Limit int
	// Remaining is how many more requests may be made right now.
	Remaining int
	// RetryAfter is how long to wait before the next request is allowed;
	// 0 when this one was.
	RetryAfter time.Duration
	// ResetAfter is how long until the full burst is available again.
	ResetAfter time.Duration
}

// Limiter rate-limits callers with the generic cell rate algorithm, its
// state kept in Redis so every instance shares it.
//
// To spare a Redis round trip per request, a process takes a caller's
// tokens from Redis a few at a time (a lease of a fifth of the burst, at
// most 250) and spends them locally within leaseTTL. Tokens are taken before
// they are spent, so the limit is never exceeded; a process may hold a few
// unused ones for up to leaseTTL, so a caller can be refused a little early
// (by at most a lease per process). With a burst under 10 every request goes
// to Redis; at the default read burst (100) one in 20 does, at the default
// write burst (20) one in 4.
type Limiter struct {
	mu      sync.Mutex
	leases  map[string]*lease
	blocked blocklist // client addresses over their failure budget

	c       *Client
	rl      *redis_rate.Limiter
	read    redis_rate.Limit
	write   redis_rate.Limit
	failure redis_rate.Limit
}

// Leases: how long a process may hold tokens, and how many callers' leases
// it keeps.
const (
	leaseTTL  = 5 * time.Second
	maxLeases = 100_000
)

type lease struct {
	tokens    int
	expires   time.Time
	limit     int
	remaining int       // in Redis when the lease was taken
	resetAt   time.Time // when the budget in Redis is full again, as it said then
}

// leaseSize is how many tokens a process takes from Redis at once.
func leaseSize(burst int) int { return min(max(burst/5, 1), 250) }

// spend uses a token of the caller's lease, if it has one.
func (l *Limiter) spend(k string, now time.Time) (Decision, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls := l.leases[k]
	if ls == nil || ls.tokens == 0 || !now.Before(ls.expires) {
		return Decision{}, false
	}
	ls.tokens--
	return Decision{Allowed: true, Limit: ls.limit, Remaining: ls.remaining + ls.tokens, ResetAfter: max(ls.resetAt.Sub(now), 0)}, true
}

// take takes n tokens from the caller's budget in Redis, all or none.
func (l *Limiter) take(ctx context.Context, k string, limit redis_rate.Limit, n int) (*redis_rate.Result, error) {
	var res *redis_rate.Result
	err := l.c.do(ctx, "redis rate limit", func(ctx context.Context) error {
		var err error
		res, err = l.rl.AllowN(ctx, k, limit, n)
		return err
	})
	return res, err
}

// NewLimiter validates cfg and returns a Limiter with its rates.
func NewLimiter(c *Client, cfg LimitConfig) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Limiter{
		leases:  map[string]*lease{},
		blocked: blocklist{until: map[string]time.Time{}},
		c:       c,
		rl:      redis_rate.NewLimiter(c.rdb),
		read:    redis_rate.Limit{Rate: cfg.ReadRate, Burst: cfg.ReadBurst, Period: time.Second},
		write:   redis_rate.Limit{Rate: cfg.WriteRate, Burst: cfg.WriteBurst, Period: time.Second},
		failure: redis_rate.Limit{Rate: cfg.AuthFailuresPerMinute, Burst: cfg.AuthFailureBurst, Period: time.Minute},
	}, nil
}

// Allow counts one request by key (a caller's identity) against its read or
// write budget and says whether it may proceed.
//
// The limiter fails open: when Redis fails or the breaker is open the
// request is allowed (Remaining = Limit) and a warning is logged at a
// limited rate, since refusing every request would turn a cache outage into
// a full outage. The error is non-nil only when ctx ended.
func (l *Limiter) Allow(ctx context.Context, key string, write bool) (Decision, error) {
	limit, k := l.read, "pms:rl:r:"+key
	if write {
		limit, k = l.write, "pms:rl:w:"+key
	}
	now := time.Now()
	if d, ok := l.spend(k, now); ok {
		return d, nil
	}
	n := leaseSize(limit.Burst)
	res, err := l.take(ctx, k, limit, n)
	if err == nil && res.Allowed == 0 && n > 1 {
		// Not a whole lease left: the last tokens go one by one.
		n = 1
		res, err = l.take(ctx, k, limit, n)
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return Decision{}, cerr
		}
		return Decision{Allowed: true, Limit: limit.Burst, Remaining: limit.Burst}, nil
	}
	if res.Allowed > 0 && n > 1 {
		l.mu.Lock()
		if len(l.leases) >= maxLeases {
			clear(l.leases) // rare, and only costs a round trip per caller
		}
		l.leases[k] = &lease{tokens: n - 1, expires: now.Add(leaseTTL), limit: limit.Burst, remaining: res.Remaining,
			resetAt: now.Add(max(res.ResetAfter, 0))}
		l.mu.Unlock()
	}
	remaining := res.Remaining
	if res.Allowed > 0 {
		remaining += n - 1 // the leased tokens are still this caller's to spend
	}
	return Decision{
		Allowed:    res.Allowed > 0,
		Limit:      limit.Burst,
		Remaining:  remaining,
		RetryAfter: max(res.RetryAfter, 0),
		ResetAfter: max(res.ResetAfter, 0),
	}, nil
}
