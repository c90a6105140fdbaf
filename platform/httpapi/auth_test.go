package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/httpapi"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product"
)

// apiRoutes are one call of every /api/v1 route.
func apiRoutes(id uuid.UUID) []struct{ method, path, body string } {
	return append(productCalls(uuid.New(), id), struct{ method, path, body string }{http.MethodGet, "/api/v1/me", ""})
}

func TestEveryAPIRouteRequiresAKey(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	revoked := a.newKey(t, false)
	keys, err := a.auth.ListKeys(t.Context(), userOf(t, a, revoked))
	if err != nil || len(keys) != 1 {
		t.Fatalf("ListKeys = %v, %v", keys, err)
	}
	if _, err := a.auth.RevokeKey(t.Context(), keys[0].ID); err != nil {
		t.Fatal(err)
	}
	good := a.newKey(t, false)
	wrongSecret := good[:len(good)-4] + "AAAA"
	if wrongSecret == good {
		wrongSecret = good[:len(good)-4] + "BBBB"
	}
	for name, header := range map[string]string{
		"missing":      omit,
		"empty":        "",
		"not bearer":   "Basic " + good,
		"no key":       "Bearer ",
		"malformed":    "Bearer not-a-key",
		"unknown":      "Bearer " + unknownKey,
		"wrong secret": "Bearer " + wrongSecret,
		"revoked":      "Bearer " + revoked,
	} {
		for _, c := range apiRoutes(uuid.New()) {
			r := a.do(t, c.method, c.path, c.body, "Authorization", header)
			wantError(t, r, http.StatusUnauthorized, "unauthorized")
			if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer") {
				t.Errorf("%s key: %v: WWW-Authenticate %q, want a Bearer challenge", name, r, ch)
			}
		}
	}
	// Operations routes need no key.
	for _, path := range []string{"/health", "/openapi.yaml"} {
		if r := a.do(t, http.MethodGet, path, "", "Authorization", omit); r.status != http.StatusOK {
			t.Errorf("%v, want 200 without a key", r)
		}
	}
	for _, path := range []string{"/health", "/ready", "/metrics"} {
		if r := a.doOps(t, path); r.status != http.StatusOK {
			t.Errorf("%v, want 200 without a key", r)
		}
	}
}

// userOf returns the user a key belongs to, through GET /api/v1/me.
func userOf(t *testing.T, a *api, key string) uuid.UUID {
	t.Helper()
	r := a.do(t, http.MethodGet, "/api/v1/me", "", "Authorization", "Bearer "+key)
	if r.status != http.StatusOK {
		t.Fatalf("%v, want 200", r)
	}
	var me struct {
		UserID uuid.UUID `json:"user_id"`
		Admin  bool      `json:"admin"`
	}
	if err := json.Unmarshal(r.body, &me); err != nil {
		t.Fatalf("%v: %v", r, err)
	}
	return me.UserID
}

func TestMe(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	r := a.do(t, http.MethodGet, "/api/v1/me", "")
	var me struct {
		UserID uuid.UUID `json:"user_id"`
		Email  string    `json:"email"`
		Name   string    `json:"name"`
		Admin  bool      `json:"admin"`
		KeyID  uuid.UUID `json:"key_id"`
	}
	if err := json.Unmarshal(r.body, &me); err != nil || r.status != http.StatusOK {
		t.Fatalf("%v: %v", r, err)
	}
	u, err := a.auth.User(t.Context(), me.UserID)
	if err != nil {
		t.Fatalf("User(%s) of /me: %v", me.UserID, err)
	}
	keys, err := a.auth.ListKeys(t.Context(), u.ID)
	if err != nil || len(keys) != 1 {
		t.Fatalf("ListKeys(%s) = %v, %v; want the one key", u.ID, keys, err)
	}
	if !me.Admin || me.Email != u.Email || me.Name != u.Name || !strings.HasPrefix(me.Email, "user-") || me.KeyID != keys[0].ID {
		t.Errorf("%v, want the admin key's user %+v and key %s", r, u, keys[0].ID)
	}
}

