package httpapi_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product/account"
)

// TestRetryImage: the owner's POST .../images/{position}/retry makes a
// failed image pending again, with its task in the outbox in the same
// transaction; the old image's task is then stale. An image that is not
// failed is a 409, another user's product and a position without an image
// a 404, a position that is not one a 400.
func TestRetryImage(t *testing.T) {
	t.Parallel()
	dbURL := postgrestest.Private(t)
	db, err := postgres.Open(postgrestest.Config(t, dbURL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	a := newAPIOn(t, db, testConfig())
	user := a.newUser(t)
	created := a.create(t, validDraft(user).with("product_images", []string{"https://img.example.com/a.png", "https://img.example.com/b.png"}))
	p, err := a.svc.Get(t.Context(), account.Caller{UserID: user}, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	results := postgres.NewImageResults(db)
	old := imaging.Task{ProductID: p.ID, ImageID: p.Images[1].ID, SourceURL: p.Images[1].SourceURL}
	if err := results.Failed(t.Context(), old, 3, "source_not_found"); err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/products/" + p.ID.String() + "/images/"
	pendingBefore := countOutbox(t, dbURL, p.ID.String())

	if r := a.do(t, http.MethodPost, path+"0/retry", ""); r.status != http.StatusConflict || errorCode(t, r) != "image_not_failed" {
		t.Errorf("%v, want 409 image_not_failed for a pending image", r)
	}
	other := a.newKey(t, false)
	if r := a.do(t, http.MethodPost, path+"1/retry", "", "Authorization", "Bearer "+other); r.status != http.StatusNotFound {
		t.Errorf("%v as another user, want 404", r)
	}
	for _, pos := range []string{"2", "19"} {
		if r := a.do(t, http.MethodPost, path+pos+"/retry", ""); r.status != http.StatusNotFound {
			t.Errorf("%v, want 404 for a position without an image", r)
		}
	}
	for _, pos := range []string{"x", "-1", "20"} {
		if r := a.do(t, http.MethodPost, path+pos+"/retry", ""); r.status != http.StatusBadRequest {
			t.Errorf("%v, want 400", r)
		}
	}
	if n := countOutbox(t, dbURL, p.ID.String()); n != pendingBefore {
		t.Fatalf("refused retries wrote %d outbox rows", n-pendingBefore)
	}

	r := a.do(t, http.MethodPost, path+"1/retry", "")
	if r.status != http.StatusAccepted {
		t.Fatalf("%v, want 202", r)
	}
	got := decodeProduct(t, r)
	if im := got.States[1]; im.Status != "pending" || im.Attempts != 0 || im.ErrorCode != "" || im.SourceURL != old.SourceURL {
		t.Errorf("%v: image 1 = %+v, want pending again with no attempts or error", r, im)
	}
	if got.Version != created.Version+2 || r.header.Get("ETag") != fmt.Sprintf("%q", strconv.Itoa(got.Version)) {
		t.Errorf("%v: version %d, ETag %q; want %d", r, got.Version, r.header.Get("ETag"), created.Version+2)
	}
	if n := countOutbox(t, dbURL, p.ID.String()); n != pendingBefore+1 {
		t.Errorf("retry wrote %d outbox rows, want the one task", n-pendingBefore)
	}
	if _, err := results.Begin(t.Context(), old); err != imaging.ErrStale {
		t.Errorf("Begin(the old image's task) = %v, want ErrStale", err)
	}
	if r := a.do(t, http.MethodPost, path+"1/retry", ""); r.status != http.StatusConflict {
		t.Errorf("%v, want 409 for the image retried already", r)
	}
}

// countOutbox counts the outbox rows keyed by the product (its tasks).
func countOutbox(t *testing.T, dbURL, productID string) int {
	t.Helper()
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM outbox WHERE key = $1`, productID).Scan(&n); err != nil {
		t.Fatalf("count outbox rows: %v", err)
	}
	return n
}

// errorCode is the code of the error envelope in r.
func errorCode(t *testing.T, r response) string {
	t.Helper()
	var e struct {
		Error apiError `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("%v: not an error envelope: %v", r, err)
	}
	return e.Error.Code
}
