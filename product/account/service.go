package account

import (
	"context"
	"crypto/subtle"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

const (
	// touchEvery limits last_used_at writes to one per key and interval.
	touchEvery = time.Minute
	// touchBatch is how long a last use waits to be written with the
	// others of that time, in one statement.
	touchBatch = time.Second
	// touchTimeout bounds one write of last uses.
	touchTimeout = 5 * time.Second
	// maxEmailLen and maxNameLen bound a user's email and name.
	maxEmailLen = 254
	maxNameLen  = 255
)

// Service creates users, authenticates their API keys and manages them.
type Service struct {
	store Store
	now   func() time.Time
	// When this process last touched each key. Read on every request: a
	// map of its own under a read lock, not a sync.Map, whose any keys
	// would cost an allocation a lookup.
	touchedMu sync.RWMutex
	touched   map[uuid.UUID]time.Time

	mu      sync.Mutex
	pending []KeyUse    // last uses to write in the next batch
	flush   *time.Timer // writes pending; nil while nothing is pending
	touches sync.WaitGroup
}

// NewService returns a Service that keeps users and keys in store.
func NewService(store Store) *Service {
	return &Service{store: store, now: time.Now, touched: map[uuid.UUID]time.Time{}}
}

// timestamp returns the current time at the precision PostgreSQL keeps.
func (s *Service) timestamp() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// CreateUser validates and stores a new user. It returns a *ValidationError
// naming email or name when one is not fit to keep, and ErrEmailTaken when
// another user has the email.
func (s *Service) CreateUser(ctx context.Context, email, name string, admin bool) (User, error) {
	var fields []FieldError
	email = strings.TrimSpace(email)
	if at := strings.LastIndexByte(email, '@'); at < 1 || at == len(email)-1 || len(email) > maxEmailLen || !isText(email) {
		fields = append(fields, FieldError{Field: "email", Problem: "must be an email address"})
	}
	if name = strings.TrimSpace(name); name == "" || len(name) > maxNameLen || !isText(name) {
		fields = append(fields, FieldError{Field: "name", Problem: "must be 1 to 255 characters of UTF-8 text"})
	}
	if len(fields) > 0 {
		return User{}, &ValidationError{Fields: fields}
	}
	u := User{ID: mustV7(), Email: email, Name: name, Admin: admin, CreatedAt: s.timestamp()}
	if err := s.store.CreateUser(ctx, u); err != nil {
		return User{}, err
	}
	return u, nil
}

// isText reports whether s is text PostgreSQL can store: valid UTF-8
// without NUL.
func isText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// User returns the user with the given id, or ErrUserNotFound.
func (s *Service) User(ctx context.Context, id uuid.UUID) (User, error) {
	return s.store.GetUser(ctx, id)
}

// UserByEmail returns the user with the given email, or ErrUserNotFound.
func (s *Service) UserByEmail(ctx context.Context, email string) (User, error) {
	return s.store.UserByEmail(ctx, email)
}

// Authenticate returns the caller a presented key belongs to, or
// ErrUnauthenticated. A key that is not of the form pms makes is refused
// before any store lookup; the secret is compared in constant time.
func (s *Service) Authenticate(ctx context.Context, presented string) (Caller, error) {
	prefix, secret, ok := parseKey(presented)
	if !ok {
		return Caller{}, ErrUnauthenticated
	}
	ko, err := s.store.KeyByPrefix(ctx, prefix)
	if err != nil {
		return Caller{}, err
	}
	if subtle.ConstantTimeCompare(hashSecret(secret), ko.Key.Hash) != 1 || !ko.Key.RevokedAt.IsZero() {
		return Caller{}, ErrUnauthenticated
	}
	if !ko.Stale {
		s.touch(ko.Key)
	}
	return Caller{UserID: ko.User.ID, Admin: ko.User.Admin, KeyID: ko.Key.ID, Degraded: ko.Stale}, nil
}

// touch records the key's use at most once per touchEvery, in the store and
// in this process: a cached key shows an old last_used_at meanwhile. The
// uses of a touchBatch are written together, in one statement, beside the
// requests, which never wait for it: a missed last_used_at is no reason to
// refuse or slow a request, and a store that hangs must not hang it.
func (s *Service) touch(k APIKey) {
	now := s.now()
	if now.Sub(k.LastUsedAt) <= touchEvery {
		return
	}
	s.touchedMu.RLock()
	last, ok := s.touched[k.ID]
	s.touchedMu.RUnlock()
	if ok && now.Sub(last) <= touchEvery {
		return
	}
	s.touchedMu.Lock()
	s.touched[k.ID] = now
	s.touchedMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(s.pending, KeyUse{ID: k.ID, At: now.UTC().Truncate(time.Microsecond)})
	if s.flush == nil {
		s.touches.Add(1)
		s.flush = time.AfterFunc(touchBatch, s.writeTouches)
	}
}

// writeTouches writes the pending last uses, in one statement bounded by
// touchTimeout.
func (s *Service) writeTouches() {
	defer s.touches.Done()
	s.mu.Lock()
	uses := s.pending
	s.pending, s.flush = nil, nil
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), touchTimeout)
	defer cancel()
	_ = s.store.TouchKeys(ctx, uses)
}

// Wait writes the pending last uses now and waits for the writes in
// flight, for a clean shutdown and for tests.
func (s *Service) Wait() {
	s.mu.Lock()
	flush := s.flush
	s.mu.Unlock()
	if flush != nil && flush.Stop() {
		s.writeTouches()
	}
	s.touches.Wait()
}

// CreateKey makes a new key for the user and returns it in plain text, the
// only time it is shown, with its stored form; ErrUserNotFound when there
// is no such user.
func (s *Service) CreateKey(ctx context.Context, userID uuid.UUID) (string, APIKey, error) {
	if _, err := s.store.GetUser(ctx, userID); err != nil {
		return "", APIKey{}, err
	}
	plain, k, err := newKey(userID, s.timestamp())
	if err != nil {
		return "", APIKey{}, err
	}
	if err := s.store.CreateKey(ctx, k); err != nil {
		return "", APIKey{}, err
	}
	return plain, k, nil
}

// ListKeys returns the user's keys, newest first.
func (s *Service) ListKeys(ctx context.Context, userID uuid.UUID) ([]APIKey, error) {
	return s.store.ListKeys(ctx, userID)
}

// RevokeKey revokes a key, or returns ErrKeyNotFound; revoking it again
// changes nothing.
func (s *Service) RevokeKey(ctx context.Context, id uuid.UUID) (APIKey, error) {
	return s.store.RevokeKey(ctx, id, s.timestamp())
}

// mustV7 returns a new time-ordered UUID. uuid.NewV7 fails only when the
// system's random source does, which leaves nothing sensible to do.
func mustV7() uuid.UUID { return uuid.Must(uuid.NewV7()) }
