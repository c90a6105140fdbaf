package product

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Errors of authentication and ownership.
var (
	ErrUnauthenticated = errors.New("missing, malformed, unknown or revoked API key")
	ErrForbidden       = errors.New("not allowed for this caller")
)

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

// KeyStore keeps API keys. KeyByPrefix returns ErrUnauthenticated when no
// key has the prefix; RevokeKey returns ErrNotFound for an unknown key.
type KeyStore interface {
	CreateKey(ctx context.Context, k APIKey) error
	KeyByPrefix(ctx context.Context, prefix string) (KeyOwner, error)
	TouchKey(ctx context.Context, id uuid.UUID, at time.Time) error
	ListKeys(ctx context.Context, userID uuid.UUID) ([]APIKey, error)
	RevokeKey(ctx context.Context, id uuid.UUID, at time.Time) (APIKey, error)
	GetUser(ctx context.Context, id uuid.UUID) (User, error)
	UserByEmail(ctx context.Context, email string) (User, error)
}

// Key format: "pms_" + 12 characters of public prefix + "_" + 43 characters
// of secret (256 random bits, base64url). The prefix has 72 random bits.
const (
	keyScheme    = "pms_"
	prefixBytes  = 9
	secretBytes  = 32
	prefixLength = 12
	secretLength = 43
	// touchEvery limits last_used_at writes to one per key and interval.
	touchEvery = time.Minute
	// touchTimeout bounds one last_used_at write.
	touchTimeout = 5 * time.Second
)

// newKey makes a random key for userID and returns it in plain text (shown
// once) with its stored form.
func newKey(userID uuid.UUID, now time.Time) (string, APIKey, error) {
	buf := make([]byte, prefixBytes+secretBytes)
	if _, err := rand.Read(buf); err != nil {
		return "", APIKey{}, fmt.Errorf("make key: %w", err)
	}
	prefix := base64.RawURLEncoding.EncodeToString(buf[:prefixBytes])
	secret := base64.RawURLEncoding.EncodeToString(buf[prefixBytes:])
	sum := sha256.Sum256([]byte(secret))
	k := APIKey{ID: mustV7(), UserID: userID, Prefix: prefix, Hash: sum[:], CreatedAt: now}
	return keyScheme + prefix + "_" + secret, k, nil
}

// KeyLength is the length of every API key pms makes.
const KeyLength = len(keyScheme) + prefixLength + 1 + secretLength

// parseKey splits a presented key into prefix and secret, or reports that it
// cannot be one of ours. It checks every byte, so what it returns is ASCII
// that any store can take.
func parseKey(s string) (prefix, secret string, ok bool) {
	rest, ok := strings.CutPrefix(s, keyScheme)
	if !ok || len(rest) != prefixLength+1+secretLength || rest[prefixLength] != '_' {
		return "", "", false
	}
	prefix, secret = rest[:prefixLength], rest[prefixLength+1:]
	if !isBase64URL(prefix) || !isBase64URL(secret) {
		return "", "", false
	}
	return prefix, secret, true
}

// isBase64URL reports whether s uses only the unpadded base64url alphabet.
func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// Auth authenticates API keys and manages them.
type Auth struct {
	keys    KeyStore
	now     func() time.Time
	touched sync.Map // key id → time.Time of this process's last TouchKey
	touches sync.WaitGroup
}

// NewAuth returns an Auth that keeps keys in keys.
func NewAuth(keys KeyStore) *Auth { return &Auth{keys: keys, now: time.Now} }

// Authenticate returns the caller a presented key belongs to, or
// ErrUnauthenticated. A key that is not of the form pms makes is refused
// before any store lookup; the secret is compared in constant time.
func (a *Auth) Authenticate(ctx context.Context, presented string) (Caller, error) {
	prefix, secret, ok := parseKey(presented)
	if !ok {
		return Caller{}, ErrUnauthenticated
	}
	ko, err := a.keys.KeyByPrefix(ctx, prefix)
	if err != nil {
		return Caller{}, err
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], ko.Key.Hash) != 1 || !ko.Key.RevokedAt.IsZero() {
		return Caller{}, ErrUnauthenticated
	}
	if !ko.Stale {
		a.touch(ctx, ko.Key)
	}
	return Caller{UserID: ko.User.ID, Admin: ko.User.Admin, KeyID: ko.Key.ID, Degraded: ko.Stale}, nil
}

// touch records the key's use at most once per touchEvery, in the store and
// in this process: a cached key shows an old last_used_at meanwhile. The
// write runs beside the request, which never waits for it: a missed
// last_used_at is no reason to refuse or slow a request, and a store that
// hangs must not hang it.
func (a *Auth) touch(ctx context.Context, k APIKey) {
	now := a.now()
	if now.Sub(k.LastUsedAt) <= touchEvery {
		return
	}
	if last, ok := a.touched.Load(k.ID); ok && now.Sub(last.(time.Time)) <= touchEvery {
		return
	}
	a.touched.Store(k.ID, now)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), touchTimeout)
	a.touches.Go(func() {
		defer cancel()
		_ = a.keys.TouchKey(ctx, k.ID, now.UTC().Truncate(time.Microsecond))
	})
}

// Wait waits for the last_used_at writes in flight, for a clean shutdown
// and for tests.
func (a *Auth) Wait() { a.touches.Wait() }

// CreateKey makes a new key for the user and returns it in plain text, the
// only time it is shown, with its stored form.
func (a *Auth) CreateKey(ctx context.Context, userID uuid.UUID) (string, APIKey, error) {
	if _, err := a.keys.GetUser(ctx, userID); err != nil {
		return "", APIKey{}, err
	}
	plain, k, err := newKey(userID, a.now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return "", APIKey{}, err
	}
	if err := a.keys.CreateKey(ctx, k); err != nil {
		return "", APIKey{}, err
	}
	return plain, k, nil
}

// ListKeys returns the user's keys, newest first.
func (a *Auth) ListKeys(ctx context.Context, userID uuid.UUID) ([]APIKey, error) {
	return a.keys.ListKeys(ctx, userID)
}

// RevokeKey revokes a key; revoking it again changes nothing.
func (a *Auth) RevokeKey(ctx context.Context, id uuid.UUID) (APIKey, error) {
	return a.keys.RevokeKey(ctx, id, a.now().UTC().Truncate(time.Microsecond))
}

// User returns the user with the given id, or ErrUserNotFound.
func (a *Auth) User(ctx context.Context, id uuid.UUID) (User, error) { return a.keys.GetUser(ctx, id) }

// UserByEmail returns the user with the given email, or ErrUserNotFound.
func (a *Auth) UserByEmail(ctx context.Context, email string) (User, error) {
	return a.keys.UserByEmail(ctx, email)
}
