package redis

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// invalidations is the pub/sub channel on which every process announces the
// cache entries it invalidated, so the others drop their near copies.
const invalidations = "pms:invalidations"

// near is an in-process cache in front of Redis for the hottest reads, so
// most of them cost no round trip. An entry lives at most ttl. Every
// invalidation removes its entry at once: this process's own, and every
// other process's, announced on the invalidations channel. A fill that
// started before an invalidation is dropped (the epoch changed), so a
// reader that raced a writer cannot put a stale value back. Until the
// subscription is confirmed, and whenever it is re-made, nothing is kept:
// the ttl bounds how stale an entry can be when an announcement is lost.
type near[T any] struct {
	c     *Client
	ttl   time.Duration
	clone func(T) T // a copy the caller may keep

	mu    sync.Mutex
	items map[string]nearItem[T]
	epoch atomic.Uint64
	live  *atomic.Bool // the invalidations subscription is up
}

type nearItem[T any] struct {
	v       T
	expires time.Time
}

// maxNear bounds each near cache; past it, expired entries go, then all.
const maxNear = 100_000

// usable reports whether near copies may be used: only while invalidations
// can arrive, and not while Redis is failing (then PostgreSQL answers).
func (n *near[T]) usable() bool {
	return n != nil && n.live.Load() && n.c.breaker.State() != gobreaker.StateOpen
}

// get returns the entry's value, if it holds a fresh one.
func (n *near[T]) get(key string, now time.Time) (T, bool) {
	var zero T
	if !n.usable() {
		return zero, false
	}
	n.mu.Lock()
	it, ok := n.items[key]
	n.mu.Unlock()
	if !ok || !now.Before(it.expires) {
		return zero, false
	}
	return n.clone(it.v), true
}

// start returns the epoch a fill must still see to be kept.
func (n *near[T]) start() uint64 {
	if n == nil {
		return 0
	}
	return n.epoch.Load()
}

// put keeps v under key unless something was invalidated since epoch.
func (n *near[T]) put(key string, v T, epoch uint64, now time.Time) {
	if !n.usable() {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.epoch.Load() != epoch {
		return
	}
	if len(n.items) >= maxNear {
		for k, it := range n.items {
			if !now.Before(it.expires) {
				delete(n.items, k)
			}
		}
		if len(n.items) >= maxNear {
			clear(n.items)
		}
	}
	n.items[key] = nearItem[T]{v: n.clone(v), expires: now.Add(n.ttl)}
}

// drop removes key, or everything when key is "".
func (n *near[T]) drop(key string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.epoch.Add(1)
	if key == "" {
		clear(n.items)
	} else {
		delete(n.items, key)
	}
}

// newNear returns a near cache fed by c's invalidations, or nil when
// Config.LocalTTL turns near caching off.
func newNear[T any](c *Client, ttl time.Duration, clone func(T) T) *near[T] {
	if ttl <= 0 {
		return nil
	}
	n := &near[T]{c: c, ttl: ttl, clone: clone, items: map[string]nearItem[T]{}, live: &c.subscribed}
	c.mu.Lock()
	c.droppers = append(c.droppers, n.drop)
	c.mu.Unlock()
	return n
}

// dropLocal removes key from every near cache of this process ("" = all).
func (c *Client) dropLocal(key string) {
	c.mu.Lock()
	droppers := c.droppers
	c.mu.Unlock()
	for _, drop := range droppers {
		drop(key)
	}
}

// announce tells the other processes that key was invalidated. A failure
// is logged by do; the others' near copies then expire within LocalTTL.
func (c *Client) announce(ctx context.Context, key string) {
	if c.cfg.LocalTTL <= 0 {
		return
	}
	_ = c.do(ctx, "redis invalidation announcement", func(ctx context.Context) error {
		return c.rdb.Publish(ctx, invalidations, key).Err()
	})
}

// watch returns a channel that receives a value each time key is
// announced invalidated, by any process (this one too), and whenever
// announcements may have been missed; and the function that stops it.
// Values do not queue: one waiting means "changed since you last looked".
func (c *Client) watch(key string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	if c.watchers == nil {
		c.watchers = map[string]map[chan struct{}]struct{}{}
	}
	if c.watchers[key] == nil {
		c.watchers[key] = map[chan struct{}]struct{}{}
	}
	c.watchers[key][ch] = struct{}{}
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.watchers[key], ch)
		if len(c.watchers[key]) == 0 {
			delete(c.watchers, key)
		}
		c.mu.Unlock()
	}
}

// ring wakes the watchers of key ("" = every watcher).
func (c *Client) ring(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, set := range c.watchers {
		if key != "" && k != key {
			continue
		}
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// listen applies the other processes' invalidations to the near caches
// until Close. Each (re)subscription empties them, since announcements made
// while unsubscribed are lost.
func (c *Client) listen() {
	defer close(c.listenDone)
	ps := c.rdb.Subscribe(context.Background(), invalidations)
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions(goredis.WithChannelHealthCheckInterval(time.Second))
	for {
		select {
		case <-c.stop:
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			switch m := msg.(type) {
			case *goredis.Subscription:
				c.dropLocal("")
				c.subscribed.Store(m.Kind == "subscribe")
				c.ring("") // announcements may have been lost meanwhile
			case *goredis.Message:
				c.dropLocal(m.Payload)
				c.ring(m.Payload)
			}
		}
	}
}
