package postgres_test

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/seal"
	"github.com/pms-dev/pms/product/account"
	"github.com/pms-dev/pms/webhook"
)

// sealKeys returns the keys given, the first sealing.
func sealKeys(t *testing.T, given ...string) *seal.Keys {
	t.Helper()
	k, err := seal.ParseKeys(given)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func randomKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, seal.KeySize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// TestWebhookSecretsSealed: with keys, the secrets in the table are sealed
// (a copy of it does not give them away) and the store reads them back;
// a secret stored in clear before keys were given still reads, and Reseal
// seals it; after a rotation Reseal moves every secret to the new key, so
// the old one can go.
func TestWebhookSecretsSealed(t *testing.T) {
	ctx := t.Context()
	db, raw := privateDB(t)
	u, err := account.NewService(postgres.NewAccountStore(db)).CreateUser(ctx, uuid.NewString()+"@example.com", "Hooks", false)
	if err != nil {
		t.Fatal(err)
	}
	stored := func(id uuid.UUID) (secret, previous string) {
		t.Helper()
		if err := raw.QueryRowContext(ctx, `SELECT secret, previous_secret FROM webhooks WHERE id = $1`, id).Scan(&secret, &previous); err != nil {
			t.Fatal(err)
		}
		return secret, previous
	}
	subscription := func(secret, previous string) webhook.Subscription {
		now := time.Now().UTC().Truncate(time.Microsecond)
		return webhook.Subscription{ID: uuid.New(), UserID: u.ID, URL: "https://hooks.example.com/in", EventTypes: []string{"product.created"},
			Enabled: true, Secret: secret, PreviousSecret: previous, PreviousSecretUntil: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now}
	}
	oldKey, newKey := randomKey(t), randomKey(t)
	keyed := postgres.NewWebhookStore(db, sealKeys(t, oldKey))

	sealed := subscription("whsec_Y3VycmVudCBzZWNyZXQ=", "whsec_cHJldmlvdXMgc2VjcmV0")
	if err := keyed.Create(ctx, sealed); err != nil {
		t.Fatal(err)
	}
	secret, previous := stored(sealed.ID)
	if strings.Contains(secret, "Y3VycmVudCBzZWNyZXQ") || strings.Contains(previous, "cHJldmlvdXMgc2VjcmV0") || !strings.HasPrefix(secret, "sealed:v1:") {
		t.Fatalf("the table holds %q and %q: want both sealed", secret, previous)
	}
	got, err := keyed.Get(ctx, sealed.ID)
	if err != nil || got.Secret != sealed.Secret || got.PreviousSecret != sealed.PreviousSecret {
		t.Fatalf("Get = %q, %q, %v; want the secrets as created", got.Secret, got.PreviousSecret, err)
	}
	if _, err := postgres.NewWebhookStore(db, nil).Get(ctx, sealed.ID); !errors.Is(err, seal.ErrNoKey) {
		t.Errorf("a store without the key reads a sealed secret with %v, want ErrNoKey", err)
	}

	clear := subscription("whsec_Y2xlYXIgc2VjcmV0", "")
	if err := postgres.NewWebhookStore(db, nil).Create(ctx, clear); err != nil {
		t.Fatal(err)
	}
	if secret, _ := stored(clear.ID); secret != clear.Secret {
		t.Fatalf("with no keys the table holds %q, want the secret in clear", secret)
	}
	if got, err := keyed.Get(ctx, clear.ID); err != nil || got.Secret != clear.Secret {
		t.Fatalf("a secret stored in clear reads as %q, %v", got.Secret, err)
	}
	stale := func(store *postgres.WebhookStore, want int, when string) {
		t.Helper()
		if n, err := store.Stale(ctx); err != nil || n != want {
			t.Errorf("%s: Stale = %d, %v; want %d", when, n, err, want)
		}
	}
	stale(keyed, 1, "one secret in clear")
	stale(postgres.NewWebhookStore(db, nil), 1, "one sealed secret, no keys")
	var calls int
	n, err := keyed.Reseal(ctx, func(done, total int) { calls++ })
	if err != nil || n != 1 || calls == 0 {
		t.Fatalf("Reseal = %d, %v (progress called %d times); want the one clear subscription", n, err, calls)
	}
	if secret, _ := stored(clear.ID); !strings.HasPrefix(secret, "sealed:v1:") {
		t.Fatalf("after Reseal the table holds %q, want it sealed", secret)
	}
	if n, err := keyed.Reseal(ctx, func(int, int) {}); err != nil || n != 0 {
		t.Errorf("a second Reseal wrote %d, %v; want nothing to do", n, err)
	}
	stale(keyed, 0, "every secret sealed")

	rotated := postgres.NewWebhookStore(db, sealKeys(t, newKey, oldKey))
	stale(rotated, 2, "a new key put first")
	if n, err := rotated.Reseal(ctx, func(int, int) {}); err != nil || n != 2 {
		t.Fatalf("Reseal after the rotation = %d, %v; want both subscriptions", n, err)
	}
	stale(rotated, 0, "resealed under the new key")
	onlyNew := postgres.NewWebhookStore(db, sealKeys(t, newKey))
	list, err := onlyNew.List(ctx, u.ID)
	if err != nil || len(list) != 2 {
		t.Fatalf("with the old key dropped, List = %d subscriptions, %v", len(list), err)
	}
	for _, w := range list {
		if want := map[uuid.UUID]string{sealed.ID: sealed.Secret, clear.ID: clear.Secret}[w.ID]; w.Secret != want {
			t.Errorf("subscription %s: secret %q, want %q", w.ID, w.Secret, want)
		}
	}

	// A sealed secret copied into another row does not open there.
	if _, err := raw.ExecContext(ctx, `UPDATE webhooks SET secret = (SELECT secret FROM webhooks WHERE id = $1) WHERE id = $2`, sealed.ID, clear.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := onlyNew.Get(ctx, clear.ID); err == nil {
		t.Error("a secret moved from another row opened")
	}
}
