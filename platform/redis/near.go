package redis

import (
	"context"
	"crypto/rand"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// invalidations is the pub/sub channel on which every process announces the
// cache entries it invalidated, so the others drop their near copies.
const invalidations = "pms:invalidations"

// near is an in-process cache in front of Redis for the hottest reads, so
// most of them cost no round trip. An entry lives at most ttl. Every
// invalidation removes its entry at once: this process's own, and every
// other process's, announced on the invalidations channel in the same
// script that deletes the Redis value (invalidateScript). A fill that
// started before an invalidation is dropped (the epoch changed), so a
// reader that raced a writer cannot put a stale value back.
//
// So a near copy is never staler than Redis itself, as long as this
// process hears the announcements. It stops trusting them when it has
// heard nothing on the subscription, not even its own heartbeat, for
// subscriptionSilence; until the subscription is confirmed, and whenever
// it is re-made, nothing is kept. An announcement can then only be missed
// for subscriptionSilence, and ttl bounds the rest.
//
// Entries are keyed by K, what the caller holds when it reads (a product
// id, a key prefix), so a hit builds no Redis key; keyOf finds the entry
// an announced Redis key names.
type near[K comparable, T any] struct {
	c     *Client
	ttl   time.Duration
	clone func(T) T                       // a copy the caller may keep
	keyOf func(redisKey string) (K, bool) // false: not one of this cache's

	mu    sync.Mutex
	items map[K]nearItem[T]
	epoch atomic.Uint64
}

type nearItem[T any] struct {
	v       T
	expires time.Time
}

// maxNear bounds each near cache; past it, expired entries go, then all.
const maxNear = 100_000

// usable reports whether near copies may be used: only while invalidations
// can arrive, and not while Redis is failing (then PostgreSQL answers).
func (n *near[K, T]) usable(now time.Time) bool {
	return n != nil && n.c.listening(now) && !n.c.breakerOpen.Load()
}

// get returns the entry's value, if it holds a fresh one.
func (n *near[K, T]) get(key K, now time.Time) (T, bool) {
	var zero T
	if !n.usable(now) {
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
func (n *near[K, T]) start() uint64 {
	if n == nil {
		return 0
	}
	return n.epoch.Load()
}

// put keeps v under key unless something was invalidated since epoch.
func (n *near[K, T]) put(key K, v T, epoch uint64, now time.Time) {
	if !n.usable(now) {
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

// drop removes the entry of a Redis key, or everything when redisKey is
// "". Fills in flight are dropped either way.
func (n *near[K, T]) drop(redisKey string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.epoch.Add(1)
	if redisKey == "" {
		clear(n.items)
	} else if k, ok := n.keyOf(redisKey); ok {
		delete(n.items, k)
	}
}

// newNear returns a near cache fed by c's invalidations, or nil when
// Config.LocalTTL turns near caching off.
func newNear[K comparable, T any](c *Client, ttl time.Duration, keyOf func(string) (K, bool), clone func(T) T) *near[K, T] {
	if ttl <= 0 {
		return nil
	}
	n := &near[K, T]{c: c, ttl: ttl, clone: clone, keyOf: keyOf, items: map[K]nearItem[T]{}}
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

// The subscription's heartbeat: every heartbeatEvery each process
// publishes to a channel of its own that it also subscribes to, so hearing
// it proves the whole path (this process's writes reach Redis, and Redis's
// messages reach this process). After subscriptionSilence without any
// message near copies are not used, and the subscription is made anew.
const (
	heartbeatEvery      = time.Second
	subscriptionSilence = 3 * time.Second
)

// listening reports whether invalidations reach this process: the
// subscription is confirmed and was heard from within subscriptionSilence.
func (c *Client) listening(now time.Time) bool {
	return c.subscribed.Load() && now.UnixNano()-c.heard.Load() < int64(subscriptionSilence)
}

// listen applies the other processes' invalidations to the near caches
// until Close. Each (re)subscription empties them, since announcements made
// while unsubscribed are lost.
func (c *Client) listen() {
	heartbeat := invalidations + ":heartbeat:" + rand.Text()
	c.background(func() { c.beat(heartbeat) })
	for c.subscribe(heartbeat) {
		// The subscription fell silent: make it anew.
		c.subscribed.Store(false)
		c.dropLocal("")
		c.ring("")
	}
}

// subscribe listens on one subscription until Close (false) or until it
// has been silent for subscriptionSilence (true).
func (c *Client) subscribe(heartbeat string) bool {
	ps := c.rdb.Subscribe(context.Background(), invalidations, heartbeat)
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions(goredis.WithChannelHealthCheckInterval(heartbeatEvery))
	silence := time.NewTimer(subscriptionSilence)
	defer silence.Stop()
	for {
		select {
		case <-c.stop:
			return false
		case <-silence.C:
			return true
		case msg, ok := <-ch:
			if !ok {
				return false
			}
			c.heard.Store(time.Now().UnixNano())
			silence.Reset(subscriptionSilence)
			switch m := msg.(type) {
			case *goredis.Subscription:
				c.dropLocal("")
				c.subscribed.Store(m.Kind == "subscribe")
				c.ring("") // announcements may have been lost meanwhile
			case *goredis.Message:
				if m.Channel == invalidations {
					c.dropLocal(m.Payload)
					c.ring(m.Payload)
				}
			}
		}
	}
}

// beat publishes the heartbeat every heartbeatEvery until Close. A failure
// is logged by do at a limited rate; the silence that follows turns near
// copies off.
func (c *Client) beat(channel string) {
	c.every(heartbeatEvery, func() {
		_ = c.do(context.Background(), "redis heartbeat", func(ctx context.Context) error {
			return c.rdb.Publish(ctx, channel, "").Err()
		})
	})
}
