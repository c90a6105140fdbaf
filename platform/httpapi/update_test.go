package httpapi_test

import (
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/postgres/postgrestest"
)

func productURL(id uuid.UUID) string { return "/api/v1/products/" + id.String() }

// patch sends a merge patch with the given If-Match (none when "").
func (a *api) patch(t testing.TB, id uuid.UUID, body, ifMatch string) response {
	t.Helper()
	if ifMatch == "" {
		return a.do(t, http.MethodPatch, productURL(id), body)
	}
	return a.do(t, http.MethodPatch, productURL(id), body, "If-Match", ifMatch)
}

func TestUpdateProductFields(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	tests := []struct {
		name        string
		contentType string
		body        string
		edit        func(p *productOut)
	}{
		{"name", "application/json", `{"product_name":"Desk lamp"}`, func(p *productOut) { p.Name = "Desk lamp" }},
		{"name as merge patch", "application/merge-patch+json", `{"product_name":"Floor lamp"}`, func(p *productOut) { p.Name = "Floor lamp" }},
		{"price", "application/json", `{"product_price":99.9}`, func(p *productOut) { p.Price = "99.90" }},
		{"price to zero", "application/merge-patch+json", `{"product_price":0}`, func(p *productOut) { p.Price = "0.00" }},
		{"price to the maximum", "application/json", `{"product_price":9999999999.99}`, func(p *productOut) { p.Price = "9999999999.99" }},
		{"description", "application/json", `{"product_description":"Brass"}`, func(p *productOut) { p.Description = "Brass" }},
		{"null description clears it", "application/merge-patch+json", `{"product_description":null}`, func(p *productOut) { p.Description = "" }},
		{"several fields", "application/json", `{"product_name":"Lamp 2","product_price":1,"product_description":""}`,
			func(p *productOut) { p.Name, p.Price, p.Description = "Lamp 2", "1.00", "" }},
		{"null images clear them", "application/merge-patch+json", `{"product_images":null}`,
			func(p *productOut) { p.Images, p.States = []string{}, []imageOut{} }},
		{"empty images clear them", "application/json", `{"product_images":[]}`,
			func(p *productOut) { p.Images, p.States = []string{}, []imageOut{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := a.create(t, validDraft(user))
			r := a.do(t, http.MethodPatch, productURL(before.ID), tt.body, "Content-Type", tt.contentType)
			if r.status != http.StatusOK {
				t.Fatalf("%v, want 200", r)
			}
			if tag := r.header.Get("ETag"); tag != `"2"` {
				t.Errorf("%v: ETag %q, want \"2\"", r, tag)
			}
			got := decodeProduct(t, r)
			want := before
			tt.edit(&want)
			want.Version = 2
			if !got.UpdatedAt.After(before.UpdatedAt) || !got.CreatedAt.Equal(before.CreatedAt) {
				t.Errorf("%v: created_at %v → %v, updated_at %v → %v, want created_at kept and updated_at later",
					r, before.CreatedAt, got.CreatedAt, before.UpdatedAt, got.UpdatedAt)
			}
			want.UpdatedAt = got.UpdatedAt
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%v: product (-want +got):\n%s", r, diff)
			}
			if stored := a.get(t, before.ID); !cmp.Equal(stored, got) {
				t.Errorf("GET after %s differs from the PATCH response (-patch +get):\n%s", r.call, cmp.Diff(got, stored))
			}
		})
	}
}

func TestUpdateProductWithoutChange(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	d := validDraft(user)
	tests := []struct{ name, body string }{
		{"empty patch", `{}`},
		{"same name", `{"product_name":` + jsonOf(t, d["product_name"]) + `}`},
		{"same price written differently", `{"product_price":12.500}`},
		{"same images", `{"product_images":` + jsonOf(t, d["product_images"]) + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := a.create(t, d)
			r := a.patch(t, before.ID, tt.body, `"1"`)
			if r.status != http.StatusOK || r.header.Get("ETag") != `"1"` {
				t.Fatalf("%v (ETag %q), want 200 with ETag \"1\"", r, r.header.Get("ETag"))
			}
			if diff := cmp.Diff(before, decodeProduct(t, r)); diff != "" {
				t.Errorf("%v: a patch that changes nothing changed the product (-before +after):\n%s", r, diff)
			}
		})
	}
}

