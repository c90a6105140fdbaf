package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/message"
)

// ProductCache is a product.Store that serves Get from Redis and reads the
// wrapped store on a miss. Update and Delete invalidate the product after the
// store returns. Missing products (ErrNotFound) are not cached: a new product
// then needs no invalidation, and such reads are rare and cheap. Every other
// method is the wrapped store's: Create and List are not cached.
type ProductCache struct {
	product.Store
	c     *Client
	reads *aside[product.Product]
	near  *near[uuid.UUID, product.Product]
}

var _ product.Store = (*ProductCache)(nil)

// NewProductCache returns a ProductCache in front of store.
func NewProductCache(c *Client, store product.Store) *ProductCache {
	return &ProductCache{Store: store, c: c, near: newNear(c, c.cfg.LocalTTL, productOf, cloneProduct), reads: &aside[product.Product]{
		c:      c,
		what:   "product",
		ttl:    func(product.Product) time.Duration { return jittered(c.cfg.ProductTTL, c.cfg.TTLJitter) },
		encode: encodeProduct,
		decode: decodeProduct,
	}}
}

// productEntry is where a product is cached: pms:product:{<id>}.
func productEntry(id uuid.UUID) entry { return newEntry(productKeyPrefix + id.String() + "}") }

const productKeyPrefix = "pms:product:{"

// productOf returns the id of the product whose Redis key this is.
func productOf(redisKey string) (uuid.UUID, bool) {
	tag, ok := hashTagOf(redisKey, productKeyPrefix)
	if !ok {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(tag)
	return id, err == nil
}

// Get returns the product from the cache, or from the store (caching it),
// or the store's error, e.g. product.ErrNotFound.
//
// A process keeps a near copy for up to Config.LocalTTL (see near), so most
// reads of a hot product cost no round trip.
func (pc *ProductCache) Get(ctx context.Context, id uuid.UUID) (product.Product, error) {
	if p, ok := pc.near.get(id, time.Now()); ok {
		pc.c.count(pc.reads.what, resultNearHit)
		return p, nil
	}
	e := productEntry(id)
	epoch := pc.near.start()
	p, cached, err := pc.reads.get(ctx, e, func(ctx context.Context) (product.Product, error) {
		return pc.Store.Get(ctx, id)
	})
	if cached {
		pc.near.put(id, p, epoch, time.Now())
	}
	return p, err
}

// Watch returns a channel that receives a value whenever the product with
// the given id may have changed: each time any process invalidates it
// (every change, and every image result the worker records, does, after
// the change is committed and the cached copy deleted), and whenever
// invalidations may have been missed (Redis reconnected). stop ends the
// watch. With Redis away, or with Config.LocalTTL 0 (no near caches, so no
// announcements), no value comes: a watcher must bound its wait.
func (pc *ProductCache) Watch(id uuid.UUID) (changed <-chan struct{}, stop func()) {
	return pc.c.watch(productEntry(id).value)
}

// cloneProduct copies p so that callers never share its images, their
// variants or their source facts.
func cloneProduct(p product.Product) product.Product {
	p.Images = append([]product.Image(nil), p.Images...)
	for i := range p.Images {
		p.Images[i].Variants = append([]product.Variant(nil), p.Images[i].Variants...)
		if src := p.Images[i].Source; src != nil {
			c := *src
			p.Images[i].Source = &c
		}
	}
	return p
}

// Update updates the product in the store, emptying its entry before and
// invalidating it after (see Client.changing). It invalidates after
// failures too, whose outcome may be unknown: a spare delete costs nothing.
func (pc *ProductCache) Update(ctx context.Context, id uuid.UUID, change func(*product.Product) ([]message.Message, error)) (p product.Product, err error) {
	err = pc.c.changing(ctx, productEntry(id), func() error {
		p, err = pc.Store.Update(ctx, id, change)
		return err
	})
	return p, err
}

// Delete deletes the product in the store, as Update changes it.
func (pc *ProductCache) Delete(ctx context.Context, id uuid.UUID, version int, msgs []message.Message) error {
	return pc.c.changing(ctx, productEntry(id), func() error { return pc.Store.Delete(ctx, id, version, msgs) })
}

// Invalidate drops the cached product. Call it after the change that made it
// stale has committed. When Redis cannot be reached the delete is retried in
// the background and, until it succeeds, this process reads the product from
// the store.
func (pc *ProductCache) Invalidate(ctx context.Context, id uuid.UUID) {
	pc.c.forget(ctx, productEntry(id))
}

// ResultsCache is an imaging.ResultStore that invalidates a product's cache
// entry after the worker changes its images. The methods it does not write
// are the wrapped store's, so a new ResultStore method that changes images
// needs one here.
type ResultsCache struct {
	imaging.ResultStore
	c *Client
}

var _ imaging.ResultStore = (*ResultsCache)(nil)

// NewResultsCache returns a ResultsCache in front of results.
func NewResultsCache(c *Client, results imaging.ResultStore) *ResultsCache {
	return &ResultsCache{ResultStore: results, c: c}
}

// Begin counts an attempt and marks the image processing; like every
// change below, it empties the product's entry before and invalidates it
// after (see Client.changing).
func (rc *ResultsCache) Begin(ctx context.Context, t imaging.Task) (attempt int, err error) {
	err = rc.changing(ctx, t, func() error {
		attempt, err = rc.ResultStore.Begin(ctx, t)
		return err
	})
	return attempt, err
}

// Abandon takes back an attempt.
func (rc *ResultsCache) Abandon(ctx context.Context, t imaging.Task, attempt int) error {
	return rc.changing(ctx, t, func() error { return rc.ResultStore.Abandon(ctx, t, attempt) })
}

// Ready records the compressed copies.
func (rc *ResultsCache) Ready(ctx context.Context, t imaging.Task, r imaging.Result) error {
	return rc.changing(ctx, t, func() error { return rc.ResultStore.Ready(ctx, t, r) })
}

// Failed records the failure.
func (rc *ResultsCache) Failed(ctx context.Context, t imaging.Task, attempts int, code string) error {
	return rc.changing(ctx, t, func() error { return rc.ResultStore.Failed(ctx, t, attempts, code) })
}

// changing runs change of t's product between emptying its entry and
// invalidating it.
func (rc *ResultsCache) changing(ctx context.Context, t imaging.Task, change func() error) error {
	return rc.c.changing(ctx, productEntry(t.ProductID), change)
}

// productFormat versions the cached layout: entries of another format are
// misses. The layout is product.Product's (see cachedProduct), so a change
// to the fields of product.Product, Image or Variant must bump it.
// TestCachedProductLayout fails until it does.
const productFormat = 3

// cachedProduct is a product as cached: the domain type itself, encoded
// with its field names, next to the layout's version.
type cachedProduct struct {
	Format int `json:"f"`
	product.Product
}

func encodeProduct(p product.Product) ([]byte, error) {
	return json.Marshal(cachedProduct{Format: productFormat, Product: p})
}

func decodeProduct(data []byte) (product.Product, error) {
	var c cachedProduct
	if err := json.Unmarshal(data, &c); err != nil {
		return product.Product{}, fmt.Errorf("decode cached product: %w", err)
	}
	if c.Format != productFormat {
		return product.Product{}, fmt.Errorf("decode cached product: format %d, want %d", c.Format, productFormat)
	}
	return c.Product, nil
}
