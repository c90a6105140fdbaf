package postgres_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product/account"
)

// BenchmarkKeyLookup compares, side by side, a key lookup as
// AccountStore.KeyByPrefix makes it (prepared: parsed and planned once per
// connection) with the same query unprepared, as it was made before, and
// the key epoch read each process makes every second.
func BenchmarkKeyLookup(b *testing.B) {
	ctx := context.Background()
	dbURL := postgrestest.URL(b)
	db, err := postgres.Open(postgrestest.Config(b, dbURL))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	raw, err := sql.Open("postgres", dbURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { raw.Close() })
	store := postgres.NewAccountStore(db)
	now := time.Now().UTC().Truncate(time.Microsecond)
	u := account.User{ID: uuid.Must(uuid.NewV7()), Email: uuid.NewString() + "@example.com", Name: "Bench", CreatedAt: now}
	k := account.APIKey{ID: uuid.Must(uuid.NewV7()), UserID: u.ID, Prefix: uuid.NewString()[:12], Hash: make([]byte, 32), CreatedAt: now}
	if err := store.CreateUser(ctx, u); err != nil {
		b.Fatal(err)
	}
	if err := store.CreateKey(ctx, k); err != nil {
		b.Fatal(err)
	}
	b.Run("prepared", func(b *testing.B) {
		for b.Loop() {
			if _, err := store.KeyByPrefix(ctx, k.Prefix); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unprepared", func(b *testing.B) {
		const query = `
SELECT k.id, k.user_id, k.prefix, k.hash, k.created_at, k.last_used_at, k.revoked_at,
       u.email, u.name, u.is_admin, u.created_at AS user_created_at
FROM api_keys k JOIN users u ON u.id = k.user_id
WHERE k.prefix = $1`
		var (
			id, userID           uuid.UUID
			prefix, email, name  string
			hash                 []byte
			created, userCreated time.Time
			used, revoked        sql.NullTime
			admin                bool
		)
		for b.Loop() {
			if err := raw.QueryRowContext(ctx, query, k.Prefix).Scan(&id, &userID, &prefix, &hash, &created, &used, &revoked,
				&email, &name, &admin, &userCreated); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("epoch", func(b *testing.B) {
		for b.Loop() {
			if _, err := store.KeyEpoch(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
