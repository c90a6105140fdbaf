package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"
)

const (
	// warnEvery is how often each kind of Redis failure may be logged.
	warnEvery = 10 * time.Second
	// maxPendingInvalidations bounds the invalidations kept for retrying.
	maxPendingInvalidations = 10_000
	// retryEvery is how often pending invalidations are retried.
	retryEvery = 250 * time.Millisecond
	// retryBatch is how many pending invalidations one retry sends.
	retryBatch = 256
)

// errCallerGone marks a call abandoned because the caller's context ended:
// it says nothing about Redis, so the breaker does not count it.
var errCallerGone = errors.New("caller gone")

func newBreaker(cfg Config, c *Client) *gobreaker.CircuitBreaker[struct{}] {
	return gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "redis",
		MaxRequests: 1,
		Timeout:     cfg.BreakerCooldown,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			return n.ConsecutiveFailures >= uint32(cfg.BreakerFailures)
		},
		IsExcluded:    func(err error) bool { return errors.Is(err, errCallerGone) },
		OnStateChange: c.breakerChanged,
	})
}

// breakerChanged keeps breakerOpen, and logs when the breaker opens and
// when it closes again; the probes in between are not worth a line.
func (c *Client) breakerChanged(_ string, from, to gobreaker.State) {
	c.breakerOpen.Store(to == gobreaker.StateOpen)
	switch {
	case to == gobreaker.StateOpen:
		c.note(zerolog.WarnLevel, "redis circuit open", nil, func(e *zerolog.Event) {
			e.Dur("retry_in", c.cfg.BreakerCooldown).Str("from", from.String())
		})
	case to == gobreaker.StateClosed:
		c.note(zerolog.InfoLevel, "redis circuit closed", nil, nil)
	}
}

// do runs one Redis call behind the breaker with the call timeout. A failure
// is logged (at a limited rate) and returned; callers carry on without Redis.
// goredis.Nil must not reach do: a miss is not a failure.
func (c *Client) do(ctx context.Context, op string, call func(ctx context.Context) error) error {
	_, err := c.breaker.Execute(func() (struct{}, error) {
		cctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
		err := call(cctx)
		if err != nil && ctx.Err() != nil {
			return struct{}{}, fmt.Errorf("%w: %w", errCallerGone, err)
		}
		return struct{}{}, err
	})
	switch {
	case err == nil, errors.Is(err, errCallerGone):
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		// The breaker logged when it opened.
	default:
		c.failures.Add(1)
		c.note(zerolog.WarnLevel, op+" failed", err, nil)
	}
	return err
}

// note logs msg at most once per warnEvery, with the count of the lines it
// held back.
func (c *Client) note(level zerolog.Level, msg string, err error, fields func(*zerolog.Event)) {
	ok, suppressed := c.warns.allow(msg, time.Now())
	if !ok {
		return
	}
	e := c.log.WithLevel(level).Int("suppressed", suppressed)
	if err != nil {
		e = e.Err(err)
	}
	if fields != nil {
		fields(e)
	}
	e.Msg(msg)
}

// logLimiter lets through one line per kind and interval.
type logLimiter struct {
	every time.Duration
	mu    sync.Mutex
	kinds map[string]*logState
}

type logState struct {
	last       time.Time
	suppressed int
}

func newLogLimiter(every time.Duration) *logLimiter {
	return &logLimiter{every: every, kinds: make(map[string]*logState)}
}

// allow reports whether a line of kind may be logged now and, if so, how many
// were held back since the last one.
func (l *logLimiter) allow(kind string, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.kinds[kind]
	if s == nil {
		s = &logState{}
		l.kinds[kind] = s
	}
	if !s.last.IsZero() && now.Sub(s.last) < l.every {
		s.suppressed++
		return false, 0
	}
	suppressed, s.suppressed, s.last = s.suppressed, 0, now
	return true, suppressed
}

// forget deletes a cached entry after its source changed. If Redis cannot be
// reached the delete is kept and retried until it succeeds, and until then
// reads of the entry bypass the cache. It runs even when the caller's context
// has ended: the change is committed, and the entry must go.
func (c *Client) forget(ctx context.Context, e entry) { c.invalidate(ctx, e, false) }

// invalidate is forget, and with changed it also ends the change that
// intend counted.
func (c *Client) invalidate(ctx context.Context, e entry, changed bool) {
	// A store read in flight may have started before the change: later
	// readers must not wait for its result but read again.
	c.flight.Forget(e.value)
	c.dropLocal(e.value)
	ctx = context.WithoutCancel(ctx)
	err := c.do(ctx, "redis cache invalidation", func(ctx context.Context) error {
		return invalidateScript.Run(ctx, c.rdb, e.keys(), c.announcements(), endChange(changed)).Err()
	})
	if err == nil {
		return
	}
	if !c.retry.add(e) {
		c.note(zerolog.ErrorLevel, "redis cache invalidation dropped", err, func(ev *zerolog.Event) {
			ev.Str("key", e.value).Int("pending", maxPendingInvalidations)
		})
	}
}

// keys are e's Redis keys, in the order the scripts take them.
func (e entry) keys() []string { return []string{e.value, e.gen, e.changes} }

