package postgres_test

import (
	"context"
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
