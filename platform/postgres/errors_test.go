package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/product"
)

// TestDataExceptionsAreInvalidInput hands the stores values that validation
// refuses before they get this far, so PostgreSQL raises its data exceptions
// (SQLSTATE class 22): each must come back as product.ErrInvalidInput, which
// the API answers with a 400, never as an unclassified error (a 500).
func TestDataExceptionsAreInvalidInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	store, keys := newProductStore(t, f.db, postgres.DefaultIdempotencyConfig()), postgres.NewAccountStore(f.db)
	now := time.Now().UTC().Truncate(time.Microsecond)
	newProduct := func(edit func(*product.Product)) product.Product {
		p := product.Product{ID: uuid.Must(uuid.NewV7()), UserID: f.owner, Name: "Lamp", Price: 100, Version: 1, CreatedAt: now, UpdatedAt: now}
		edit(&p)
		return p
	}
	create := func(ctx context.Context, p product.Product, key string) error {
		var k product.IdempotencyKey
		if key != "" {
			k = product.IdempotencyKey{Key: key, RequestHash: "h"}
		}
		_, _, err := store.Create(ctx, p, k, nil)
		return err
	}
	tests := []struct {
		name  string
		sqlst string // the SQLSTATE PostgreSQL raises
		call  func(ctx context.Context) error
	}{
		{"name not UTF-8", "22021", func(ctx context.Context) error {
			return create(ctx, newProduct(func(p *product.Product) { p.Name = "Lamp \xff" }), "")
		}},
		{"description with NUL", "22021", func(ctx context.Context) error {
			return create(ctx, newProduct(func(p *product.Product) { p.Description = "a\x00b" }), "")
		}},
		{"price beyond numeric(12,2)", "22003", func(ctx context.Context) error {
			return create(ctx, newProduct(func(p *product.Product) { p.Price = product.MaxPrice * 1000 }), "")
		}},
		{"idempotency key not UTF-8", "22021", func(ctx context.Context) error {
			return create(ctx, newProduct(func(*product.Product) {}), "key-\xfe\xff")
		}},
		{"key prefix not UTF-8", "22021", func(ctx context.Context) error {
			_, err := keys.KeyByPrefix(ctx, "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4")
			return err
		}},
		{"name filter not UTF-8", "22021", func(ctx context.Context) error {
			_, err := store.List(ctx, product.Filter{Name: "\xc3", Sort: product.SortCreated, Limit: 1})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.call(t.Context())
			if !errors.Is(err, product.ErrInvalidInput) {
				t.Fatalf("got %v, want product.ErrInvalidInput", err)
			}
			if errors.Is(err, product.ErrUnavailable) {
				t.Errorf("got %v, which is also ErrUnavailable", err)
			}
			if got := sqlState(err); got != tt.sqlst {
				t.Errorf("got SQLSTATE %q (%v), want %s: the case no longer shows what it names", got, err, tt.sqlst)
			}
		})
	}
}

// sqlState returns the SQLSTATE of the PostgreSQL error in err's chain, or "".
func sqlState(err error) string {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return string(pqErr.Code)
	}
	return ""
}