// changeTTL bounds how long a change counted in flight keeps readers from
// filling its entry when the process that made it dies before it is
// ended: the longest a change takes (a request's deadline, an image
// attempt's database steps) with a margin, or when the invalidation that
// ends it was lost (Redis away: its retry only deletes). Each change
// counted sets it again.
const changeTTL = 30 * time.Second

// changing runs change, which alters what e caches, between intend and
// the invalidation that ends it, and returns its error. So a process that
// dies between its commit and that invalidation leaves no stale value
// behind: the value went before the change, and while any change of e is
// in flight no reader fills it. Readers go to the store until the last
// change ends, or for changeTTL after a change that never did.
func (c *Client) changing(ctx context.Context, e entry, change func() error) error {
	c.intend(ctx, e)
	err := change()
	c.invalidate(ctx, e, true)
	return err
}

// intend empties e, and its generation token, so that no reader that
// looked it up before can fill it; counts a change in flight; and
// announces the entry like an invalidation, so that near copies go too.
// It is best effort: when Redis cannot be reached the change goes ahead,
// and the invalidation after it takes care of the entry as before.
func (c *Client) intend(ctx context.Context, e entry) {
	c.dropLocal(e.value)
	_ = c.do(context.WithoutCancel(ctx), "redis cache invalidation", func(ctx context.Context) error {
		return intendScript.Run(ctx, c.rdb, e.keys(), c.announcements(), changeTTL.Milliseconds()).Err()
	})
}

// intendScript deletes an entry's value and token, counts a change in
// flight for ARGV[2] ms and, when ARGV[1] names a channel, announces the
// entry there.
var intendScript = goredis.NewScript(`
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('INCR', KEYS[3])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
if ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], KEYS[1]) end
return 1`)

// invalidateScript deletes an entry's value and token and, when ARGV[1]
// names a channel, announces the entry there, in one step: a delete that
// succeeds is always announced, so the near copies of other processes never
// outlive a Redis value that is gone. Whoever hears the announcement and
// reads Redis again cannot find the old value there. With ARGV[2] "1" it
// also ends a change in flight (see intendScript).
var invalidateScript = goredis.NewScript(`
redis.call('DEL', KEYS[1], KEYS[2])
if ARGV[2] == '1' and redis.call('DECR', KEYS[3]) <= 0 then redis.call('DEL', KEYS[3]) end
if ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], KEYS[1]) end
return 1`)

// endChange is invalidateScript's ARGV[2].
func endChange(changed bool) string {
	if changed {
		return "1"
	}
	return "0"
}

// announcements is the channel invalidations are announced on, or "" when
// near copies are off (LocalTTL 0) and nobody listens.
func (c *Client) announcements() string {
	if c.cfg.LocalTTL <= 0 {
		return ""
	}
	return invalidations
}

// forgetting reports whether the entry has an invalidation pending, so its
// cached value must not be used or written.
func (c *Client) forgetting(e entry) bool { return c.retry.has(e) }

func (c *Client) retryLoop() {
	c.every(retryEvery, func() { c.retryInvalidations(context.Background()) })
}

// every runs fn every d until Close.
func (c *Client) every(d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			fn()
		}
	}
}

// retryInvalidations sends one batch of pending invalidations, unless the
// breaker says Redis is down.
func (c *Client) retryInvalidations(ctx context.Context) {
	batch := c.retry.batch(retryBatch)
	if len(batch) == 0 || c.breaker.State() == gobreaker.StateOpen {
		return
	}
	err := c.do(ctx, "redis cache invalidation", func(ctx context.Context) error {
		_, err := c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for e := range batch {
				invalidateScript.Eval(ctx, p, e.keys(), c.announcements(), endChange(false))
			}
			return nil
		})
		return err
	})
	if err == nil {
		c.retry.done(batch)
	}
}

// retryQueue holds invalidations that could not reach Redis.
type retryQueue struct {
	max     int
	mu      sync.Mutex
	seq     uint64
	pending map[entry]uint64 // entry → sequence number of its latest failure
}

func newRetryQueue(max int) *retryQueue {
	return &retryQueue{max: max, pending: make(map[entry]uint64)}
}

// add records a failed invalidation, or reports false when the queue is full.
func (q *retryQueue) add(e entry) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.pending[e]; !ok && len(q.pending) >= q.max {
		return false
	}
	q.seq++
	q.pending[e] = q.seq
	return true
}

func (q *retryQueue) has(e entry) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, ok := q.pending[e]
	return ok
}

func (q *retryQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// batch returns up to n pending entries with their sequence numbers.
func (q *retryQueue) batch(n int) map[entry]uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		return nil
	}
	b := make(map[entry]uint64, min(n, len(q.pending)))
	for e, seq := range q.pending {
		if len(b) == n {
			break
		}
		b[e] = seq
	}
	return b
}

// done drops the entries of a batch that succeeded, except those that failed
// again meanwhile: their newer change may have come after the delete.
func (q *retryQueue) done(b map[entry]uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for e, seq := range b {
		if q.pending[e] == seq {
			delete(q.pending, e)
		}
	}
}
