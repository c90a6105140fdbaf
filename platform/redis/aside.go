package redis

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"runtime/debug"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"
)

// genTTL is how long a generation token lives. A reader whose store read
// takes longer only skips writing the cache.
const genTTL = time.Minute

// entry names the Redis keys of one cached item: its value; its generation
// token, which the stale-set guard compares; and the count of changes to it
// in flight (Client.changing). All carry the same {hash tag} so a script
// may touch them together on a cluster too.
type entry struct{ value, gen, changes string }

func newEntry(base string) entry {
	return entry{value: base, gen: base + ":gen", changes: base + ":changes"}
}

// hashTagOf returns what the {hash tag} of a Redis key that starts with
// prefix (which ends in "{") holds, or false for another key.
func hashTagOf(key, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "}")
}

// The stale-set guard. A reader that misses gets the entry's generation
// token (created if there is none) in the round trip after the miss, then
// reads the store, then writes the value only if the token is still the one
// it saw. A writer deletes value and token together after its commit. So a
// reader whose store read came before a commit either writes before that
// commit's delete, which then removes the value, or finds the token gone (or
// replaced by a later reader's fresh random one) and writes nothing. Tokens
// are random, so a token that expired or was evicted cannot come back. A
// writer may also empty the entry before its change and count the change
// in flight (Client.changing): while any is, a reader gets no token.
var (
	// lookupScript returns {1, value} on a hit, else {0, token}, the token
	// "" while a change is in flight.
	lookupScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {0, ''} end
local g = redis.call('GET', KEYS[2])
if not g then
  g = ARGV[1]
  redis.call('SET', KEYS[2], g, 'PX', ARGV[2])
end
return {0, g}`)
	// storeScript sets the value if the token is unchanged; 1 if it did.
	storeScript = goredis.NewScript(`
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`)
)

// lookup is what the cache holds for an entry: a value on a hit, otherwise
// the generation token under which a reader may fill it ("" when it may not).
type lookup struct {
	value  []byte
	token  string
	failed bool // Redis did not answer (or the breaker is open)
}

func (c *Client) lookup(ctx context.Context, e entry) lookup {
	if c.forgetting(e) {
		return lookup{}
	}
	// A hit is a plain GET: most reads are hits, and a GET costs Redis and
	// this process less than the script, which only a miss needs.
	var value []byte
	err := c.do(ctx, "redis cache read", func(ctx context.Context) error {
		var err error
		value, err = c.rdb.Get(ctx, e.value).Bytes()
		if errors.Is(err, goredis.Nil) {
			return nil
		}
		return err
	})
	if err != nil {
		return lookup{failed: true}
	}
	if value != nil {
		return lookup{value: value}
	}
	var res []any
	err = c.do(ctx, "redis cache read", func(ctx context.Context) error {
		var err error
		res, err = lookupScript.Run(ctx, c.rdb, e.keys(), rand.Text(), genTTL.Milliseconds()).Slice()
		return err
	})
	if err != nil || len(res) != 2 {
		return lookup{failed: true}
	}
	hit, _ := res[0].(int64)
	s, _ := res[1].(string)
	if hit == 1 { // filled between the GET and the script
		return lookup{value: []byte(s)}
	}
	return lookup{token: s}
}

// store writes the value of an entry unless its token changed since lookup.
// It reports whether it wrote.
func (c *Client) store(ctx context.Context, e entry, token string, data []byte, ttl time.Duration) bool {
	if token == "" || c.forgetting(e) {
		return false
	}
	var n int64
	err := c.do(ctx, "redis cache write", func(ctx context.Context) error {
		var err error
		n, err = storeScript.Run(ctx, c.rdb, []string{e.value, e.gen}, token, data, ttl.Milliseconds()).Int64()
		return err
	})
	return err == nil && n == 1
}

// aside is a cache-aside read path for values of type T. Misses of one entry
// are collapsed into one store read (Client.flight).
type aside[T any] struct {
	c      *Client
	what   string                // for logs
	ttl    func(T) time.Duration // how long a value stays in Redis
	encode func(T) ([]byte, error)
	decode func([]byte) (T, error)
}

// get returns the cached value of e, or load's result, which it caches
// unless load failed. Errors come from load or from ctx only. cached
// reports whether the value is in Redis (a hit, or a fill that wrote it):
// only such a value may be kept nearer, since a fill that could not write
// may have read the store while a change of it was in flight.
func (a *aside[T]) get(ctx context.Context, e entry, load func(context.Context) (T, error)) (v T, cached bool, err error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, false, err
	}
	l := a.c.lookup(ctx, e)
	a.count(l)
	if l.value != nil {
		v, err := a.decode(l.value)
		if err == nil {
			return v, true, nil
		}
		a.c.note(zerolog.WarnLevel, "cached "+a.what+" unreadable", err, nil)
		a.c.forget(ctx, e)
	}
	return a.await(ctx, a.c.flight.DoChan(e.value, func() (any, error) { return a.fill(ctx, e, l.token, load) }))
}

// filled is what a fill hands the readers waiting on it: the value's
// encoding, and whether it was written to Redis.
type filled struct {
	data   []byte
	stored bool
}

// count counts a lookup in pms_cache_requests_total.
func (a *aside[T]) count(l lookup) {
	switch {
	case l.value != nil:
		a.c.count(a.what, resultHit)
	case l.failed:
		a.c.count(a.what, resultError)
	default:
		a.c.count(a.what, resultMiss)
	}
}

// await returns the value a fill sends on ch, and whether the fill wrote
// it to Redis, or ctx's error if it ends first. Each caller decodes its own
// copy: shared results share no slices.
func (a *aside[T]) await(ctx context.Context, ch <-chan singleflight.Result) (T, bool, error) {
	var zero T
	select {
	case r := <-ch:
		if r.Err != nil {
			return zero, false, r.Err
		}
		f := r.Val.(filled)
		v, err := a.decode(f.data)
		return v, f.stored, err
	case <-ctx.Done():
		return zero, false, ctx.Err()
	}
}

// fill loads the value for everyone waiting on e and caches it under token.
// It outlives the cancellation of the caller that started it, which would
// otherwise fail the others, but keeps that caller's deadline.
//
// A panic in load becomes an error: singleflight would re-raise it on a
// goroutine of its own, where no recovery middleware could catch it.
func (a *aside[T]) fill(ctx context.Context, e entry, token string, load func(context.Context) (T, error)) (_ filled, err error) {
	ctx, cancel := detach(ctx)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			a.c.log.Error().Bytes("stack", debug.Stack()).
				Msgf("panic reading %s: %v", a.what, r)
			err = fmt.Errorf("read %s: panic: %v", a.what, r)
		}
	}()
	v, err := load(ctx)
	a.c.health.note(err, time.Now())
	if err != nil {
		return filled{}, err
	}
	data, err := a.encode(v)
	if err != nil {
		return filled{}, fmt.Errorf("encode %s for cache: %w", a.what, err)
	}
	return filled{data, a.c.store(ctx, e, token, data, a.ttl(v))}, nil
}

// detach returns a context with ctx's values and deadline but not its
// cancellation.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	d := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(d, dl)
	}
	return d, func() {}
}

// jittered returns ttl moved by a random amount of at most ±jitter×ttl, so
// entries filled together do not expire together.
func jittered(ttl time.Duration, jitter float64) time.Duration {
	if jitter <= 0 {
		return ttl
	}
	f := 1 + jitter*(2*mrand.Float64()-1)
	return time.Duration(float64(ttl) * f)
}