// TestOwnership runs every verb as the owner, another user and an admin.
func TestOwnership(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	owner, other, admin := a.newKey(t, false), a.newKey(t, false), a.key
	ownerID, otherID := userOf(t, a, owner), userOf(t, a, other)
	as := func(key string) []string { return []string{"Authorization", "Bearer " + key} }
	create := func(key string) productOut {
		t.Helper()
		a.key = key
		defer func() { a.key = admin }()
		return a.create(t, validDraft(ownerID).without("user_id"))
	}

	// POST: the owner is the caller; naming someone else is for admins.
	p := create(owner)
	if p.UserID != ownerID {
		t.Errorf("POST without user_id made a product of %s, want the caller %s", p.UserID, ownerID)
	}
	wantError(t, a.do(t, http.MethodPost, "/api/v1/products", validDraft(ownerID).String(), as(other)...), http.StatusForbidden, "forbidden")
	if r := a.do(t, http.MethodPost, "/api/v1/products", validDraft(ownerID).String(), as(owner)...); r.status != http.StatusCreated {
		t.Errorf("%v, want 201: naming yourself is fine", r)
	}
	if r := a.do(t, http.MethodPost, "/api/v1/products", validDraft(otherID).String(), as(admin)...); r.status != http.StatusCreated {
		t.Errorf("%v, want 201: admins may create for anyone", r)
	}

	// GET: others' products do not exist for them (auth.public_reads off).
	path := productURL(p.ID)
	for _, c := range []struct {
		key  string
		want int
	}{{owner, 200}, {other, 404}, {admin, 200}} {
		if r := a.do(t, http.MethodGet, path, "", as(c.key)...); r.status != c.want {
			t.Errorf("%v, want %d", r, c.want)
		}
	}

	// List: defaults to the caller's products; other users' only for admins.
	if page := decodePage(t, a.do(t, http.MethodGet, "/api/v1/products?limit=100", "", as(other)...)); len(page.Items) != 1 || page.Items[0].UserID != otherID {
		t.Errorf("other user's default list = %+v, want only the one the admin made for them", page.Items)
	}
	if page := decodePage(t, a.do(t, http.MethodGet, "/api/v1/products?limit=100", "", as(owner)...)); len(page.Items) != 2 {
		t.Errorf("owner's default list has %d items, want their 2", len(page.Items))
	}
	byOwner := listPath("user_id", ownerID.String())
	wantError(t, a.do(t, http.MethodGet, byOwner, "", as(other)...), http.StatusForbidden, "forbidden")
	if page := decodePage(t, a.do(t, http.MethodGet, byOwner, "", as(admin)...)); len(page.Items) != 2 {
		t.Errorf("admin's list of the owner has %d items, want 2", len(page.Items))
	}

	// PATCH and DELETE: someone else's product is 404, not 403.
	wantError(t, a.do(t, http.MethodPatch, path, `{"product_name":"Mine now"}`, as(other)...), http.StatusNotFound, "not_found")
	wantError(t, a.do(t, http.MethodDelete, path, "", as(other)...), http.StatusNotFound, "not_found")
	if got := a.get(t, p.ID); got.Name != p.Name {
		t.Errorf("after another user's PATCH the name is %q, want %q", got.Name, p.Name)
	}
	if r := a.do(t, http.MethodPatch, path, `{"product_name":"By owner"}`, as(owner)...); r.status != http.StatusOK {
		t.Errorf("%v, want 200", r)
	}
	if r := a.do(t, http.MethodPatch, path, `{"product_name":"By admin"}`, as(admin)...); r.status != http.StatusOK {
		t.Errorf("%v, want 200", r)
	}
	if r := a.do(t, http.MethodDelete, path, "", as(owner)...); r.status != http.StatusNoContent {
		t.Errorf("%v, want 204", r)
	}
	q := create(owner)
	if r := a.do(t, http.MethodDelete, productURL(q.ID), "", as(admin)...); r.status != http.StatusNoContent {
		t.Errorf("%v, want 204", r)
	}
}

