package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
)

// newProductStore returns a ProductStore on db keeping keys as idem says.
func newProductStore(tb testing.TB, db *postgres.DB, idem postgres.IdempotencyConfig) *postgres.ProductStore {
	tb.Helper()
	s, err := postgres.NewProductStore(db, idem)
	if err != nil {
		tb.Fatalf("NewProductStore: %v", err)
	}
	return s
}

func TestIdempotencyConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  postgres.IdempotencyConfig
		want string // "" when valid
	}{
		{"defaults", postgres.DefaultIdempotencyConfig(), ""},
		{"short", postgres.IdempotencyConfig{TTL: time.Second, PruneInterval: time.Second}, ""},
		{"no ttl", postgres.IdempotencyConfig{PruneInterval: time.Hour}, "idempotency.ttl: must be at least 1s"},
		{"both", postgres.IdempotencyConfig{TTL: time.Millisecond}, "idempotency.ttl: must be at least 1s\nidempotency.prune_interval: must be at least 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if err := tt.cfg.Validate(); err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := postgres.NewProductStore(nil, postgres.IdempotencyConfig{}); err == nil {
		t.Error("NewProductStore with a zero config = nil error, want the config's problems")
	}
}

// TestCreateReplaysFirstProduct: a replay returns the product as its first
// create returned it, after the product changed and after it was deleted.
func TestCreateReplaysFirstProduct(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	store := newProductStore(t, f.db, postgres.DefaultIdempotencyConfig())
	svc := product.NewService(store, imageTasks, product.Policy{})
	d := product.Draft{Name: "Lamp", Description: "Brass", Price: 4990, ImageURLs: []string{"https://example.com/l.jpg"}}
	key := "key-" + uuid.NewString()

	first, replayed, err := svc.Create(ctx, f.as, d, key)
	if err != nil || replayed {
		t.Fatalf("first Create = replayed %v, %v; want a new product", replayed, err)
	}
	replay := func(when string) {
		t.Helper()
		got, replayed, err := svc.Create(ctx, f.as, d, key)
		if err != nil || !replayed {
			t.Fatalf("Create %s = replayed %v, %v; want a replay", when, replayed, err)
		}
		if diff := cmp.Diff(first, got); diff != "" {
			t.Errorf("replay %s differs from the first create (-first +replay):\n%s", when, diff)
		}
	}
	replay("at once")

	name := "Renamed lamp"
	if _, err := svc.Update(ctx, f.as, first.ID, product.Patch{Name: &name}, 0); err != nil {
		t.Fatalf("Update: %v", err)
	}
	results := postgres.NewImageResults(f.db)
	if _, err := results.Begin(ctx, taskOf(first, 0)); err != nil {
		t.Fatalf("Begin: %v", err)
	}
	replay("after an update and an image change")

	if err := svc.Delete(ctx, f.as, first.ID, 0); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	replay("after a delete")

	other := d
	other.Price++
	if _, _, err := svc.Create(ctx, f.as, other, key); !errors.Is(err, product.ErrIdempotencyKey) {
		t.Errorf("Create with the key and another body = %v, want ErrIdempotencyKey", err)
	}
}

// TestCreateReplaysKeyWithoutResponse: a key made before responses were
// kept (migration 0006) replays the product as it is stored now.
func TestCreateReplaysKeyWithoutResponse(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	raw := rawDB(t)
	ctx := context.Background()
	d := product.Draft{Name: "Old key", Price: 100}
	key := "key-" + uuid.NewString()
	first, _, err := f.svc.Create(ctx, f.as, d, key)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := raw.ExecContext(ctx, `UPDATE idempotency_keys SET response = NULL WHERE key = $1`, key); err != nil {
		t.Fatal(err)
	}
	name := "Renamed since"
	now, err := f.svc.Update(ctx, f.as, first.ID, product.Patch{Name: &name}, 0)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	got, replayed, err := f.svc.Create(ctx, f.as, d, key)
	if err != nil || !replayed || got.ID != first.ID || got.Name != name || got.Version != now.Version {
		t.Errorf("Create with a key without response = %s %q v%d, replayed %v, %v; want a replay of %s as stored, %q v%d",
			got.ID, got.Name, got.Version, replayed, err, first.ID, name, now.Version)
	}
}

