package redis

import (
	"context"
	"errors"
	"sync"
	"time"
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
// most 250) and spends them locally within leaseTTL. When a quarter of a
// lease is left, the next one is ordered ahead: a background loop collects
// the orders of every caller for refillLinger and takes them from Redis in
// one pipelined round trip, so a busy process pays about one round trip per
// refillLinger rather than one per lease, and a steady caller never waits
// for Redis. Tokens are taken before they are spent, so the limit is never
// exceeded; a process may hold a lease and a quarter of unused ones for up
// to leaseTTL, so a caller can be refused a little early (by at most that
// per process). The quarter left when an ordered lease arrives takes the
// new lease's expiry, so those few tokens may be held up to twice leaseTTL. With a burst under 20 no lease is ordered ahead, and under
// 10 every request goes to Redis.
type Limiter struct {
	mu      sync.Mutex
	leases  map[string]*lease
	orders  []tokenOrder  // leases ordered ahead, for the refill loop
	ordered chan struct{} // signals the first order of a batch
	blocked blocklist     // client addresses over their failure budget

	c       *Client
	read    budget
	write   budget
	failure budget
}

// Leases: how long a process may hold tokens, how many callers' leases it
// keeps, and how long the refill loop collects orders.
const (
	leaseTTL     = 5 * time.Second
	maxLeases    = 100_000
	refillLinger = 5 * time.Millisecond
)

type lease struct {
	tokens    int
	expires   time.Time
	limit     int
	remaining int       // in Redis when tokens were last taken
	resetAt   time.Time // when the budget in Redis is full again, as it said then
	ordered   bool      // the next lease is ordered (see Limiter)
}

// leaseSize is how many tokens a process takes from Redis at once.
func leaseSize(burst int) int { return min(max(burst/5, 1), 250) }

// spend uses a token of the caller's lease, if it has one, and orders the
// next lease when a quarter of this one is left.
func (l *Limiter) spend(k []byte, b budget, now time.Time) (Decision, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls := l.leases[string(k)]
	if ls == nil || ls.tokens == 0 || !now.Before(ls.expires) {
		return Decision{}, false
	}
	ls.tokens--
	if n := leaseSize(b.burst); !ls.ordered && n >= 4 && ls.tokens <= n/4 {
		ls.ordered = true
		l.orders = append(l.orders, tokenOrder{key: string(k), b: b, n: n})
		if len(l.orders) == 1 { // the loop takes the later ones with it
			select {
			case l.ordered <- struct{}{}:
			default: // a signal is pending already
			}
		}
	}
	return Decision{Allowed: true, Limit: ls.limit, Remaining: ls.remaining + ls.tokens, ResetAfter: max(ls.resetAt.Sub(now), 0)}, true
}

// keep adds t's tokens, less the ones spent now, to the caller's lease,
// made if it has none.
func (l *Limiter) keep(k string, b budget, t taken, spent int, now time.Time) {
	ls := l.leases[k]
	if ls == nil {
		if len(l.leases) >= maxLeases {
			clear(l.leases) // rare, and only costs a round trip per caller
		}
		ls = &lease{limit: b.burst}
		l.leases[k] = ls
	}
	if !now.Before(ls.expires) {
		ls.tokens = 0 // held too long
	}
	ls.tokens += t.n - spent
	ls.expires, ls.remaining, ls.resetAt = now.Add(leaseTTL), t.remaining, now.Add(t.resetAfter)
}

// refill takes the leases ordered ahead from Redis, refillLinger's worth
// of orders in each round trip, until the client closes. An order that
// fails is dropped: the caller's next request then asks Redis itself.
func (l *Limiter) refill() {
	linger := time.NewTimer(refillLinger)
	linger.Stop()
	var batch []tokenOrder
	for {
		select {
		case <-l.c.stop:
			return
		case <-l.ordered:
		}
		linger.Reset(refillLinger)
		select {
		case <-l.c.stop:
			return
		case <-linger.C:
		}
		l.mu.Lock()
		batch, l.orders = l.orders, batch[:0]
		l.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.c.cfg.Timeout)
		res, err := l.c.takeTokensPipelined(ctx, batch)
		cancel()
		now := time.Now()
		l.mu.Lock()
		for i, o := range batch {
			if ls := l.leases[o.key]; ls != nil {
				ls.ordered = false
			}
			if err == nil && res[i].n > 0 {
				l.keep(o.key, o.b, res[i], 0, now)
			}
		}
		l.mu.Unlock()
	}
}

// NewLimiter validates cfg and returns a Limiter with its rates. It orders
// leases ahead until c is closed.
func NewLimiter(c *Client, cfg LimitConfig) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Limiter{
		leases:  map[string]*lease{},
		ordered: make(chan struct{}, 1),
		blocked: blocklist{until: map[string]time.Time{}},
		c:       c,
		read:    newBudget(cfg.ReadRate, cfg.ReadBurst, time.Second),
		write:   newBudget(cfg.WriteRate, cfg.WriteBurst, time.Second),
		failure: newBudget(cfg.AuthFailuresPerMinute, cfg.AuthFailureBurst, time.Minute),
	}
	c.background(l.refill)
	return l, nil
}

// Allow counts one request by key (a caller's identity) against its read or
// write budget and says whether it may proceed.
//
// The limiter fails open: when Redis fails or the breaker is open the
// request is allowed (Remaining = Limit) and a warning is logged at a
// limited rate, since refusing every request would turn a cache outage into
// a full outage. The error is non-nil only when ctx ended.
func (l *Limiter) Allow(ctx context.Context, key string, write bool) (Decision, error) {
	b, prefix := l.read, "pms:rl:r:"
	if write {
		b, prefix = l.write, "pms:rl:w:"
	}
	// The key in Redis, and of the caller's lease, made a string only when
	// the lease cannot answer: most requests spend a token of it.
	var buf [64]byte
	kb := append(append(buf[:0], prefix...), key...)
	now := time.Now()
	if d, ok := l.spend(kb, b, now); ok {
		return d, nil
	}
	k := string(kb)
	// No lease (or it ran out before the one ordered came): as many
	// tokens of a lease as are left, one of them for this request.
	t, err := l.c.takeTokens(ctx, k, b, leaseSize(b.burst))
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return Decision{}, cerr
		}
		return Decision{Allowed: true, Limit: b.burst, Remaining: b.burst}, nil
	}
	if t.n == 0 {
		return Decision{Limit: b.burst, RetryAfter: t.retryAfter, ResetAfter: t.resetAfter}, nil
	}
	if t.n > 1 {
		l.mu.Lock()
		l.keep(k, b, t, 1, now)
		l.mu.Unlock()
	}
	// The leased tokens are still this caller's to spend.
	return Decision{Allowed: true, Limit: b.burst, Remaining: t.remaining + t.n - 1, ResetAfter: t.resetAfter}, nil
}
