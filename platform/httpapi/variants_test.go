package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product/account"
)

// TestProductVariants: once the worker records an image's variants, GET and
// the list show every one under the image, in preset order; the image's own
// compressed_url and sizes and compressed_product_images stay the main
// variant's; an image that is not ready has an empty list, not null.
func TestProductVariants(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	a := newAPIOn(t, db, testConfig())
	user := a.newUser(t)
	created := a.create(t, validDraft(user).with("product_images", []string{"https://img.example.com/a.png", "https://img.example.com/b.jpg"}))
	p, err := a.svc.Get(t.Context(), account.Caller{UserID: user}, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	results := postgres.NewImageResults(db)
	task := imaging.Task{ProductID: p.ID, ImageID: p.Images[0].ID, SourceURL: p.Images[0].SourceURL}
	if _, err := results.Begin(t.Context(), task); err != nil {
		t.Fatalf("Begin: %v", err)
	}
	res := imaging.Result{Variants: []imaging.Variant{
		{Name: "main", URL: "https://cdn.example.com/products/a.webp", Width: 1600, Height: 1200, Bytes: 81234, Format: "webp"},
		{Name: "thumbnail", URL: "https://cdn.example.com/products/b.webp", Width: 320, Height: 240, Bytes: 9876, Format: "webp"},
	}, Source: imaging.SourceFacts{Width: 3000, Height: 2250, Format: "png", Bytes: 1_234_567, ThumbHash: "1QcSHQRnh493V4dIh4eXh1h4kJUI", Color: "#5a7d3c"}}
	if err := results.Ready(t.Context(), task, res); err != nil {
		t.Fatalf("Ready: %v", err)
	}

	r := a.do(t, http.MethodGet, "/api/v1/products/"+p.ID.String(), "")
	if r.status != http.StatusOK {
		t.Fatalf("%v, want 200", r)
	}
	got := decodeProduct(t, r)
	want := []imageOut{
		{Position: 0, SourceURL: "https://img.example.com/a.png", Status: "ready", Attempts: 1,
			CompressedURL: "https://cdn.example.com/products/a.webp", Width: 1600, Height: 1200, Bytes: 81234, Format: "webp",
			Variants: []variantOut{
				{Name: "main", URL: "https://cdn.example.com/products/a.webp", Width: 1600, Height: 1200, Bytes: 81234, Format: "webp"},
				{Name: "thumbnail", URL: "https://cdn.example.com/products/b.webp", Width: 320, Height: 240, Bytes: 9876, Format: "webp"},
			},
			Srcset: map[string]string{"webp": "https://cdn.example.com/products/b.webp 320w, https://cdn.example.com/products/a.webp 1600w"},
			Source: &sourceOut{Width: 3000, Height: 2250, Format: "png", Bytes: 1_234_567}, ThumbHash: "1QcSHQRnh493V4dIh4eXh1h4kJUI", DominantColor: "#5a7d3c"},
		{Position: 1, SourceURL: "https://img.example.com/b.jpg", Status: "pending", Variants: []variantOut{}},
	}
	if diff := cmp.Diff(want, got.States); diff != "" {
		t.Errorf("%v: images (-want +got):\n%s", r, diff)
	}
	if diff := cmp.Diff([]string{"https://cdn.example.com/products/a.webp"}, got.Compressed); diff != "" {
		t.Errorf("%v: compressed_product_images (-want +got):\n%s", r, diff)
	}
	if got.Version != 3 || r.header.Get("ETag") != `"3"` {
		t.Errorf("%v: version %d, ETag %q; want 3 after the attempt and its result", r, got.Version, r.header.Get("ETag"))
	}
	var raw struct {
		Images []map[string]json.RawMessage `json:"images"`
	}
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	if v := string(raw.Images[1]["variants"]); v != "[]" {
		t.Errorf("%v: variants of the pending image = %s, want []", r, v)
	}

	list := a.do(t, http.MethodGet, "/api/v1/products?user_id="+user.String(), "")
	if list.status != http.StatusOK {
		t.Fatalf("%v, want 200", list)
	}
	var page struct {
		Items []productOut `json:"items"`
	}
	if err := json.Unmarshal(list.body, &page); err != nil || len(page.Items) != 1 {
		t.Fatalf("%v: items %+v, %v; want the one product", list, page.Items, err)
	}
	if diff := cmp.Diff(want, page.Items[0].States); diff != "" {
		t.Errorf("%v: images in the list (-want +got):\n%s", list, diff)
	}
}
