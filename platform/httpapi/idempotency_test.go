package httpapi_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product"
)

// TestCreateProductReplayAnswersAsFirst: a replay answers with the first
// response's status, body and headers, byte for byte, after the product was
// changed and after it was deleted; the deleted product stays 404.
func TestCreateProductReplayAnswersAsFirst(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	key := "key-" + uuid.NewString()
	body := validDraft(user).with("product_images", []string{"https://example.com/replay.jpg"}).String()
	post := func() response {
		return a.do(t, http.MethodPost, "/api/v1/products", body, "Idempotency-Key", key)
	}
	first := post()
	if first.status != http.StatusCreated {
		t.Fatalf("%v, want 201", first)
	}
	path := first.header.Get("Location")
	wantReplay := func(when string) {
		t.Helper()
		r := post()
		if r.status != first.status || r.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay %s: %v with Idempotent-Replayed %q, want %d and true", when, r, r.header.Get("Idempotent-Replayed"), first.status)
		}
		if !bytes.Equal(r.body, first.body) {
			t.Errorf("replay %s answered\n%s\nwant the first response's body\n%s", when, r.body, first.body)
		}
		for _, h := range []string{"Location", "ETag", "Content-Type"} {
			if got, want := r.header.Get(h), first.header.Get(h); got != want {
				t.Errorf("replay %s: %s %q, want the first response's %q", when, h, got, want)
			}
		}
	}
	wantReplay("at once")

	patched := a.do(t, http.MethodPatch, path, `{"product_name":"Changed since","product_price":99}`)
	if patched.status != http.StatusOK {
		t.Fatalf("%v, want 200", patched)
	}
	wantReplay("after a PATCH")

	if r := a.do(t, http.MethodDelete, path, ""); r.status != http.StatusNoContent {
		t.Fatalf("%v, want 204", r)
	}
	wantReplay("after a DELETE")
	wantError(t, a.do(t, http.MethodGet, path, ""), http.StatusNotFound, "not_found")

	// The replay stored nothing.
	page := decodePage(t, a.do(t, http.MethodGet, "/api/v1/products?user_id="+user.String(), ""))
	if len(page.Items) != 0 {
		t.Errorf("user has %d products after replays of a deleted one, want 0", len(page.Items))
	}
}

// TestCreateProductKeyExpires: once idempotency.ttl has passed, a key is
// free: a create with it, even with another body, makes a new product, which
// the key then replays.
func TestCreateProductKeyExpires(t *testing.T) {
	t.Parallel()
	const ttl = time.Second
	a := newAPIKeeping(t, postgrestest.New(t), postgres.IdempotencyConfig{TTL: ttl, PruneInterval: time.Hour},
		testConfig(), product.Policy{}, nil)
	user := a.newUser(t)
	key := "key-" + uuid.NewString()
	d := validDraft(user)
	post := func(d draft) response {
		return a.do(t, http.MethodPost, "/api/v1/products", d.String(), "Idempotency-Key", key)
	}

	first := post(d)
	if first.status != http.StatusCreated {
		t.Fatalf("%v, want 201", first)
	}
	created := time.Now()
	if r := post(d); r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("%v: not replayed within the key's ttl", r)
	}
	time.Sleep(time.Until(created.Add(ttl)))

	other := d.with("product_price", raw("13"))
	second := post(other)
	if second.status != http.StatusCreated || second.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("%v (Idempotent-Replayed %q), want 201 and a new product once the key expired",
			second, second.header.Get("Idempotent-Replayed"))
	}
	if decodeProduct(t, second).ID == decodeProduct(t, first).ID {
		t.Errorf("create after the key expired returned the first product %s, want a new one", decodeProduct(t, first).ID)
	}
	if r := post(other); r.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(r.body, second.body) {
		t.Errorf("%v: want a replay of the second create", r)
	}
	wantError(t, post(d), http.StatusUnprocessableEntity, "idempotency_key_reused")
}
