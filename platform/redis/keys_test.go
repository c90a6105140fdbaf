package redis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/redis/redistest"
	"github.com/pms-dev/pms/product"
)

func TestKeyCacheLookupAndRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Addr(t), nil)
	ctx := context.Background()
	k := e.newKey(t)

	for i := range 2 {
		ko, err := e.keyCach.KeyByPrefix(ctx, k.Prefix)
		if err != nil || ko.Key.ID != k.ID || ko.User.ID != e.user.ID || ko.User.Email != e.user.Email ||
			string(ko.Key.Hash) != string(k.Hash) || !ko.Key.RevokedAt.IsZero() {
			t.Fatalf("KeyByPrefix() #%d = %+v, %v; want key %s of user %s, not revoked", i+1, ko, err, k.ID, e.user.ID)
		}
	}
	if n := e.keys.lookups.Load(); n != 1 {
		t.Errorf("two lookups read the store %d times, want 1", n)
	}
	if ttl := e.raw.PTTL(ctx, "pms:apikey:{"+k.Prefix+"}").Val(); ttl <= 0 || ttl > time.Second {
		t.Errorf("TTL of a cached key = %v, want within (0, 1s]", ttl)
	}

	if _, err := e.keyCach.RevokeKey(ctx, k.ID, now()); err != nil {
		t.Fatalf("RevokeKey() error = %v", err)
	}
	ko, err := e.keyCach.KeyByPrefix(ctx, k.Prefix)
	if err != nil || ko.Key.RevokedAt.IsZero() {
		t.Errorf("KeyByPrefix() right after revoke = revoked at %v, %v; want revoked", ko.Key.RevokedAt, err)
	}
}

func TestKeyCacheRevokeBypassingCacheExpiresWithinKeyTTL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Addr(t), nil) // KeyTTL 1s
	ctx := context.Background()
	k := e.newKey(t)
	if _, err := e.keyCach.KeyByPrefix(ctx, k.Prefix); err != nil {
		t.Fatalf("KeyByPrefix() error = %v", err)
	}
	// Revoked behind the cache's back, as when the delete on revoke fails.
	if _, err := postgres.NewKeyStore(e.db).RevokeKey(ctx, k.ID, now()); err != nil {
		t.Fatalf("RevokeKey() error = %v", err)
	}
	revoked := time.Now()
	if !eventually(2*time.Second, func() bool {
		ko, err := e.keyCach.KeyByPrefix(ctx, k.Prefix)
		return err == nil && !ko.Key.RevokedAt.IsZero()
	}) {
		t.Fatal("a key revoked in the store still looks valid 2s later")
	}
	if took := time.Since(revoked); took > 1200*time.Millisecond {
		t.Errorf("the cache showed the key revoked after %v, want within KeyTTL (1s)", took)
	}
}

func TestKeyCacheUnknownPrefixNotCached(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Addr(t), nil)
	ctx := context.Background()
	const prefix = "nosuchprefx0"
	for i := range 2 {
		if _, err := e.keyCach.KeyByPrefix(ctx, prefix); !errors.Is(err, product.ErrUnauthenticated) {
			t.Errorf("KeyByPrefix(unknown) #%d error = %v, want ErrUnauthenticated", i+1, err)
		}
	}
	if n := e.keys.lookups.Load(); n != 2 {
		t.Errorf("two lookups of an unknown prefix read the store %d times, want 2", n)
	}
}
