package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/product/account"
)

// KeyCache is an account.Store that caches KeyByPrefix, in Redis and as a
// near copy in each process (unless LocalTTL turns near copies off), and
// reads the wrapped store on a miss or when Redis fails.
//
// Freshness comes from the key epoch (account.Epochs), which the store
// moves with every revocation: each KeyCache reads it every second, and a
// cached key records the epoch it was fetched under. While this process
// read the epoch within the last two seconds and it has not moved since the
// key was fetched, the key is fresh, for up to KeyTTL; so a key in use costs
// one store lookup per KeyTTL, not per request, and a revocation stops the
// key on every process within about two seconds, even when its cache
// invalidation is lost. When the epoch moves, every near copy goes and
// every cached key is read again on its next use. While the epoch cannot be
// read (or no Epochs was given), freshness is by time alone: KeyFallbackTTL/2
// in Redis, and up to KeyFallbackTTL/2 more as a near copy, which bounds a
// revoked key whose invalidation is lost.
//
// Unknown prefixes (ErrUnauthenticated) are cached as unknown for
// UnknownKeyTTL in Redis, so repeating a made-up key costs no store lookup.
// RevokeKey drops the key from Redis and from every process's near copies
// after the store revoked it, and CreateKey drops an unknown entry for the
// new prefix the same way, behind the same stale-set guard as products: a
// revoked key stops working at once, and a new key works at once. Every
// other method is the wrapped store's: TouchKeys changes no cached entry, so
// a cached key may show the previous last use for up to KeyTTL.
type KeyCache struct {
	account.Store
	c      *Client
	reads  *aside[keyResult]
	near   *near[string, keyResult] // by prefix
	epochs account.Epochs           // nil: freshness by time alone
	epoch  atomic.Pointer[epochRead]
	// epochFailing is set while reads of the epoch fail, to log the
	// recovery once.
	epochFailing atomic.Bool
}

var _ account.Store = (*KeyCache)(nil)

// keyResult is what the cache keeps for a prefix: its key and owner, or
// that no key has it, when the store said so and under which key epoch
// (0: none known).
type keyResult struct {
	owner   account.KeyOwner
	unknown bool
	fetched time.Time
	epoch   int64
	kept    time.Time // when this process made its near copy; not cached in Redis
}

// NewKeyCache returns a KeyCache in front of keys, whose freshness follows
// the key epoch of epochs (nil: by time alone, KeyFallbackTTL). Reading the
// epoch stops when c is closed.
func NewKeyCache(c *Client, keys account.Store, epochs account.Epochs) *KeyCache {
	kc := &KeyCache{Store: keys, c: c, epochs: epochs, near: newNear(c, keyNearTTL(c.cfg), prefixOf, cloneKeyResult),
		reads: &aside[keyResult]{
			c:    c,
			what: "api key",
			ttl: func(r keyResult) time.Duration {
				if r.unknown {
					return c.cfg.UnknownKeyTTL
				}
				return c.cfg.KeyStaleTTL
			},
			encode: encodeKeyResult,
			decode: decodeKeyResult,
		}}
	if epochs != nil {
		c.background(kc.watchEpoch)
	}
	return kc
}

// keyNearTTL is the longest a process keeps its near copy of a key lookup;
// nearFresh decides within it.
func keyNearTTL(cfg Config) time.Duration {
	if cfg.LocalTTL <= 0 {
		return 0
	}
	return max(cfg.KeyTTL, cfg.KeyFallbackTTL/2)
}

// keyEntry is where a key is cached: pms:apikey:{<prefix>}.
func keyEntry(prefix string) entry { return newEntry(keyKeyPrefix + prefix + "}") }

const keyKeyPrefix = "pms:apikey:{"

// prefixOf returns the prefix of the API key whose Redis key this is.
func prefixOf(redisKey string) (string, bool) { return hashTagOf(redisKey, keyKeyPrefix) }

// KeyByPrefix returns the key with the prefix and its owner, from the cache
// or the store, or account.ErrUnauthenticated. A cached key that is no
// longer fresh (see KeyCache) is read again from the store; while the store
// is unavailable, the cached key (if it was fetched less than KeyStaleTTL
// ago) is returned instead, marked Stale. Keys cannot be revoked meanwhile,
// since revoking needs the store, and one revoked before drops out of the
// cache.
func (kc *KeyCache) KeyByPrefix(ctx context.Context, prefix string) (account.KeyOwner, error) {
	now := time.Now()
	if r, ok := kc.near.get(prefix, now); ok && kc.nearFresh(r, now) {
		kc.c.count(kc.reads.what, resultNearHit)
		return r.result()
	}
	e := keyEntry(prefix)
	nearEpoch := kc.near.start()
	r, stale, err := kc.reads.getStale(ctx, e, kc.fresh, func(ctx context.Context) (keyResult, error) {
		// The epoch is taken before the read: a revocation the read does
		// not see moves the epoch past it. The last one read will do,
		// however old: a revocation since moved it too, and then this
		// result is only read again once more than it had to be.
		epoch := kc.lastEpoch()
		owner, err := kc.Store.KeyByPrefix(ctx, prefix)
		now := time.Now()
		if errors.Is(err, account.ErrUnauthenticated) {
			return keyResult{unknown: true, fetched: now, epoch: epoch}, nil
		}
		return keyResult{owner: owner, fetched: now, epoch: epoch}, err
	})
	if err != nil {
		return account.KeyOwner{}, err
	}
	if stale {
		r.owner.Stale = true
		return r.result()
	}
	r.kept = time.Now()
	kc.near.put(prefix, r, nearEpoch, r.kept)
	return r.result()
}

