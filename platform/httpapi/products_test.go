package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

func TestCreateProduct(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	d := validDraft(user)
	images := d["product_images"].([]string)

	r := a.do(t, http.MethodPost, "/api/v1/products", d.String())
	if r.status != http.StatusCreated {
		t.Fatalf("%v, want 201", r)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &keys); err != nil {
		t.Fatalf("%v: %v", r, err)
	}
	for _, k := range []string{"user_id", "product_name", "product_description", "product_price", "product_images", "compressed_product_images"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("%v: no key %q", r, k)
		}
	}
	if got := string(keys["compressed_product_images"]); got != "[]" {
		t.Errorf("%v: compressed_product_images = %s, want []", r, got)
	}
	got := decodeProduct(t, r)
	if loc, want := r.header.Get("Location"), "/api/v1/products/"+got.ID.String(); loc != want {
		t.Errorf("%v: Location %q, want %q", r, loc, want)
	}
	if tag := r.header.Get("ETag"); tag != `"1"` {
		t.Errorf("%v: ETag %q, want %q", r, tag, `"1"`)
	}
	if got.ID == uuid.Nil || got.ID.Version() != 7 {
		t.Errorf("%v: id %s, want a UUIDv7", r, got.ID)
	}
	if got.CreatedAt.IsZero() || !got.UpdatedAt.Equal(got.CreatedAt) {
		t.Errorf("%v: created_at %v, updated_at %v, want equal and set", r, got.CreatedAt, got.UpdatedAt)
	}
	want := productOut{
		ID: got.ID, UserID: user, Name: d["product_name"].(string), Description: "A reading lamp", Price: "12.50",
		Images: images, Compressed: []string{}, Version: 1, CreatedAt: got.CreatedAt, UpdatedAt: got.UpdatedAt,
	}
	for i, u := range images {
		want.States = append(want.States, imageOut{Position: i, SourceURL: u, Status: "pending", Variants: []variantOut{}})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%v: product (-want +got):\n%s", r, diff)
	}

	if stored := a.get(t, got.ID); !cmp.Equal(stored, got) {
		t.Errorf("GET after POST differs from the POST response (-post +get):\n%s", cmp.Diff(got, stored))
	}
}

func TestCreateProductOptionalFields(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	tests := []struct {
		name string
		body draft
	}{
		{"no description or images", validDraft(user).without("product_description").without("product_images")},
		{"empty images", validDraft(user).without("product_description").with("product_images", []string{})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := a.do(t, http.MethodPost, "/api/v1/products", tt.body.String())
			if r.status != http.StatusCreated {
				t.Fatalf("%v, want 201", r)
			}
			p := decodeProduct(t, r)
			if p.Description != "" || len(p.Images) != 0 {
				t.Errorf("%v: description %q, images %q, want empty", r, p.Description, p.Images)
			}
		})
	}
}

func TestCreateProductPriceRoundTrip(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	tests := []struct{ sent, want string }{
		{"12.5", "12.50"},
		{"12.50", "12.50"},
		{"1.230", "1.23"},
		{"0", "0.00"},
		{"0.0", "0.00"},
		{"0.01", "0.01"},
		{"100", "100.00"},
		{"9999999999.99", "9999999999.99"},
		{"9999999999.990", "9999999999.99"},
		{"123456789.1", "123456789.10"},
	}
	for _, tt := range tests {
		t.Run(tt.sent, func(t *testing.T) {
			t.Parallel()
			created := a.create(t, validDraft(user).with("product_price", raw(tt.sent)))
			if created.Price != tt.want {
				t.Errorf("POST product_price %s: response price %s, want %s", tt.sent, created.Price, tt.want)
			}
			if got := a.get(t, created.ID).Price; got != tt.want {
				t.Errorf("POST product_price %s, then GET: price %s, want %s", tt.sent, got, tt.want)
			}
		})
	}
}

func TestCreateProductNameLength(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	tests := []struct {
		name     string
		value    string
		accepted bool
	}{
		{"255 ascii", strings.Repeat("n", 255), true},
		{"256 ascii", strings.Repeat("n", 256), false},
		{"255 two-byte runes", strings.Repeat("é", 255), true},
		{"256 two-byte runes", strings.Repeat("é", 256), false},
		{"255 four-byte runes", strings.Repeat("😀", 255), true},
		{"one rune", "x", true},
		{"surrounding spaces kept", "  spaced  ", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := a.do(t, http.MethodPost, "/api/v1/products", validDraft(user).with("product_name", tt.value).String())
			if !tt.accepted {
				wantError(t, r, http.StatusBadRequest, "validation_failed", "product_name")
				return
			}
			if r.status != http.StatusCreated {
				t.Fatalf("%v, want 201", r)
			}
			if got := decodeProduct(t, r).Name; got != tt.value {
				t.Errorf("%v: product_name %q, want %q", r, got, tt.value)
			}
		})
	}
}