func TestUpdateProductImages(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	tag := uuid.NewString()
	img := func(name string) string { return "https://img.example.com/" + tag + "/" + name + ".png" }
	p := a.create(t, validDraft(user).with("product_images", []string{img("a"), img("b"), img("c")}))

	// Make b look processed, as the worker would leave it.
	db, err := sql.Open("postgres", postgrestest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	const compressed = "https://cdn.example.com/b.webp"
	if _, err := db.ExecContext(t.Context(), `
UPDATE product_images SET status = 'ready', attempts = 1,
    variants = json_build_array(json_build_object('name', 'main', 'url', $3::text, 'width', 640, 'height', 480,
        'bytes', 12345, 'format', 'webp'))
WHERE product_id = $1 AND source_url = $2`, p.ID, img("b"), compressed); err != nil {
		t.Fatalf("mark image ready: %v", err)
	}
	if got := a.get(t, p.ID).Compressed; !cmp.Equal(got, []string{compressed}) {
		t.Fatalf("GET after marking b ready: compressed_product_images %q, want [%q]", got, compressed)
	}

	body := fmt.Sprintf(`{"product_images":[%q,%q,%q]}`, img("c"), img("b"), img("d"))
	r := a.patch(t, p.ID, body, `"1"`)
	if r.status != http.StatusOK {
		t.Fatalf("%v, want 200", r)
	}
	got := decodeProduct(t, r)
	want := []imageOut{
		{Position: 0, SourceURL: img("c"), Status: "pending", Variants: []variantOut{}},
		{Position: 1, SourceURL: img("b"), Status: "ready", Attempts: 1, CompressedURL: compressed, Width: 640, Height: 480, Bytes: 12345, Format: "webp",
			Variants: []variantOut{{Name: "main", URL: compressed, Width: 640, Height: 480, Bytes: 12345, Format: "webp"}},
			Srcset:   map[string]string{"webp": compressed + " 640w"}},
		{Position: 2, SourceURL: img("d"), Status: "pending", Variants: []variantOut{}},
	}
	if diff := cmp.Diff(want, got.States); diff != "" {
		t.Errorf("%v: images (-want +got):\n%s", r, diff)
	}
	if diff := cmp.Diff([]string{img("c"), img("b"), img("d")}, got.Images); diff != "" {
		t.Errorf("%v: product_images (-want +got):\n%s", r, diff)
	}
	if diff := cmp.Diff([]string{compressed}, got.Compressed); diff != "" {
		t.Errorf("%v: compressed_product_images (-want +got):\n%s", r, diff)
	}
	if got.Version != 2 || r.header.Get("ETag") != `"2"` {
		t.Errorf("%v: version %d, ETag %q, want 2", r, got.Version, r.header.Get("ETag"))
	}
	if stored := a.get(t, p.ID); !cmp.Equal(stored, got) {
		t.Errorf("GET after %s differs from the PATCH response (-patch +get):\n%s", r.call, cmp.Diff(got, stored))
	}
	var rows int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM product_images WHERE product_id = $1`, p.ID).Scan(&rows); err != nil || rows != 3 {
		t.Errorf("image rows of the product after the patch: %d (%v), want 3", rows, err)
	}

	// Swapping two kept images moves both without losing state.
	r = a.patch(t, p.ID, fmt.Sprintf(`{"product_images":[%q,%q,%q]}`, img("b"), img("c"), img("d")), `"2"`)
	if r.status != http.StatusOK {
		t.Fatalf("%v, want 200", r)
	}
	swapped := decodeProduct(t, r)
	if s := swapped.States; len(s) != 3 || s[0].SourceURL != img("b") || s[0].Status != "ready" || s[1].SourceURL != img("c") || s[0].Position != 0 || s[1].Position != 1 {
		t.Errorf("%v: images %+v, want b (ready) then c then d", r, s)
	}
}

func TestUpdateProductRejectsBadInput(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	p := a.create(t, validDraft(user))
	tooMany := make([]string, 21)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("https://img.example.com/%d.png", i)
	}
	tests := []struct {
		name   string
		body   string
		fields []string
	}{
		{"null name", `{"product_name":null}`, []string{"product_name"}},
		{"null price", `{"product_price":null}`, []string{"product_price"}},
		{"empty name", `{"product_name":""}`, []string{"product_name"}},
		{"whitespace name", `{"product_name":"   "}`, []string{"product_name"}},
		{"name of 256", `{"product_name":"` + strings.Repeat("é", 256) + `"}`, []string{"product_name"}},
		{"name with NUL", `{"product_name":"a\u0000"}`, []string{"product_name"}},
		{"name as number", `{"product_name":1}`, []string{"product_name"}},
		{"description as number", `{"product_description":1}`, []string{"product_description"}},
		{"description too long", `{"product_description":"` + strings.Repeat("d", 10001) + `"}`, []string{"product_description"}},
		{"price as string", `{"product_price":"1"}`, []string{"product_price"}},
		{"negative price", `{"product_price":-0.01}`, []string{"product_price"}},
		{"price of 10^10", `{"product_price":10000000000}`, []string{"product_price"}},
		{"price with 3 decimals", `{"product_price":1.234}`, []string{"product_price"}},
		{"price in exponent form", `{"product_price":1e3}`, []string{"product_price"}},
		{"images as string", `{"product_images":"https://img.example.com/a.png"}`, []string{"product_images"}},
		{"21 images", `{"product_images":` + jsonOf(t, tooMany) + `}`, []string{"product_images"}},
		{"ftp image", `{"product_images":["ftp://img.example.com/a.png"]}`, []string{"product_images[0]"}},
		{"relative image", `{"product_images":["a.png"]}`, []string{"product_images[0]"}},
		{"duplicate image", `{"product_images":["https://img.example.com/a.png","https://img.example.com/a.png"]}`, []string{"product_images[1]"}},
		{"user_id is not patchable", `{"user_id":"` + uuid.NewString() + `"}`, []string{"user_id"}},
		{"unknown field", `{"colour":"red"}`, []string{"colour"}},
		{"several problems", `{"product_name":null,"product_price":"x","colour":1}`, []string{"product_name", "product_price", "colour"}},
		{"malformed JSON", `{"product_name":`, []string{"body"}},
		{"two JSON objects", `{}{}`, []string{"body"}},
		{"JSON array", `[{"product_name":"x"}]`, []string{"body"}},
		{"JSON null", `null`, []string{"body"}},
	}
	// The group returns when its parallel subtests are done.
	t.Run("rejected", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				r := a.patch(t, p.ID, tt.body, "")
				wantError(t, r, http.StatusBadRequest, "validation_failed", tt.fields...)
			})
		}
		t.Run("text/plain", func(t *testing.T) {
			t.Parallel()
			r := a.do(t, http.MethodPatch, productURL(p.ID), `{"product_name":"x"}`, "Content-Type", "text/plain")
			wantError(t, r, http.StatusUnsupportedMediaType, "unsupported_media_type")
		})
		t.Run("no content type", func(t *testing.T) {
			t.Parallel()
			r := a.do(t, http.MethodPatch, productURL(p.ID), `{"product_name":"x"}`, "Content-Type", omit)
			wantError(t, r, http.StatusUnsupportedMediaType, "unsupported_media_type")
		})
		t.Run("body over 1 MiB", func(t *testing.T) {
			t.Parallel()
			doc := padTo(t, `{"product_name":"x"}`, 1<<20+1)
			r := a.send(t, http.MethodPatch, productURL(p.ID), newChunked(doc), "(1 MiB + 1, chunked)")
			wantError(t, r, http.StatusRequestEntityTooLarge, "payload_too_large")
		})
	})
	if got := a.get(t, p.ID); !cmp.Equal(got, p) {
		t.Errorf("product changed by rejected patches (-created +now):\n%s", cmp.Diff(p, got))
	}
}

func TestUpdateProductIfMatch(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)

	t.Run("current then stale", func(t *testing.T) {
		t.Parallel()
		p := a.create(t, validDraft(user))
		r := a.patch(t, p.ID, `{"product_name":"First"}`, `"1"`)
		if r.status != http.StatusOK || r.header.Get("ETag") != `"2"` {
			t.Fatalf("%v (ETag %q), want 200 with ETag \"2\"", r, r.header.Get("ETag"))
		}
		wantError(t, a.patch(t, p.ID, `{"product_name":"Second"}`, `"1"`), http.StatusPreconditionFailed, "version_mismatch")
		if got := a.get(t, p.ID); got.Name != "First" || got.Version != 2 {
			t.Errorf("GET after a stale PATCH: name %q version %d, want First and 2", got.Name, got.Version)
		}
		r = a.patch(t, p.ID, `{"product_name":"Third"}`, `"2"`)
		if r.status != http.StatusOK || r.header.Get("ETag") != `"3"` {
			t.Errorf("%v (ETag %q), want 200 with ETag \"3\"", r, r.header.Get("ETag"))
		}
	})

	matches := []struct {
		ifMatch string
		status  int
	}{
		{`*`, http.StatusOK},
		{`"1"`, http.StatusOK},
		{` "1" `, http.StatusOK},
		{`"2"`, http.StatusPreconditionFailed},
		{`"0"`, http.StatusPreconditionFailed},
		{`"-1"`, http.StatusPreconditionFailed},
		{`W/"1"`, http.StatusPreconditionFailed}, // weak tags never match If-Match
		{`1`, http.StatusPreconditionFailed},
		{`"abc"`, http.StatusPreconditionFailed},
		{`""`, http.StatusPreconditionFailed},
		{`"99999999999999999999"`, http.StatusPreconditionFailed},
	}
	for _, tt := range matches {
		t.Run("If-Match "+tt.ifMatch, func(t *testing.T) {
			t.Parallel()
			p := a.create(t, validDraft(user))
			r := a.patch(t, p.ID, `{"product_name":"Changed"}`, tt.ifMatch)
			if wantStatus(t, r, tt.status, "version_mismatch") {
				return
			}
			if got := a.get(t, p.ID); got.Version != 1 {
				t.Errorf("GET after %v: version %d, want 1", r, got.Version)
			}
		})
	}
}

func TestUpdateProductConcurrentIfMatch(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	p := a.create(t, validDraft(a.newUser(t)))
	const n = 10
	start := make(chan struct{})
	rs := make([]response, n)
	var wg sync.WaitGroup
	for i := range rs {
		wg.Go(func() {
			<-start
			rs[i] = a.patch(t, p.ID, fmt.Sprintf(`{"product_name":"Writer %d"}`, i), `"1"`)
		})
	}
	close(start)
	wg.Wait()

	winner := ""
	for _, r := range rs {
		switch r.status {
		case http.StatusOK:
			if winner != "" {
				t.Errorf("%v: a second 200 for If-Match \"1\" (first: %s)", r, winner)
			}
			winner = decodeProduct(t, r).Name
		default:
			wantError(t, r, http.StatusPreconditionFailed, "version_mismatch")
		}
	}
	if winner == "" {
		t.Fatalf("%d concurrent PATCHes with If-Match \"1\": no 200, want exactly one", n)
	}
	if got := a.get(t, p.ID); got.Name != winner || got.Version != 2 {
		t.Errorf("GET after the concurrent PATCHes: name %q version %d, want %q and 2", got.Name, got.Version, winner)
	}
}

func TestUpdateProductNotFound(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	deleted := a.create(t, validDraft(a.newUser(t)))
	if r := a.do(t, http.MethodDelete, productURL(deleted.ID), ""); r.status != http.StatusNoContent {
		t.Fatalf("%v, want 204", r)
	}
	tests := []struct {
		name, path, ifMatch string
		status              int
		code                string
		fields              []string
	}{
		{"unknown id", productURL(uuid.New()), "", http.StatusNotFound, "not_found", nil},
		{"unknown id with If-Match", productURL(uuid.New()), `"1"`, http.StatusNotFound, "not_found", nil},
		{"deleted", productURL(deleted.ID), "", http.StatusNotFound, "not_found", nil},
		{"deleted with If-Match", productURL(deleted.ID), `"1"`, http.StatusNotFound, "not_found", nil},
		{"malformed id", "/api/v1/products/123", "", http.StatusBadRequest, "validation_failed", []string{"id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			header := []string{}
			if tt.ifMatch != "" {
				header = append(header, "If-Match", tt.ifMatch)
			}
			r := a.do(t, http.MethodPatch, tt.path, `{"product_name":"x"}`, header...)
			wantError(t, r, tt.status, tt.code, tt.fields...)
		})
	}
}

func TestDeleteProduct(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)

	t.Run("then gone", func(t *testing.T) {
		t.Parallel()
		p := a.create(t, validDraft(user))
		r := a.do(t, http.MethodDelete, productURL(p.ID), "")
		if r.status != http.StatusNoContent || len(r.body) != 0 {
			t.Fatalf("%v, want 204 with no body", r)
		}
		wantError(t, a.do(t, http.MethodGet, productURL(p.ID), ""), http.StatusNotFound, "not_found")
		wantError(t, a.do(t, http.MethodDelete, productURL(p.ID), ""), http.StatusNotFound, "not_found")
		wantError(t, a.patch(t, p.ID, `{"product_name":"x"}`, ""), http.StatusNotFound, "not_found")
		page := decodePage(t, a.do(t, http.MethodGet, listPath("user_id", user.String()), ""))
		for _, item := range page.Items {
			if item.ID == p.ID {
				t.Errorf("GET products of the user lists deleted product %s", p.ID)
			}
		}
	})
	t.Run("If-Match current", func(t *testing.T) {
		t.Parallel()
		p := a.create(t, validDraft(user))
		if r := a.do(t, http.MethodDelete, productURL(p.ID), "", "If-Match", `"1"`); r.status != http.StatusNoContent {
			t.Errorf("%v, want 204", r)
		}
	})
	t.Run("If-Match stale", func(t *testing.T) {
		t.Parallel()
		p := a.create(t, validDraft(user))
		if r := a.patch(t, p.ID, `{"product_name":"Renamed"}`, ""); r.status != http.StatusOK {
			t.Fatalf("%v, want 200", r)
		}
		wantError(t, a.do(t, http.MethodDelete, productURL(p.ID), "", "If-Match", `"1"`), http.StatusPreconditionFailed, "version_mismatch")
		a.get(t, p.ID) // still there
		if r := a.do(t, http.MethodDelete, productURL(p.ID), "", "If-Match", `"2"`); r.status != http.StatusNoContent {
			t.Errorf("%v, want 204", r)
		}
	})
	t.Run("If-Match malformed", func(t *testing.T) {
		t.Parallel()
		p := a.create(t, validDraft(user))
		wantError(t, a.do(t, http.MethodDelete, productURL(p.ID), "", "If-Match", `W/"1"`), http.StatusPreconditionFailed, "version_mismatch")
		a.get(t, p.ID)
	})
	t.Run("unknown id", func(t *testing.T) {
		t.Parallel()
		wantError(t, a.do(t, http.MethodDelete, productURL(uuid.New()), ""), http.StatusNotFound, "not_found")
		wantError(t, a.do(t, http.MethodDelete, productURL(uuid.New()), "", "If-Match", `"1"`), http.StatusNotFound, "not_found")
	})
	t.Run("malformed id", func(t *testing.T) {
		t.Parallel()
		wantError(t, a.do(t, http.MethodDelete, "/api/v1/products/nope", ""), http.StatusBadRequest, "validation_failed", "id")
	})
	t.Run("concurrent", func(t *testing.T) {
		t.Parallel()
		p := a.create(t, validDraft(user))
		const n = 5
		rs := make([]response, n)
		var wg sync.WaitGroup
		for i := range rs {
			wg.Go(func() { rs[i] = a.do(t, http.MethodDelete, productURL(p.ID), "") })
		}
		wg.Wait()
		deleted := 0
		for _, r := range rs {
			if r.status == http.StatusNoContent {
				deleted++
			} else {
				wantError(t, r, http.StatusNotFound, "not_found")
			}
		}
		if deleted != 1 {
			t.Errorf("%d concurrent DELETEs of one product: %d answered 204, want 1", n, deleted)
		}
	})
}