// fresh reports whether a result cached in Redis may be used without asking
// the store: unknown prefixes until they expire; keys, while this process
// knows the key epoch, for KeyTTL if they were fetched under it, and
// otherwise for KeyFallbackTTL/2.
func (kc *KeyCache) fresh(r keyResult) bool {
	if r.unknown {
		return true
	}
	now := time.Now()
	if fresh, known := kc.epochFresh(r, now); known {
		return fresh
	}
	return now.Sub(r.fetched) < kc.c.cfg.KeyFallbackTTL/2
}

// epochFresh reports whether key r is fresh by the key epoch, and whether
// this process knows the epoch at all (when not, freshness is by time).
func (kc *KeyCache) epochFresh(r keyResult, now time.Time) (fresh, known bool) {
	epoch, ok := kc.currentEpoch(now)
	return ok && r.epoch == epoch && now.Sub(r.fetched) < kc.c.cfg.KeyTTL, ok
}

// nearFresh reports whether a near copy may be used: a key by the rule of
// fresh while this process knows the key epoch; otherwise for
// KeyFallbackTTL/2 after it was kept, as the near copy of an unknown prefix
// always is, and a key only until KeyFallbackTTL after it was fetched.
func (kc *KeyCache) nearFresh(r keyResult, now time.Time) bool {
	if r.unknown {
		return now.Sub(r.kept) < kc.c.cfg.KeyFallbackTTL/2
	}
	if fresh, known := kc.epochFresh(r, now); known {
		return fresh
	}
	return now.Sub(r.kept) < kc.c.cfg.KeyFallbackTTL/2 && now.Sub(r.fetched) < kc.c.cfg.KeyFallbackTTL
}

// result is what KeyByPrefix returns for r.
func (r keyResult) result() (account.KeyOwner, error) {
	if r.unknown {
		return account.KeyOwner{}, account.ErrUnauthenticated
	}
	return r.owner, nil
}

// cloneKeyResult copies r so that callers never share its hash.
func cloneKeyResult(r keyResult) keyResult {
	r.owner.Key.Hash = append([]byte(nil), r.owner.Key.Hash...)
	return r
}

// RevokeKey revokes the key in the store and then drops it from the cache.
// Should the drop be lost, the key epoch the revocation moved stops the
// cached key on every process within about two seconds (within
// KeyFallbackTTL where the epoch cannot be read).
func (kc *KeyCache) RevokeKey(ctx context.Context, id uuid.UUID, at time.Time) (account.APIKey, error) {
	k, err := kc.Store.RevokeKey(ctx, id, at)
	if err != nil {
		return k, err
	}
	kc.c.forget(ctx, keyEntry(k.Prefix))
	return k, nil
}

// CreateKey stores a new key, then drops its prefix from the cache, where
// a lookup may have left it as unknown. Prefixes are 72 random bits, so
// that takes someone who knew the prefix before the key existed; the drop
// makes sure a new key works at once anyway.
func (kc *KeyCache) CreateKey(ctx context.Context, k account.APIKey) error {
	if err := kc.Store.CreateKey(ctx, k); err != nil {
		return err
	}
	kc.c.forget(ctx, keyEntry(k.Prefix))
	return nil
}

const keyFormat = 1

// cachedKey is a keyResult as cached, with short JSON names: a key and its
// owner, or Unknown. The hash of the secret is cached as it is stored: the
// secret cannot be derived from it.
//
// A process from before Unknown existed reads an unknown entry as a key
// with no hash, which no secret matches: it refuses the key, as it should.
type cachedKey struct {
	Format     int       `json:"f"`
	Unknown    bool      `json:"u,omitempty"`
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
	// Fetched is when the store gave it; an entry without it is stale.
	Fetched time.Time `json:"ft,omitzero"`
	// Epoch is the key epoch it was fetched under. An entry without it
	// (from a process that could not read the epoch, or from before epochs)
	// is fresh by time alone where the epoch cannot be read either, and is
	// read again where it can.
	Epoch int64 `json:"ep,omitempty"`
}

func encodeKeyResult(r keyResult) ([]byte, error) {
	if r.unknown {
		return json.Marshal(cachedKey{Format: keyFormat, Unknown: true, Fetched: r.fetched, Epoch: r.epoch})
	}
	k, u := r.owner.Key, r.owner.User
	return json.Marshal(cachedKey{
		Format: keyFormat, ID: k.ID, UserID: k.UserID, Prefix: k.Prefix, Hash: k.Hash, CreatedAt: k.CreatedAt,
		LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt, OwnerID: u.ID, Email: u.Email, Name: u.Name,
		Admin: u.Admin, UserAt: u.CreatedAt, Fetched: r.fetched, Epoch: r.epoch,
	})
}

func decodeKeyResult(data []byte) (keyResult, error) {
	var c cachedKey
	if err := json.Unmarshal(data, &c); err != nil {
		return keyResult{}, fmt.Errorf("decode cached api key: %w", err)
	}
	if c.Format != keyFormat {
		return keyResult{}, fmt.Errorf("decode cached api key: format %d, want %d", c.Format, keyFormat)
	}
	if c.Unknown {
		return keyResult{unknown: true, fetched: c.Fetched, epoch: c.Epoch}, nil
	}
	return keyResult{owner: account.KeyOwner{
		Key: account.APIKey{ID: c.ID, UserID: c.UserID, Prefix: c.Prefix, Hash: c.Hash, CreatedAt: c.CreatedAt,
			LastUsedAt: c.LastUsedAt, RevokedAt: c.RevokedAt},
		User: account.User{ID: c.OwnerID, Email: c.Email, Name: c.Name, Admin: c.Admin, CreatedAt: c.UserAt},
	}, fetched: c.Fetched, epoch: c.Epoch}, nil
}
