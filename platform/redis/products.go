package redis

import (
	"context"
	"encoding/json"
	"errors"
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
// then needs no invalidation, and such reads are rare and cheap.
type ProductCache struct {
	c     *Client
	store product.Store
	reads *aside[product.Product]
	near  *near[product.Product]
}

var _ product.Store = (*ProductCache)(nil)

// NewProductCache returns a ProductCache in front of store.
func NewProductCache(c *Client, store product.Store) *ProductCache {
	return &ProductCache{c: c, store: store, near: newNear(c, c.cfg.LocalTTL, cloneProduct), reads: &aside[product.Product]{
		c:      c,
		what:   "product",
		ttl:    func(product.Product) time.Duration { return jittered(c.cfg.ProductTTL, c.cfg.TTLJitter) },
		encode: encodeProduct,
		decode: decodeProduct,
	}}
}

// productEntry is where a product is cached: pms:product:{<id>}.
func productEntry(id uuid.UUID) entry { return newEntry("pms:product:{" + id.String() + "}") }

// Get returns the product from the cache, or from the store (caching it),
// or the store's error, e.g. product.ErrNotFound.
//
// A process keeps a near copy for up to Config.LocalTTL (see near), so most
// reads of a hot product cost no round trip.
func (pc *ProductCache) Get(ctx context.Context, id uuid.UUID) (product.Product, error) {
	e := productEntry(id)
	if p, ok := pc.near.get(e.value, time.Now()); ok {
		return p, nil
	}
	epoch := pc.near.start()
	p, err := pc.reads.get(ctx, e, func(ctx context.Context) (product.Product, error) {
		return pc.store.Get(ctx, id)
	})
	if err == nil {
		pc.near.put(e.value, p, epoch, time.Now())
	}
	return p, err
}

// cloneProduct copies p so that callers never share its images.
func cloneProduct(p product.Product) product.Product {
	p.Images = append([]product.Image(nil), p.Images...)
	return p
}

// Update updates the product in the store and then invalidates it. It
// invalidates after failures too, whose outcome may be unknown: a spare
// delete costs nothing.
func (pc *ProductCache) Update(ctx context.Context, id uuid.UUID, change func(*product.Product) ([]message.Message, error)) (product.Product, error) {
	p, err := pc.store.Update(ctx, id, change)
	pc.Invalidate(ctx, id)
	return p, err
}

// Delete deletes the product in the store and then invalidates it, after
// failures too.
func (pc *ProductCache) Delete(ctx context.Context, id uuid.UUID, version int) error {
	err := pc.store.Delete(ctx, id, version)
	pc.Invalidate(ctx, id)
	return err
}

// Invalidate drops the cached product. Call it after the change that made it
// stale has committed. When Redis cannot be reached the delete is retried in
// the background and, until it succeeds, this process reads the product from
// the store.
func (pc *ProductCache) Invalidate(ctx context.Context, id uuid.UUID) {
	pc.c.forget(ctx, productEntry(id))
}

// Create stores a new product; see product.Store. It is not cached.
func (pc *ProductCache) Create(ctx context.Context, p product.Product, key product.IdempotencyKey, msgs []message.Message) (product.Product, bool, error) {
	return pc.store.Create(ctx, p, key, msgs)
}

// List returns the store's products; lists are not cached.
func (pc *ProductCache) List(ctx context.Context, f product.Filter) ([]product.Product, error) {
	return pc.store.List(ctx, f)
}

// CreateUser stores a new user; see product.Store.
func (pc *ProductCache) CreateUser(ctx context.Context, u product.User) error {
	return pc.store.CreateUser(ctx, u)
}

// ResultsCache is an imaging.ResultStore that invalidates a product's cache
// entry after the worker changes its images.
type ResultsCache struct {
	c       *Client
	results imaging.ResultStore
}

var _ imaging.ResultStore = (*ResultsCache)(nil)

// NewResultsCache returns a ResultsCache in front of results.
func NewResultsCache(c *Client, results imaging.ResultStore) *ResultsCache {
	return &ResultsCache{c: c, results: results}
}

// Begin counts an attempt, marks the image processing and invalidates its
// product, unless nothing changed (imaging.ErrStale, imaging.ErrAttemptsUsed).
func (rc *ResultsCache) Begin(ctx context.Context, t imaging.Task) (int, error) {
	attempt, err := rc.results.Begin(ctx, t)
	if !errors.Is(err, imaging.ErrStale) && !errors.Is(err, imaging.ErrAttemptsUsed) {
		rc.c.forget(ctx, productEntry(t.ProductID))
	}
	return attempt, err
}

// Abandon takes back an attempt and invalidates the product.
func (rc *ResultsCache) Abandon(ctx context.Context, t imaging.Task, attempt int) error {
	err := rc.results.Abandon(ctx, t, attempt)
	rc.c.forget(ctx, productEntry(t.ProductID))
	return err
}

// Ready records the compressed copies and invalidates the product.
func (rc *ResultsCache) Ready(ctx context.Context, t imaging.Task, r imaging.Result) error {
	err := rc.results.Ready(ctx, t, r)
	rc.c.forget(ctx, productEntry(t.ProductID))
	return err
}

// Failed records the failure and invalidates the product.
func (rc *ResultsCache) Failed(ctx context.Context, t imaging.Task, attempts int, code string) error {
	err := rc.results.Failed(ctx, t, attempts, code)
	rc.c.forget(ctx, productEntry(t.ProductID))
	return err
}

// productFormat versions the cached layout: entries of another format are
// misses.
const productFormat = 1

// cachedProduct is product.Product as cached, with short JSON names.
type cachedProduct struct {
	Format      int           `json:"f"`
	ID          uuid.UUID     `json:"id"`
	UserID      uuid.UUID     `json:"uid"`
	Name        string        `json:"n"`
	Description string        `json:"d"`
	Price       int64         `json:"p"`
	Images      []cachedImage `json:"im"`
	Version     int           `json:"v"`
	CreatedAt   time.Time     `json:"ca"`
	UpdatedAt   time.Time     `json:"ua"`
}

type cachedImage struct {
	ID            uuid.UUID `json:"id"`
	Position      int       `json:"pos"`
	SourceURL     string    `json:"src"`
	Status        string    `json:"st"`
	Attempts      int       `json:"at,omitempty"`
	ErrorCode     string    `json:"err,omitempty"`
	CompressedURL string    `json:"url,omitempty"`
	Width         int       `json:"w,omitempty"`
	Height        int       `json:"h,omitempty"`
	Bytes         int64     `json:"b,omitempty"`
	Format        string    `json:"fmt,omitempty"`
	UpdatedAt     time.Time `json:"ua"`
}

func encodeProduct(p product.Product) ([]byte, error) {
	c := cachedProduct{
		Format: productFormat, ID: p.ID, UserID: p.UserID, Name: p.Name, Description: p.Description,
		Price: int64(p.Price), Version: p.Version, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	if p.Images != nil {
		c.Images = make([]cachedImage, len(p.Images))
	}
	for i, im := range p.Images {
		c.Images[i] = cachedImage{
			ID: im.ID, Position: im.Position, SourceURL: im.SourceURL, Status: string(im.Status),
			Attempts: im.Attempts, ErrorCode: im.ErrorCode, CompressedURL: im.CompressedURL,
			Width: im.Width, Height: im.Height, Bytes: im.Bytes, Format: im.Format, UpdatedAt: im.UpdatedAt,
		}
	}
	return json.Marshal(c)
}

func decodeProduct(data []byte) (product.Product, error) {
	var c cachedProduct
	if err := json.Unmarshal(data, &c); err != nil {
		return product.Product{}, fmt.Errorf("decode cached product: %w", err)
	}
	if c.Format != productFormat {
		return product.Product{}, fmt.Errorf("decode cached product: format %d, want %d", c.Format, productFormat)
	}
	p := product.Product{
		ID: c.ID, UserID: c.UserID, Name: c.Name, Description: c.Description, Price: product.Price(c.Price),
		Version: c.Version, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
	if c.Images != nil {
		p.Images = make([]product.Image, len(c.Images))
	}
	for i, im := range c.Images {
		p.Images[i] = product.Image{
			ID: im.ID, Position: im.Position, SourceURL: im.SourceURL, Status: product.ImageStatus(im.Status),
			Attempts: im.Attempts, ErrorCode: im.ErrorCode, CompressedURL: im.CompressedURL,
			Width: im.Width, Height: im.Height, Bytes: im.Bytes, Format: im.Format, UpdatedAt: im.UpdatedAt,
		}
	}
	return p, nil
}
