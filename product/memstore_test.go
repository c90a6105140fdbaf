package product_test

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/message"
)

// memStore is a product.Store in memory, for testing the Service's rules
// without a database. It keeps what the Store contract promises and no
// more: copies in and out, Update's all-or-nothing change, Delete's
// version check and idempotency replays. List knows only the created_at
// order and the user filter, which is all the Service decides. It keeps
// the outbox messages each change hands it, as a real store writes them
// with the change.
type memStore struct {
	mu       sync.Mutex
	products map[uuid.UUID]product.Product // not deleted
	claims   map[claim]claimed
	outbox   []message.Message
	calls    int              // calls of any method
	creates  []createCall     // what Create was handed, in order
	filters  []product.Filter // what List was handed, in order
}

type claim struct {
	user uuid.UUID
	key  string
}

type claimed struct {
	hash  string
	first product.Product
}

type createCall struct {
	p   product.Product
	key product.IdempotencyKey
}

func newMemStore() *memStore {
	return &memStore{products: map[uuid.UUID]product.Product{}, claims: map[claim]claimed{}}
}

// clone copies p, so that neither side of the store shares its images.
func clone(p product.Product) product.Product {
	p.Images = slices.Clone(p.Images)
	return p
}

func (m *memStore) Create(_ context.Context, p product.Product, key product.IdempotencyKey, msgs []message.Message) (product.Product, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	m.creates = append(m.creates, createCall{clone(p), key})
	if key != (product.IdempotencyKey{}) {
		c := claim{p.UserID, key.Key}
		if prev, ok := m.claims[c]; ok {
			if prev.hash != key.RequestHash {
				return product.Product{}, false, product.ErrIdempotencyKey
			}
			return clone(prev.first), true, nil
		}
		m.claims[c] = claimed{key.RequestHash, clone(p)}
	}
	m.products[p.ID] = clone(p)
	m.outbox = append(m.outbox, msgs...)
	return clone(p), false, nil
}

func (m *memStore) Get(_ context.Context, id uuid.UUID) (product.Product, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	p, ok := m.products[id]
	if !ok {
		return product.Product{}, product.ErrNotFound
	}
	return clone(p), nil
}

func (m *memStore) List(_ context.Context, f product.Filter) ([]product.Product, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	m.filters = append(m.filters, f)
	var all []product.Product
	for _, p := range m.products {
		if f.UserID == nil || p.UserID == *f.UserID {
			all = append(all, clone(p))
		}
	}
	slices.SortFunc(all, byCreated)
	if f.After != nil {
		after := product.Product{CreatedAt: f.After.CreatedAt, ID: f.After.ID}
		all = slices.DeleteFunc(all, func(p product.Product) bool { return byCreated(p, after) <= 0 })
	}
	return all[:min(len(all), f.Limit+1)], nil
}

func byCreated(a, b product.Product) int {
	return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), slices.Compare(a.ID[:], b.ID[:]))
}

func (m *memStore) Update(_ context.Context, id uuid.UUID, change func(*product.Product) ([]message.Message, error)) (product.Product, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	stored, ok := m.products[id]
	if !ok {
		return product.Product{}, product.ErrNotFound
	}
	p := clone(stored)
	msgs, err := change(&p)
	if err != nil {
		return product.Product{}, err
	}
	if p.Version != stored.Version {
		m.products[id] = clone(p)
		m.outbox = append(m.outbox, msgs...)
	}
	return p, nil
}

// written returns the messages the store wrote, and forgets them.
func (m *memStore) written() []message.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.outbox
	m.outbox = nil
	return out
}

func (m *memStore) Delete(_ context.Context, id uuid.UUID, version int, msgs []message.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	p, ok := m.products[id]
	switch {
	case !ok:
		return product.ErrNotFound
	case version > 0 && p.Version != version:
		return product.ErrVersionMismatch
	}
	delete(m.products, id)
	m.outbox = append(m.outbox, msgs...)
	return nil
}

// stored returns the product as the store has it, and whether it has it.
func (m *memStore) stored(id uuid.UUID) (product.Product, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.products[id]
	return clone(p), ok
}

// callCount returns how many store calls were made.
func (m *memStore) callCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls
}

// clock is a settable time source for Service.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2026, 3, 4, 5, 6, 7, 891_234_567, time.FixedZone("CET", 3600))}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