func TestPublicReads(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	a := newAPIWith(t, db, testConfig(), product.Policy{PublicReads: true}, nil)
	owner, other := a.newKey(t, false), a.newKey(t, false)
	ownerID := userOf(t, a, owner)
	a.key = owner
	p := a.create(t, validDraft(ownerID))
	a.key = other
	if r := a.do(t, http.MethodGet, productURL(p.ID), ""); r.status != http.StatusOK {
		t.Errorf("%v, want 200 with public reads", r)
	}
	if page := decodePage(t, a.do(t, http.MethodGet, listPath("user_id", ownerID.String()), "")); len(page.Items) != 1 {
		t.Errorf("listing the owner's products with public reads gave %d items, want 1", len(page.Items))
	}
	// Reading is not writing.
	wantError(t, a.do(t, http.MethodPatch, productURL(p.ID), `{"product_name":"x"}`), http.StatusNotFound, "not_found")
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	var calls, writes atomic.Int32
	// A limiter allowing 2 requests, then refusing for 3 seconds: the
	// Redis-backed one is tested in platform/redis, this is the HTTP side.
	limiter := func(_ context.Context, key string, write bool) httpapi.RateLimit {
		if key == "" || key == uuid.Nil.String() {
			t.Errorf("rate limited without a key id")
		}
		if write {
			writes.Add(1)
		}
		n := calls.Add(1)
		return httpapi.RateLimit{Allowed: n <= 2, Limit: 2, Remaining: max(0, 2-int(n)), RetryAfter: 3 * time.Second, ResetAfter: 3 * time.Second}
	}
	a := newAPIWith(t, db, testConfig(), product.Policy{}, limiter)
	for i := range 3 {
		r := a.do(t, http.MethodGet, "/api/v1/me", "")
		if got := r.header.Get("RateLimit-Limit"); got != "2" {
			t.Errorf("%v: RateLimit-Limit %q, want 2", r, got)
		}
		if i < 2 && r.status != http.StatusOK {
			t.Errorf("request %d: %v, want 200", i+1, r)
		}
		if i == 2 {
			wantError(t, r, http.StatusTooManyRequests, "rate_limited")
			if got := r.header.Get("Retry-After"); got != "3" {
				t.Errorf("%v: Retry-After %q, want 3", r, got)
			}
			if got := r.header.Get("RateLimit-Remaining"); got != "0" {
				t.Errorf("%v: RateLimit-Remaining %q, want 0", r, got)
			}
		}
	}
	a.do(t, http.MethodDelete, productURL(uuid.New()), "")
	m := string(a.doOps(t, "/metrics").body)
	for _, want := range []string{`pms_rate_limit_refusals_total{limit="read"} 1`, `pms_rate_limit_refusals_total{limit="write"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s after a refused GET and a refused DELETE", want)
		}
	}
	if writes.Load() != 1 {
		t.Errorf("%d requests counted as writes, want 1 (the DELETE)", writes.Load())
	}
	if r := a.do(t, http.MethodGet, "/health", ""); r.status != http.StatusOK || calls.Load() != 4 {
		t.Errorf("%v after %d limiter calls: /health is not rate limited", r, calls.Load())
	}
}

func TestCreateWithoutUserIDOwnsByCaller(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	me := userOf(t, a, a.key)
	for _, d := range []draft{validDraft(me).without("user_id"), validDraft(me).with("user_id", nil)} {
		if p := a.create(t, d); p.UserID != me {
			t.Errorf("POST %s made a product of %s, want the caller %s", d, p.UserID, me)
		}
	}
}

// TestAccountErrorsHaveTheirOwnAnswers serves what the account service
// returns against PostgreSQL through the error handler: an unknown API key
// is not an unknown product, and account input problems name their fields.
func TestAccountErrorsHaveTheirOwnAnswers(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	email := "taken-" + uuid.NewString() + "@example.test"
	if _, err := a.auth.CreateUser(t.Context(), email, "First", false); err != nil {
		t.Fatalf("CreateUser(%s) error = %v", email, err)
	}
	tests := []struct {
		name, code, message string
		status              int
		fields              []string
		call                func(ctx context.Context) error
	}{
		{"revoke unknown key", "not_found", "API key not found", http.StatusNotFound, nil, func(ctx context.Context) error {
			_, err := a.auth.RevokeKey(ctx, uuid.New())
			return err
		}},
		{"email taken", "conflict", "another user has this email address", http.StatusConflict, nil, func(ctx context.Context) error {
			_, err := a.auth.CreateUser(ctx, strings.ToUpper(email), "Second", false)
			return err
		}},
		{"unknown user", "unknown_user", "user_id names no user", http.StatusUnprocessableEntity, nil, func(ctx context.Context) error {
			_, err := a.auth.User(ctx, uuid.New())
			return err
		}},
		{"invalid user", "validation_failed", "the request has invalid fields", http.StatusBadRequest, []string{"email", "name"}, func(ctx context.Context) error {
			_, err := a.auth.CreateUser(ctx, "not an address", " ", false)
			return err
		}},
	}
	for i, tt := range tests {
		path := "/test/account-error-" + strconv.Itoa(i)
		httpapi.AddErrorRoute(a.server, path, tt.call)
		r := a.do(t, http.MethodGet, path, "")
		if e := wantError(t, r, tt.status, tt.code, tt.fields...); e.Message != tt.message {
			t.Errorf("%s: %v: message %q, want %q", tt.name, r, e.Message, tt.message)
		}
	}
}