func TestCreateProductImages(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	urls := func(n int) []string {
		tag := uuid.NewString()
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("https://img.example.com/%s/%02d.png", tag, i)
		}
		return out
	}
	long := "https://img.example.com/" + strings.Repeat("a", 2048-len("https://img.example.com/"))

	t.Run("20 images in order", func(t *testing.T) {
		t.Parallel()
		want := urls(20)
		p := a.create(t, validDraft(user).with("product_images", want))
		if diff := cmp.Diff(want, p.Images); diff != "" {
			t.Errorf("POST 20 images: product_images (-want +got):\n%s", diff)
		}
		for i, im := range p.States {
			if im.Position != i || im.SourceURL != want[i] || im.Status != "pending" {
				t.Errorf("POST 20 images: images[%d] = %+v, want position %d, %s, pending", i, im, i, want[i])
			}
		}
	})
	t.Run("2048 character URL", func(t *testing.T) {
		t.Parallel()
		p := a.create(t, validDraft(user).with("product_images", []string{long}))
		if len(p.Images) != 1 || p.Images[0] != long {
			t.Errorf("POST one 2048-character URL: product_images has %d URLs, want it back", len(p.Images))
		}
	})
	t.Run("same URL on two products", func(t *testing.T) {
		t.Parallel()
		shared := urls(1)
		a.create(t, validDraft(user).with("product_images", shared))
		a.create(t, validDraft(user).with("product_images", shared))
	})
}

