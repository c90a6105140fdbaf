// Package account holds who may call pms: users, their API keys and the
// Caller a request acts for. It creates users, makes, authenticates and
// revokes keys, and declares the Store it needs; which products a user owns
// and may change is package product's business.
package account

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// User is someone who owns products and holds API keys.
type User struct {
	ID        uuid.UUID
	Email     string
	Name      string
	Admin     bool
	CreatedAt time.Time
}

// Caller is the authenticated user a request acts for.
type Caller struct {
	UserID uuid.UUID
	Admin  bool
	KeyID  uuid.UUID
	// Degraded says the caller was authenticated from a cache while the
	// store was unavailable (see KeyOwner.Stale).
	Degraded bool
}

// APIKey is a stored API key. Only a hash of its secret is kept.
type APIKey struct {
	ID         uuid.UUID
	UserID     uuid.UUID
	Prefix     string // public, for lookup and display
	Hash       []byte // SHA-256 of the secret part
	CreatedAt  time.Time
	LastUsedAt time.Time // zero when never used
	RevokedAt  time.Time // zero while valid
}

// KeyOwner is a key with the user it belongs to, as authentication needs it.
type KeyOwner struct {
	Key  APIKey
	User User
	// Stale says the key comes from a cache that could not check it with
	// the store, which was unavailable: a request may still be answered
	// from caches, in degraded mode.
	Stale bool
}

// KeyUse is a key's use at a time, as TouchKeys records it.
type KeyUse struct {
	ID uuid.UUID
	At time.Time
}

// Store keeps users and their API keys. Its methods return this package's
// errors for what it reports below; any other failure (the storage cannot be
// reached, say) is returned as the adapter reports it, and the Service
// passes it on.
type Store interface {
	// CreateUser stores a new user; ErrEmailTaken when another user has
	// the email, in any case.
	CreateUser(ctx context.Context, u User) error
	// GetUser returns the user with the id, or ErrUserNotFound.
	GetUser(ctx context.Context, id uuid.UUID) (User, error)
	// UserByEmail returns the user with the email, in any case, or
	// ErrUserNotFound.
	UserByEmail(ctx context.Context, email string) (User, error)
	// CreateKey stores a new key.
	CreateKey(ctx context.Context, k APIKey) error
	// KeyByPrefix returns the key with the prefix and its user, revoked or
	// not, or ErrUnauthenticated when no key has the prefix.
	KeyByPrefix(ctx context.Context, prefix string) (KeyOwner, error)
	// TouchKeys records when keys were last used, each at its At unless
	// the store already shows a later use.
	TouchKeys(ctx context.Context, uses []KeyUse) error
	// ListKeys returns the user's keys, newest first.
	ListKeys(ctx context.Context, userID uuid.UUID) ([]APIKey, error)
	// RevokeKey marks the key revoked at at, unless it was revoked before,
	// and returns it; ErrKeyNotFound when no key has the id.
	RevokeKey(ctx context.Context, id uuid.UUID, at time.Time) (APIKey, error)
}

// Epochs is what a cache of key lookups needs to know when they may have
// changed: a Store that keeps a key epoch is one.
type Epochs interface {
	// KeyEpoch returns the key epoch, a positive number that moves, in
	// the transaction of the change, whenever what KeyByPrefix returns for
	// any prefix may have changed, last use aside. So a lookup made after
	// KeyEpoch returned n is as good as a new one for as long as KeyEpoch
	// still returns n.
	KeyEpoch(ctx context.Context) (int64, error)
}
