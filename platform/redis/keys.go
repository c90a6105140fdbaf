package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/product"
)

// KeyCache is a product.KeyStore that caches KeyByPrefix and reads the
// wrapped store on a miss or when Redis fails: for KeyTTL/2 in Redis, and
// for up to KeyTTL/2 (or LocalTTL, if shorter) as a near copy in each
// process, so most requests cost no round trip for their key. Unknown
// prefixes (ErrUnauthenticated) are not cached. RevokeKey drops the key
// from Redis and from every process's near copies after the store revoked
// it, behind the same stale-set guard as products: a revoked key stops
// working at once, and within KeyTTL on every replica if an invalidation is
// lost.
type KeyCache struct {
	c     *Client
	keys  product.KeyStore
	reads *aside[product.KeyOwner]
	near  *near[product.KeyOwner]
}

var _ product.KeyStore = (*KeyCache)(nil)

// NewKeyCache returns a KeyCache in front of keys.
func NewKeyCache(c *Client, keys product.KeyStore) *KeyCache {
	return &KeyCache{c: c, keys: keys, near: newNear(c, min(c.cfg.LocalTTL, c.cfg.KeyTTL/2), cloneKeyOwner), reads: &aside[product.KeyOwner]{
		c:      c,
		what:   "api key",
		ttl:    func() time.Duration { return c.cfg.KeyTTL / 2 },
		encode: encodeKeyOwner,
		decode: decodeKeyOwner,
	}}
}

// keyEntry is where a key is cached: pms:apikey:{<prefix>}.
func keyEntry(prefix string) entry { return newEntry("pms:apikey:{" + prefix + "}") }

// KeyByPrefix returns the key with the prefix and its owner, from the cache
// or the store, or product.ErrUnauthenticated.
func (kc *KeyCache) KeyByPrefix(ctx context.Context, prefix string) (product.KeyOwner, error) {
	e := keyEntry(prefix)
	if owner, ok := kc.near.get(e.value, time.Now()); ok {
		return owner, nil
	}
	epoch := kc.near.start()
	owner, err := kc.reads.get(ctx, e, func(ctx context.Context) (product.KeyOwner, error) {
		return kc.keys.KeyByPrefix(ctx, prefix)
	})
	if err == nil {
		kc.near.put(e.value, owner, epoch, time.Now())
	}
	return owner, err
}

// cloneKeyOwner copies ko so that callers never share its hash.
func cloneKeyOwner(ko product.KeyOwner) product.KeyOwner {
	ko.Key.Hash = append([]byte(nil), ko.Key.Hash...)
	return ko
}

// RevokeKey revokes the key in the store and then drops it from the cache.
// When the store fails the prefix is unknown, and the cached key expires
// within KeyTTL.
func (kc *KeyCache) RevokeKey(ctx context.Context, id uuid.UUID, at time.Time) (product.APIKey, error) {
	k, err := kc.keys.RevokeKey(ctx, id, at)
	if err != nil {
		return k, err
	}
	kc.c.forget(ctx, keyEntry(k.Prefix))
	return k, nil
}

// CreateKey stores a new key; see product.KeyStore.
func (kc *KeyCache) CreateKey(ctx context.Context, k product.APIKey) error {
	return kc.keys.CreateKey(ctx, k)
}

// TouchKey records when a key was last used. The cached copy may show the
// previous time for up to KeyTTL.
func (kc *KeyCache) TouchKey(ctx context.Context, id uuid.UUID, at time.Time) error {
	return kc.keys.TouchKey(ctx, id, at)
}

// ListKeys returns the user's keys from the store.
func (kc *KeyCache) ListKeys(ctx context.Context, userID uuid.UUID) ([]product.APIKey, error) {
	return kc.keys.ListKeys(ctx, userID)
}

// GetUser returns the user from the store, or product.ErrUserNotFound.
func (kc *KeyCache) GetUser(ctx context.Context, id uuid.UUID) (product.User, error) {
	return kc.keys.GetUser(ctx, id)
}

// UserByEmail returns the user from the store, or product.ErrUserNotFound.
func (kc *KeyCache) UserByEmail(ctx context.Context, email string) (product.User, error) {
	return kc.keys.UserByEmail(ctx, email)
}

const keyFormat = 1

// cachedKey is product.KeyOwner as cached, with short JSON names. The hash
// of the secret is cached as it is stored: the secret cannot be derived
// from it.
type cachedKey struct {
	Format     int       `json:"f"`
	ID         uuid.UUID `json:"id"`
	UserID     uuid.UUID `json:"uid"`
	Prefix     string    `json:"px"`
	Hash       []byte    `json:"h"`
	CreatedAt  time.Time `json:"ca"`
	LastUsedAt time.Time `json:"lu"`
	RevokedAt  time.Time `json:"ra"`
	OwnerID    uuid.UUID `json:"oid"`
	Email      string    `json:"em"`
	Name       string    `json:"n"`
	Admin      bool      `json:"adm"`
	UserAt     time.Time `json:"uca"`
}

func encodeKeyOwner(ko product.KeyOwner) ([]byte, error) {
	k, u := ko.Key, ko.User
	return json.Marshal(cachedKey{
		Format: keyFormat, ID: k.ID, UserID: k.UserID, Prefix: k.Prefix, Hash: k.Hash, CreatedAt: k.CreatedAt,
		LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt, OwnerID: u.ID, Email: u.Email, Name: u.Name,
		Admin: u.Admin, UserAt: u.CreatedAt,
	})
}

func decodeKeyOwner(data []byte) (product.KeyOwner, error) {
	var c cachedKey
	if err := json.Unmarshal(data, &c); err != nil {
		return product.KeyOwner{}, fmt.Errorf("decode cached api key: %w", err)
	}
	if c.Format != keyFormat {
		return product.KeyOwner{}, fmt.Errorf("decode cached api key: format %d, want %d", c.Format, keyFormat)
	}
	return product.KeyOwner{
		Key: product.APIKey{ID: c.ID, UserID: c.UserID, Prefix: c.Prefix, Hash: c.Hash, CreatedAt: c.CreatedAt,
			LastUsedAt: c.LastUsedAt, RevokedAt: c.RevokedAt},
		User: product.User{ID: c.OwnerID, Email: c.Email, Name: c.Name, Admin: c.Admin, CreatedAt: c.UserAt},
	}, nil
}