func TestCreateProductRejectsBadInput(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	valid := validDraft(user)
	tooMany := make([]string, 21)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("https://img.example.com/%d.png", i)
	}
	long := "https://img.example.com/" + strings.Repeat("a", 2049-len("https://img.example.com/"))
	tests := []struct {
		name   string
		body   string
		fields []string
	}{
		{"unknown field", valid.with("colour", "red").String(), []string{"colour"}},
		{"id is not writable", valid.with("id", uuid.NewString()).String(), []string{"id"}},
		{"price as string", valid.with("product_price", "12.50").String(), []string{"product_price"}},
		{"price as bool", valid.with("product_price", true).String(), []string{"product_price"}},
		{"price as object", valid.with("product_price", map[string]int{"amount": 1}).String(), []string{"product_price"}},
		{"images as string", valid.with("product_images", "https://img.example.com/a.png").String(), []string{"product_images"}},
		{"null description", valid.with("product_description", nil).String(), []string{"product_description"}},
		{"null images", valid.with("product_images", nil).String(), []string{"product_images"}},
		{"images holding a number", valid.with("product_images", []any{"https://img.example.com/a.png", 1}).String(), []string{"product_images"}},
		{"name as number", valid.with("product_name", 42).String(), []string{"product_name"}},
		{"description as array", valid.with("product_description", []string{"a"}).String(), []string{"product_description"}},
		{"user_id not a uuid", valid.with("user_id", "not-a-uuid").String(), []string{"user_id"}},
		{"user_id as number", valid.with("user_id", 7).String(), []string{"user_id"}},
		{"user_id nil uuid", valid.with("user_id", uuid.Nil.String()).String(), []string{"user_id"}},
		{"missing name", valid.without("product_name").String(), []string{"product_name"}},
		{"missing price", valid.without("product_price").String(), []string{"product_price"}},
		{"null name", valid.with("product_name", nil).String(), []string{"product_name"}},
		{"null price", valid.with("product_price", nil).String(), []string{"product_price"}},
		{"empty object", `{}`, []string{"product_name", "product_price"}},
		{"empty name", valid.with("product_name", "").String(), []string{"product_name"}},
		{"whitespace name", valid.with("product_name", " \t\n ").String(), []string{"product_name"}},
		{"name with NUL", valid.with("product_name", "lamp\x00").String(), []string{"product_name"}},
		{"description with NUL", valid.with("product_description", "a\x00b").String(), []string{"product_description"}},
		{"description of 10001", valid.with("product_description", strings.Repeat("d", 10001)).String(), []string{"product_description"}},
		{"negative price", valid.with("product_price", raw("-1")).String(), []string{"product_price"}},
		{"negative cent", valid.with("product_price", raw("-0.01")).String(), []string{"product_price"}},
		{"price of 10^10", valid.with("product_price", raw("10000000000")).String(), []string{"product_price"}},
		{"price of 10^10 with cents", valid.with("product_price", raw("10000000000.00")).String(), []string{"product_price"}},
		{"price of 10^20", valid.with("product_price", raw("100000000000000000000")).String(), []string{"product_price"}},
		{"price with 3 decimals", valid.with("product_price", raw("1.234")).String(), []string{"product_price"}},
		{"price just under the maximum with 3 decimals", valid.with("product_price", raw("9999999999.999")).String(), []string{"product_price"}},
		{"price in exponent form", valid.with("product_price", raw("1e3")).String(), []string{"product_price"}},
		{"price in upper exponent form", valid.with("product_price", raw("1.5E2")).String(), []string{"product_price"}},
		{"21 images", valid.with("product_images", tooMany).String(), []string{"product_images"}},
		{"ftp URL", valid.with("product_images", []string{"ftp://img.example.com/a.png"}).String(), []string{"product_images[0]"}},
		{"javascript URL", valid.with("product_images", []string{"javascript:alert(1)"}).String(), []string{"product_images[0]"}},
		{"data URL", valid.with("product_images", []string{"data:image/png;base64,AAAA"}).String(), []string{"product_images[0]"}},
		{"relative URL", valid.with("product_images", []string{"/images/a.png"}).String(), []string{"product_images[0]"}},
		{"scheme-relative URL", valid.with("product_images", []string{"//img.example.com/a.png"}).String(), []string{"product_images[0]"}},
		{"URL without host", valid.with("product_images", []string{"https:///a.png"}).String(), []string{"product_images[0]"}},
		{"URL with credentials", valid.with("product_images", []string{"https://u:p@img.example.com/a.png"}).String(), []string{"product_images[0]"}},
		{"empty URL", valid.with("product_images", []string{""}).String(), []string{"product_images[0]"}},
		{"URL of 2049 characters", valid.with("product_images", []string{long}).String(), []string{"product_images[0]"}},
		{"second URL bad", valid.with("product_images", []string{"https://img.example.com/a.png", "ftp://x/b.png"}).String(), []string{"product_images[1]"}},
		{"duplicate URL", valid.with("product_images", []string{"https://img.example.com/a.png", "https://img.example.com/b.png", "https://img.example.com/a.png"}).String(), []string{"product_images[2]"}},
		{"every problem at once", `{"user_id":"x","product_name":"","product_price":-1,"product_images":["ftp://a"],"extra":1}`,
			[]string{"extra", "user_id", "product_name", "product_price", "product_images[0]"}},
		{"malformed JSON", `{"user_id": "` + user.String() + `",`, []string{"body"}},
		{"two JSON objects", valid.String() + valid.String(), []string{"body"}},
		{"trailing garbage", valid.String() + " x", []string{"body"}},
		{"JSON array", "[" + valid.String() + "]", []string{"body"}},
		{"JSON string", `"product"`, []string{"body"}},
		{"JSON null", `null`, []string{"body"}},
		{"only whitespace", "  \n", []string{"body"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := a.do(t, http.MethodPost, "/api/v1/products", tt.body)
			wantError(t, r, http.StatusBadRequest, "validation_failed", tt.fields...)
		})
	}

	t.Run("empty body", func(t *testing.T) {
		t.Parallel()
		r := a.send(t, http.MethodPost, "/api/v1/products", strings.NewReader(""), "(empty)")
		wantError(t, r, http.StatusBadRequest, "validation_failed", "body")
	})
	t.Run("unknown user", func(t *testing.T) {
		t.Parallel()
		r := a.do(t, http.MethodPost, "/api/v1/products", validDraft(uuid.New()).String())
		wantError(t, r, http.StatusUnprocessableEntity, "unknown_user")
	})
	t.Run("Idempotency-Key too long", func(t *testing.T) {
		t.Parallel()
		r := a.do(t, http.MethodPost, "/api/v1/products", valid.String(), "Idempotency-Key", strings.Repeat("k", 256))
		wantError(t, r, http.StatusBadRequest, "validation_failed", "Idempotency-Key")
	})
	t.Run("Idempotency-Key empty", func(t *testing.T) {
		t.Parallel()
		r := a.do(t, http.MethodPost, "/api/v1/products", valid.String(), "Idempotency-Key", "")
		wantError(t, r, http.StatusBadRequest, "validation_failed", "Idempotency-Key")
	})
}

