package redis

import (
	"context"
	"errors"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// LimitConfig sets the request rates each caller may sustain, per second,
// and the bursts it may make above them. Reads and writes have separate
// budgets.
type LimitConfig struct {
	ReadRate   int `mapstructure:"read_rate"`
	ReadBurst  int `mapstructure:"read_burst"`
	WriteRate  int `mapstructure:"write_rate"`
	WriteBurst int `mapstructure:"write_burst"`
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
type Limiter struct {
	c     *Client
	rl    *redis_rate.Limiter
	read  redis_rate.Limit
	write redis_rate.Limit
}

// NewLimiter validates cfg and returns a Limiter with its rates.
func NewLimiter(c *Client, cfg LimitConfig) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Limiter{
		c:     c,
		rl:    redis_rate.NewLimiter(c.rdb),
		read:  redis_rate.Limit{Rate: cfg.ReadRate, Burst: cfg.ReadBurst, Period: time.Second},
		write: redis_rate.Limit{Rate: cfg.WriteRate, Burst: cfg.WriteBurst, Period: time.Second},
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
	var res *redis_rate.Result
	err := l.c.do(ctx, "redis rate limit", func(ctx context.Context) error {
		var err error
		res, err = l.rl.Allow(ctx, k, limit)
		return err
	})
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return Decision{}, cerr
		}
		return Decision{Allowed: true, Limit: limit.Burst, Remaining: limit.Burst}, nil
	}
	return Decision{
		Allowed:    res.Allowed > 0,
		Limit:      limit.Burst,
		Remaining:  res.Remaining,
		RetryAfter: max(res.RetryAfter, 0),
		ResetAfter: max(res.ResetAfter, 0),
	}, nil
}
