package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
)

// TestAccountStoreUsers checks the user half of the account store against
// PostgreSQL: emails are unique in any case, lookups find them in any case,
// and what is missing comes back as the account package's errors.
func TestAccountStoreUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := postgrestest.New(t)
	store := postgres.NewAccountStore(db)
	email := "Ann-" + uuid.NewString() + "@Example.com"
	ann := account.User{ID: uuid.Must(uuid.NewV7()), Email: email, Name: "Ann", Admin: true,
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := store.CreateUser(ctx, ann); err != nil {
		t.Fatalf("CreateUser(%s) error = %v", email, err)
	}
	for _, get := range []struct {
		name string
		call func() (account.User, error)
	}{
		{"GetUser", func() (account.User, error) { return store.GetUser(ctx, ann.ID) }},
		{"UserByEmail, lower case", func() (account.User, error) { return store.UserByEmail(ctx, strings.ToLower(email)) }},
		{"UserByEmail, upper case", func() (account.User, error) { return store.UserByEmail(ctx, strings.ToUpper(email)) }},
	} {
		if got, err := get.call(); err != nil || got != ann {
			t.Errorf("%s = %+v, %v; want %+v", get.name, got, err, ann)
		}
	}

	twin := ann
	twin.ID, twin.Email = uuid.Must(uuid.NewV7()), strings.ToUpper(email)
	err := store.CreateUser(ctx, twin)
	if !errors.Is(err, account.ErrEmailTaken) || errors.Is(err, product.ErrConflict) {
		t.Errorf("CreateUser(same email, other case) error = %v, want account.ErrEmailTaken only", err)
	}

	if _, err := store.GetUser(ctx, uuid.New()); !errors.Is(err, account.ErrUserNotFound) {
		t.Errorf("GetUser(unknown) error = %v, want account.ErrUserNotFound", err)
	}
	if _, err := store.UserByEmail(ctx, "nobody-"+uuid.NewString()+"@example.com"); !errors.Is(err, account.ErrUserNotFound) {
		t.Errorf("UserByEmail(unknown) error = %v, want account.ErrUserNotFound", err)
	}
}

// TestProductOfUnknownOwner shows the foreign key from products to users
// coming back as account.ErrUserNotFound, which the API answers with a 422.
func TestProductOfUnknownOwner(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	store := newProductStore(t, db, postgres.DefaultIdempotencyConfig())
	now := time.Now().UTC().Truncate(time.Microsecond)
	p := product.Product{ID: uuid.Must(uuid.NewV7()), UserID: uuid.New(), Name: "Lamp", Price: 100, Version: 1,
		CreatedAt: now, UpdatedAt: now}
	if _, _, err := store.Create(t.Context(), p, product.IdempotencyKey{}, nil); !errors.Is(err, account.ErrUserNotFound) {
		t.Errorf("Create(product of unknown user) error = %v, want account.ErrUserNotFound", err)
	}
}

// TestTouchKeys writes the last uses of several keys in one call: each key
// gets its own time, an older use than the row shows (another process's,
// late) leaves the row alone, and a key that no longer exists is no error.
func TestTouchKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := postgres.NewAccountStore(postgrestest.New(t))
	now := time.Now().UTC().Truncate(time.Microsecond)
	u := account.User{ID: uuid.Must(uuid.NewV7()), Email: uuid.NewString() + "@example.com", Name: "Ann", CreatedAt: now}
	if err := store.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	keys := make([]account.APIKey, 3)
	for i := range keys {
		keys[i] = account.APIKey{ID: uuid.Must(uuid.NewV7()), UserID: u.ID, Prefix: uuid.NewString()[:12], Hash: make([]byte, 32), CreatedAt: now}
		if err := store.CreateKey(ctx, keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	at := func(d time.Duration) time.Time { return now.Add(d) }
	for _, batch := range [][]account.KeyUse{
		{{ID: keys[0].ID, At: at(time.Minute)}, {ID: keys[1].ID, At: at(2 * time.Minute)}, {ID: uuid.New(), At: at(time.Minute)}},
		{{ID: keys[0].ID, At: at(30 * time.Second)}, {ID: keys[1].ID, At: at(3*time.Minute + time.Microsecond)}},
		nil,
	} {
		if err := store.TouchKeys(ctx, batch); err != nil {
			t.Fatalf("TouchKeys(%d uses) error = %v", len(batch), err)
		}
	}
	want := map[uuid.UUID]time.Time{keys[0].ID: at(time.Minute), keys[1].ID: at(3*time.Minute + time.Microsecond), keys[2].ID: {}}
	for i, k := range keys {
		ko, err := store.KeyByPrefix(ctx, k.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		if got := ko.Key.LastUsedAt; !got.Equal(want[k.ID]) {
			t.Errorf("key %d last used %v, want %v", i, got, want[k.ID])
		}
	}
}

// TestKeyEpochMoves: the key epoch moves with every change to what a key
// lookup returns (a revocation through the store, a user or key edited or a
// key deleted by hand), and not with new rows or last_used_at.
func TestKeyEpochMoves(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := postgrestest.Private(t)
	db, err := postgres.Open(postgrestest.Config(t, dbURL))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	raw, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	byHand := func(query string, args ...any) error { _, err := raw.ExecContext(ctx, query, args...); return err }
	store := postgres.NewAccountStore(db)
	epoch := func() int64 {
		t.Helper()
		n, err := store.KeyEpoch(ctx)
		if err != nil {
			t.Fatalf("KeyEpoch() error = %v", err)
		}
		return n
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	u := account.User{ID: uuid.Must(uuid.NewV7()), Email: uuid.NewString() + "@example.com", Name: "Ann", CreatedAt: now}
	k := account.APIKey{ID: uuid.Must(uuid.NewV7()), UserID: u.ID, Prefix: uuid.NewString()[:12], Hash: make([]byte, 32), CreatedAt: now}
	start := epoch()
	if err := store.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := store.TouchKeys(ctx, []account.KeyUse{{ID: k.ID, At: now}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.KeyByPrefix(ctx, k.Prefix); err != nil {
		t.Fatal(err)
	}
	if got := epoch(); got != start {
		t.Errorf("KeyEpoch() after a new user and key, a touch and a lookup = %d, want unchanged %d", got, start)
	}
	last := start
	for _, change := range []struct {
		name string
		run  func() error
	}{
		{"RevokeKey", func() error { _, err := store.RevokeKey(ctx, k.ID, now); return err }},
		{"a user made admin by hand", func() error { return byHand(`UPDATE users SET is_admin = true WHERE id = $1`, u.ID) }},
		{"a key deleted by hand", func() error { return byHand(`DELETE FROM api_keys WHERE id = $1`, k.ID) }},
	} {
		if err := change.run(); err != nil {
			t.Fatalf("%s: %v", change.name, err)
		}
		if got := epoch(); got <= last {
			t.Errorf("KeyEpoch() after %s = %d, want more than %d", change.name, got, last)
		} else {
			last = got
		}
	}
}
