package postgres_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/lib/pq"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product"
)

// TestReadsStoredScalarsExactly: the price and the times, which a read
// takes in cents and microseconds, come back as stored, at the edges of
// their ranges and on both sides of 1970.
func TestReadsStoredScalarsExactly(t *testing.T) {
	t.Parallel()
	dbURL := postgrestest.URL(t)
	db := postgrestest.New(t)
	raw, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	store, err := postgres.NewProductStore(db, postgres.DefaultIdempotencyConfig())
	if err != nil {
		t.Fatal(err)
	}
	user := uuid.New()
	if _, err := raw.ExecContext(t.Context(), `INSERT INTO users (id, email, name, created_at) VALUES ($1, $2, 'S', now())`,
		user, user.String()+"@example.test"); err != nil {
		t.Fatalf("insert user: %v", err)
	}
	for _, tt := range []struct {
		price            string
		want             product.Price
		created, updated string
	}{
		{"0", 0, "1970-01-01 00:00:00+00", "1970-01-01 00:00:00.000001+00"},
		{"0.01", 1, "1969-12-31 23:59:59.999999+00", "1900-02-28 12:00:00.5+00"},
		{"9999999999.99", product.MaxPrice, "2026-12-02 14:50:56.123456+01", "9999-12-31 23:59:59.999999+00"},
		{"12.5", 1250, "0001-01-01 00:00:00+00", "2262-04-11 23:47:16.854775+00"},
	} {
		id := uuid.New()
		if _, err := raw.ExecContext(t.Context(), `INSERT INTO products (id, user_id, product_name, product_price, version, created_at, updated_at)
			VALUES ($1, $2, 'Scalars', $3::numeric, 2147483647, $4::timestamptz, $5::timestamptz)`, id, user, tt.price, tt.created, tt.updated); err != nil {
			t.Fatalf("insert product: %v", err)
		}
		var created, updated time.Time
		if err := raw.QueryRowContext(t.Context(), `SELECT created_at, updated_at FROM products WHERE id = $1`, id).Scan(&created, &updated); err != nil {
			t.Fatal(err)
		}
		p, err := store.Get(t.Context(), id)
		if err != nil {
			t.Fatalf("Get(%s): %v", id, err)
		}
		if p.ID != id || p.UserID != user || p.Price != tt.want || p.Version != 2147483647 ||
			!p.CreatedAt.Equal(created) || !p.UpdatedAt.Equal(updated) || p.CreatedAt.Location() != time.UTC {
			t.Errorf("Get of a product stored at %s, %s, %s: %s, %s, price %d, version %d, %s, %s; want %s, %s, %d, 2147483647, %s, %s (UTC)",
				tt.price, tt.created, tt.updated, p.ID, p.UserID, p.Price, p.Version, p.CreatedAt, p.UpdatedAt, id, user, tt.want, created, updated)
		}
	}
}