// TestCreateAfterKeyExpired: once its key has expired a create with it is
// new, whatever the earlier request was.
func TestCreateAfterKeyExpired(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	const ttl = time.Second
	svc := product.NewService(newProductStore(t, f.db, postgres.IdempotencyConfig{TTL: ttl, PruneInterval: time.Hour}), imageTasks, product.Policy{})
	d := product.Draft{Name: "Short-lived", Price: 100}
	key := "key-" + uuid.NewString()

	first, _, err := svc.Create(ctx, f.as, d, key)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, replayed, err := svc.Create(ctx, f.as, d, key); err != nil || !replayed {
		t.Fatalf("Create before the key expired = replayed %v, %v; want a replay", replayed, err)
	}
	time.Sleep(time.Until(first.CreatedAt.Add(ttl)))

	other := d
	other.Price = 200
	second, replayed, err := svc.Create(ctx, f.as, other, key)
	if err != nil || replayed || second.ID == first.ID {
		t.Fatalf("Create after the key expired = %s, replayed %v, %v; want a new product", second.ID, replayed, err)
	}
	again, replayed, err := svc.Create(ctx, f.as, other, key)
	if err != nil || !replayed || again.ID != second.ID {
		t.Errorf("Create with the key taken over = %s, replayed %v, %v; want a replay of %s", again.ID, replayed, err, second.ID)
	}
}

// TestPrunerDeletesExpiredKeys: Prune deletes every expired key, more than
// a batch of them, and no other; Run prunes at once and returns nil when
// stopped.
func TestPrunerDeletesExpiredKeys(t *testing.T) {
	t.Parallel()
	db, raw := privateDB(t) // Prune acts on every row
	ctx := context.Background()
	svc := product.NewService(newProductStore(t, db, postgres.DefaultIdempotencyConfig()), imageTasks, product.Policy{})
	u, err := account.NewService(postgres.NewAccountStore(db)).CreateUser(ctx, "pruner@example.com", "Pruner", false)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := svc.Create(ctx, account.Caller{UserID: u.ID}, product.Draft{Name: "Kept key", Price: 1}, "live-key")
	if err != nil {
		t.Fatal(err)
	}
	const expired = 2345 // more than two batches
	if _, err := raw.ExecContext(ctx, `
INSERT INTO idempotency_keys (user_id, key, request_hash, product_id, created_at, expires_at)
SELECT $1, 'old-' || n, 'h', $2, now() - interval '2 days', now() - interval '1 day' + n * interval '1 second'
FROM generate_series(1, $3) AS n`, u.ID, p.ID, expired); err != nil {
		t.Fatalf("insert expired keys: %v", err)
	}
	keys := func() []string {
		t.Helper()
		rows, err := raw.QueryContext(ctx, `SELECT key FROM idempotency_keys ORDER BY key`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				t.Fatal(err)
			}
			out = append(out, k)
		}
		return out
	}

	pruner, err := postgres.NewPruner(postgres.IdempotencyConfig{TTL: time.Hour, PruneInterval: time.Hour}, db, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := pruner.Prune(ctx); err != nil || n != expired {
		t.Errorf("Prune = %d, %v; want %d expired keys deleted", n, err, expired)
	}
	if diff := cmp.Diff([]string{"live-key"}, keys()); diff != "" {
		t.Errorf("keys after Prune (-want +got):\n%s", diff)
	}

	if _, err := raw.ExecContext(ctx, `UPDATE idempotency_keys SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pruner.Run(runCtx) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(keys()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not prune the expired key within 10s of starting")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run = %v after cancel, want nil", err)
	}
}