func TestCreateProductMediaType(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	tests := []struct {
		contentType string
		status      int
	}{
		{"application/json", http.StatusCreated},
		{"application/json; charset=utf-8", http.StatusCreated},
		{"Application/JSON", http.StatusCreated},
		{"text/plain", http.StatusUnsupportedMediaType},
		{"application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"multipart/form-data; boundary=x", http.StatusUnsupportedMediaType},
		{"application/jsonx", http.StatusUnsupportedMediaType},
		{"json", http.StatusUnsupportedMediaType},
		{omit, http.StatusUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.contentType, "/", "_"), func(t *testing.T) {
			t.Parallel()
			r := a.do(t, http.MethodPost, "/api/v1/products", validDraft(user).String(), "Content-Type", tt.contentType)
			wantStatus(t, r, tt.status, "unsupported_media_type")
		})
	}
}

func TestCreateProductBodyLimit(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	const limit = 1 << 20
	tests := []struct {
		name    string
		size    int
		chunked bool
		status  int
	}{
		{"exactly 1 MiB", limit, false, http.StatusCreated},
		{"exactly 1 MiB chunked", limit, true, http.StatusCreated},
		{"1 MiB and a byte", limit + 1, false, http.StatusRequestEntityTooLarge},
		{"1 MiB and a byte chunked", limit + 1, true, http.StatusRequestEntityTooLarge},
		{"4 MiB", 4 * limit, false, http.StatusRequestEntityTooLarge},
		{"4 MiB chunked", 4 * limit, true, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := padTo(t, validDraft(user).String(), tt.size)
			var rd = newChunked(doc)
			if !tt.chunked {
				rd = strings.NewReader(doc)
			}
			r := a.send(t, http.MethodPost, "/api/v1/products", rd, fmt.Sprintf("(%d bytes, chunked %t)", tt.size, tt.chunked))
			wantStatus(t, r, tt.status, "payload_too_large")
		})
	}
}

func TestCreateProductIdempotency(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	key := "key-" + uuid.NewString()
	d := validDraft(user)
	post := func(d draft, key string) response {
		return a.do(t, http.MethodPost, "/api/v1/products", d.String(), "Idempotency-Key", key)
	}

	first := post(d, key)
	if first.status != http.StatusCreated {
		t.Fatalf("%v, want 201", first)
	}
	if h := first.header.Get("Idempotent-Replayed"); h != "" {
		t.Errorf("%v: Idempotent-Replayed %q on the first request, want none", first, h)
	}
	original := decodeProduct(t, first)

	again := post(d, key)
	if again.status != http.StatusCreated {
		t.Fatalf("%v, want 201", again)
	}
	if h := again.header.Get("Idempotent-Replayed"); h != "true" {
		t.Errorf("%v: Idempotent-Replayed %q, want true", again, h)
	}
	if loc := again.header.Get("Location"); loc != "/api/v1/products/"+original.ID.String() {
		t.Errorf("%v: Location %q, want the first product's", again, loc)
	}
	if diff := cmp.Diff(original, decodeProduct(t, again)); diff != "" {
		t.Errorf("replayed create returned another product (-first +replay):\n%s", diff)
	}

	reused := post(d.with("product_price", raw("13")), key)
	wantError(t, reused, http.StatusUnprocessableEntity, "idempotency_key_reused")

	other := post(d, "other-"+key)
	if other.status != http.StatusCreated || decodeProduct(t, other).ID == original.ID {
		t.Errorf("%v: want 201 with a new product for a new key", other)
	}

	// Keys belong to a user: another user's request with the same key is new.
	otherUser := a.newUser(t)
	elsewhere := post(validDraft(otherUser), key)
	if elsewhere.status != http.StatusCreated || elsewhere.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("%v: want 201, not replayed, for another user's first use of the key", elsewhere)
	}

	page := decodePage(t, a.do(t, http.MethodGet, "/api/v1/products?user_id="+user.String(), ""))
	if len(page.Items) != 2 {
		t.Errorf("GET products of the user after 3 creates with one key and one with another: %d products, want 2", len(page.Items))
	}
}

