package account_test

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/product/account"
)

// memStore is an account.Store in memory, for testing the Service without a
// database. It keeps what the Store contract promises: emails unique in any
// case, unknown prefixes ErrUnauthenticated, a revoke that keeps the first
// revocation time. Its fields let a test make lookups fail or come from a
// degraded cache, and watch last-use writes.
type memStore struct {
	mu      sync.Mutex
	users   map[uuid.UUID]account.User
	keys    map[uuid.UUID]account.APIKey
	lookups int
	touches []touch
	batches int // TouchKeys calls

	// lookupErr, when set, is what KeyByPrefix returns.
	lookupErr error
	// stale marks what KeyByPrefix returns as Stale, as a cache does while
	// the store is away.
	stale bool
	// hold, when set, makes TouchKeys wait until it is closed.
	hold chan struct{}
	// cached makes TouchKeys record the write but leave the key's last use
	// as it was, as a cache in front of the store shows it.
	cached bool
}

// touch is one key use a TouchKeys call recorded.
type touch struct {
	batch       int // the TouchKeys call, from 1
	id          uuid.UUID
	at          time.Time
	ctxErr      error         // the context's error when TouchKeys was called
	deadlineIn  time.Duration // how far off the context's deadline was, 0 for none
	hadDeadline bool
}

func newMemStore() *memStore {
	return &memStore{users: map[uuid.UUID]account.User{}, keys: map[uuid.UUID]account.APIKey{}}
}

func (m *memStore) CreateUser(_ context.Context, u account.User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, other := range m.users {
		if strings.EqualFold(other.Email, u.Email) {
			return account.ErrEmailTaken
		}
	}
	m.users[u.ID] = u
	return nil
}

func (m *memStore) GetUser(_ context.Context, id uuid.UUID) (account.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[id]
	if !ok {
		return account.User{}, account.ErrUserNotFound
	}
	return u, nil
}

func (m *memStore) UserByEmail(_ context.Context, email string) (account.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.users {
		if strings.EqualFold(u.Email, email) {
			return u, nil
		}
	}
	return account.User{}, account.ErrUserNotFound
}

func (m *memStore) CreateKey(_ context.Context, k account.APIKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k.Hash = slices.Clone(k.Hash)
	m.keys[k.ID] = k
	return nil
}

func (m *memStore) KeyByPrefix(_ context.Context, prefix string) (account.KeyOwner, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lookups++
	if m.lookupErr != nil {
		return account.KeyOwner{}, m.lookupErr
	}
	for _, k := range m.keys {
		if k.Prefix == prefix {
			k.Hash = slices.Clone(k.Hash)
			return account.KeyOwner{Key: k, User: m.users[k.UserID], Stale: m.stale}, nil
		}
	}
	return account.KeyOwner{}, account.ErrUnauthenticated
}

func (m *memStore) TouchKeys(ctx context.Context, uses []account.KeyUse) error {
	if m.hold != nil {
		<-m.hold
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	deadline, ok := ctx.Deadline()
	m.batches++
	for _, u := range uses {
		m.touches = append(m.touches, touch{batch: m.batches, id: u.ID, at: u.At, ctxErr: ctx.Err(), deadlineIn: time.Until(deadline), hadDeadline: ok})
		if k, found := m.keys[u.ID]; found && !m.cached && k.LastUsedAt.Before(u.At) {
			k.LastUsedAt = u.At
			m.keys[u.ID] = k
		}
	}
	return nil
}

func (m *memStore) ListKeys(_ context.Context, userID uuid.UUID) ([]account.APIKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []account.APIKey
	for _, k := range m.keys {
		if k.UserID == userID {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b account.APIKey) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), slices.Compare(b.ID[:], a.ID[:]))
	})
	return keys, nil
}

func (m *memStore) RevokeKey(_ context.Context, id uuid.UUID, at time.Time) (account.APIKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[id]
	if !ok {
		return account.APIKey{}, account.ErrKeyNotFound
	}
	if k.RevokedAt.IsZero() {
		k.RevokedAt = at
		m.keys[id] = k
	}
	return k, nil
}

// touched returns the key uses TouchKeys recorded so far.
func (m *memStore) touched() []touch {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.touches)
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