func TestCreateProductIdempotencyConcurrent(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	const n = 20

	// postAll sends the bodies at once with the same key.
	postAll := func(t *testing.T, key string, body func(i int) string) []response {
		start := make(chan struct{})
		out := make([]response, n)
		var wg sync.WaitGroup
		for i := range out {
			wg.Go(func() {
				<-start
				out[i] = a.do(t, http.MethodPost, "/api/v1/products", body(i), "Idempotency-Key", key)
			})
		}
		close(start)
		wg.Wait()
		return out
	}

	t.Run("same body", func(t *testing.T) {
		t.Parallel()
		user := a.newUser(t)
		body := validDraft(user).String()
		rs := postAll(t, "key-"+uuid.NewString(), func(int) string { return body })
		ids := map[uuid.UUID]int{}
		fresh := 0
		for _, r := range rs {
			if r.status != http.StatusCreated {
				t.Errorf("%v, want 201", r)
				continue
			}
			ids[decodeProduct(t, r).ID]++
			if r.header.Get("Idempotent-Replayed") != "true" {
				fresh++
			}
		}
		if len(ids) != 1 || fresh != 1 {
			t.Errorf("%d concurrent POSTs with one key and body: product ids %v and %d not replayed, want one id and 1", n, ids, fresh)
		}
		page := decodePage(t, a.do(t, http.MethodGet, "/api/v1/products?user_id="+user.String(), ""))
		if len(page.Items) != 1 || ids[page.Items[0].ID] == 0 {
			t.Errorf("GET products of the user after %d concurrent POSTs with one key: %d products, want exactly the one returned", n, len(page.Items))
		}
	})

	t.Run("different bodies", func(t *testing.T) {
		t.Parallel()
		user := a.newUser(t)
		base := validDraft(user)
		rs := postAll(t, "key-"+uuid.NewString(), func(i int) string {
			return base.with("product_price", raw(fmt.Sprint(i+1))).String()
		})
		created := 0
		for _, r := range rs {
			switch r.status {
			case http.StatusCreated:
				created++
			default:
				wantError(t, r, http.StatusUnprocessableEntity, "idempotency_key_reused")
			}
		}
		page := decodePage(t, a.do(t, http.MethodGet, "/api/v1/products?user_id="+user.String(), ""))
		if created != 1 || len(page.Items) != 1 {
			t.Errorf("%d concurrent POSTs with one key and different bodies: %d created, %d stored, want 1 and 1", n, created, len(page.Items))
		}
	})
}

func TestGetProduct(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	p := a.create(t, validDraft(user))
	path := "/api/v1/products/" + p.ID.String()
	deleted := a.create(t, validDraft(user))
	if r := a.do(t, http.MethodDelete, "/api/v1/products/"+deleted.ID.String(), ""); r.status != http.StatusNoContent {
		t.Fatalf("%v, want 204", r)
	}

	t.Run("200 with a strong ETag", func(t *testing.T) {
		t.Parallel()
		r := a.do(t, http.MethodGet, path, "")
		if r.status != http.StatusOK || r.header.Get("ETag") != `"1"` {
			t.Fatalf("%v (ETag %q), want 200 with ETag \"1\"", r, r.header.Get("ETag"))
		}
		if diff := cmp.Diff(p, decodeProduct(t, r)); diff != "" {
			t.Errorf("%v: product (-created +got):\n%s", r, diff)
		}
	})

	conditional := []struct {
		ifNoneMatch string
		status      int
	}{
		{`"1"`, http.StatusNotModified},
		{`W/"1"`, http.StatusNotModified},
		{`"7", "1"`, http.StatusNotModified},
		{`*`, http.StatusNotModified},
		{`"2"`, http.StatusOK},
		{`"10"`, http.StatusOK},
		{`1`, http.StatusOK},
		{`garbage`, http.StatusOK},
	}
	for _, tt := range conditional {
		t.Run("If-None-Match "+tt.ifNoneMatch, func(t *testing.T) {
			t.Parallel()
			r := a.do(t, http.MethodGet, path, "", "If-None-Match", tt.ifNoneMatch)
			if r.status != tt.status {
				t.Fatalf("%v, want %d", r, tt.status)
			}
			if r.header.Get("ETag") != `"1"` {
				t.Errorf("%v: ETag %q, want \"1\"", r, r.header.Get("ETag"))
			}
			if tt.status == http.StatusNotModified && len(r.body) != 0 {
				t.Errorf("%v: 304 with a body, want none", r)
			}
			if tt.status == http.StatusOK {
				decodeProduct(t, r)
			}
		})
	}

	notFound := []struct {
		name, id string
		status   int
		code     string
		fields   []string
	}{
		{"malformed id", "not-a-uuid", http.StatusBadRequest, "validation_failed", []string{"id"}},
		{"truncated id", p.ID.String()[:35], http.StatusBadRequest, "validation_failed", []string{"id"}},
		{"unknown id", uuid.NewString(), http.StatusNotFound, "not_found", nil},
		{"deleted", deleted.ID.String(), http.StatusNotFound, "not_found", nil},
	}
	for _, tt := range notFound {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := a.do(t, http.MethodGet, "/api/v1/products/"+tt.id, "")
			wantError(t, r, tt.status, tt.code, tt.fields...)
		})
	}
}
