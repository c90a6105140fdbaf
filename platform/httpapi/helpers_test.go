package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/httpapi"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
)

// testConfig is a valid server config on a free loopback port.
func testConfig() httpapi.Config {
	return httpapi.Config{
		Addr:              "127.0.0.1:0",
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       30 * time.Second,
		RequestTimeout:    10 * time.Second,
		ShutdownTimeout:   5 * time.Second,
		MaxBodyBytes:      1 << 20,
		MaxHeaderBytes:    64 << 10,
	}
}

// api is a server under test on a loopback httptest server, with its
// operator listener on another. Requests carry an admin's API key unless
// they set Authorization themselves.
type api struct {
	srv    *httptest.Server
	ops    *httptest.Server
	server *httpapi.Server
	svc    *product.Service
	auth   *account.Service
	key    string // an admin's API key
}

// imageTasks makes the image task messages the services under test write.
var imageTasks = imaging.NewTaskMessages("pms.image-tasks")

// newAPI serves the API on the test binary's migrated database, with a
// critical readiness check that pings it.
func newAPI(t testing.TB) *api {
	t.Helper()
	db := postgrestest.New(t)
	return newAPIOn(t, db, testConfig(), httpapi.Check{Name: "postgres", Critical: true, Run: db.Ping})
}

// newAPIOn serves the API on db with the given config, and the readiness
// checks on its operator listener.
func newAPIOn(t testing.TB, db *postgres.DB, cfg httpapi.Config, checks ...httpapi.Check) *api {
	t.Helper()
	return newAPIWith(t, db, cfg, product.Policy{}, nil, checks...)
}

// newAPIWith is newAPIOn with a read policy and a rate limiter.
func newAPIWith(t testing.TB, db *postgres.DB, cfg httpapi.Config, policy product.Policy, limiter httpapi.RateLimiter, checks ...httpapi.Check) *api {
	t.Helper()
	return newAPIKeeping(t, db, postgres.DefaultIdempotencyConfig(), cfg, policy, limiter, checks...)
}

// newAPIKeeping is newAPIWith keeping idempotency keys as idem says.
func newAPIKeeping(t testing.TB, db *postgres.DB, idem postgres.IdempotencyConfig, cfg httpapi.Config, policy product.Policy, limiter httpapi.RateLimiter, checks ...httpapi.Check) *api {
	t.Helper()
	store, err := postgres.NewProductStore(db, idem)
	if err != nil {
		t.Fatalf("NewProductStore: %v", err)
	}
	svc := product.NewService(store, imageTasks, policy)
	auth := account.NewService(postgres.NewAccountStore(db))
	reg := prometheus.NewRegistry()
	s, err := httpapi.New(cfg, httpapi.API{Products: svc, Auth: auth, Limiter: limiter}, reg, zerolog.Nop())
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	ops, err := httpapi.NewOps(cfg, checks, reg, zerolog.Nop())
	if err != nil {
		t.Fatalf("httpapi.NewOps: %v", err)
	}
	srv, opsSrv := specServer(t, s.Handler()), httptest.NewServer(ops.Handler())
	t.Cleanup(opsSrv.Close)
	a := &api{srv: srv, ops: opsSrv, server: s, svc: svc, auth: auth}
	a.key = a.newKey(t, true)
	return a
}

// newLoggedAPI serves the API on a database of its own with its log lines
// in the returned buffer, and one more route, GET /test/store-data-error,
// which passes PostgreSQL a value it refuses as data (a warn line, then a
// 400).
func newLoggedAPI(t *testing.T) (*api, *syncBuffer) {
	t.Helper()
	db := postgrestest.New(t)
	logs := &syncBuffer{}
	keys := postgres.NewAccountStore(db)
	store, err := postgres.NewProductStore(db, postgres.DefaultIdempotencyConfig())
	if err != nil {
		t.Fatal(err)
	}
	auth := account.NewService(keys)
	s, err := httpapi.New(testConfig(), httpapi.API{Products: product.NewService(store, imageTasks, product.Policy{}), Auth: auth},
		prometheus.NewRegistry(), zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	httpapi.AddErrorRoute(s, "/test/store-data-error", func(ctx context.Context) error {
		_, err := keys.KeyByPrefix(ctx, "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4") // past every check
		return err
	})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &api{srv: srv, auth: auth}, logs
}

// unknownKey is well formed but names no key.
const unknownKey = "pms_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// newKey makes a user, admin or not, and returns an API key of theirs.
// Under a database outage it returns a key that cannot be looked up, for
// tests that expect only errors.
func (a *api) newKey(t testing.TB, admin bool) string {
	t.Helper()
	u, err := a.auth.CreateUser(t.Context(), "user-"+uuid.NewString()+"@example.test", "Key Holder", admin)
	if errors.Is(err, product.ErrUnavailable) {
		return unknownKey
	}
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	key, _, err := a.auth.CreateKey(t.Context(), u.ID)
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return key
}

// newUser stores a user with a unique email and returns its id.
func (a *api) newUser(t testing.TB) uuid.UUID {
	t.Helper()
	u, err := a.auth.CreateUser(t.Context(), "user-"+uuid.NewString()+"@example.test", "Test User", false)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return u.ID
}

// omit as a header value in do removes the header.
const omit = "\x00omit"

// response is what one request got back.
type response struct {
	call   string // e.g. `POST /api/v1/products {"a":1}`, for failure messages
	status int
	header http.Header
	body   []byte
}

func (r response) String() string {
	return fmt.Sprintf("%s = %d %s", r.call, r.status, abbreviate(strings.TrimSpace(string(r.body))))
}

func abbreviate(s string) string {
	if len(s) > 300 {
		return fmt.Sprintf("%s…(%d bytes)", s[:300], len(s))
	}
	return s
}

// do sends a request with an optional body (sent as application/json) and
// headers given as name, value pairs (a name given twice is sent twice), and
// reads the whole response. No test
// expects a 500, so one fails the test wherever it happens.
func (a *api) do(t testing.TB, method, path, body string, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	return a.send(t, method, path, rd, body, header...)
}

// send is do with any body reader; desc describes the body for messages.
func (a *api) send(t testing.TB, method, path string, body io.Reader, desc string, header ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, a.srv.URL+path, body)
	if err != nil {
		t.Fatalf("new request %s %s: %v", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	given := map[string]bool{}
	for i := 0; i+1 < len(header); i += 2 {
		name := http.CanonicalHeaderKey(header[i])
		switch {
		case header[i+1] == omit:
			req.Header.Del(name)
		case given[name]: // a name given twice sends the header twice
			req.Header[name] = append(req.Header[name], header[i+1])
		default:
			req.Header[name] = []string{header[i+1]}
		}
		given[name] = true
	}
	call := strings.TrimSpace(abbreviate(method+" "+path) + " " + abbreviate(desc))
	if len(header) > 0 {
		call += fmt.Sprintf(" %q", header)
	}
	res, err := a.srv.Client().Do(req)
	return readResponse(t, call, res, err)
}

// readResponse reads the response to call, failing the test when there is
// none and flagging a 500, which no request may get.
func readResponse(t testing.TB, call string, res *http.Response, err error) response {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", call, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s: read body: %v", call, err)
	}
	r := response{call: call, status: res.StatusCode, header: res.Header, body: b}
	if r.status == http.StatusInternalServerError {
		t.Errorf("%v, want anything but 500", r)
	}
	return r
}

// doOps sends GET path to the operator listener and reads the response.
func (a *api) doOps(t testing.TB, path string) response {
	t.Helper()
	call := "ops GET " + path
	res, err := a.ops.Client().Get(a.ops.URL + path)
	return readResponse(t, call, res, err)
}

// productOut is a product as the API returns it.
type productOut struct {
	ID          uuid.UUID  `json:"id"`
	UserID      uuid.UUID  `json:"user_id"`
	Name        string     `json:"product_name"`
	Description string     `json:"product_description"`
	Price       string     `json:"-"` // the JSON number exactly as sent
	Images      []string   `json:"product_images"`
	Compressed  []string   `json:"compressed_product_images"`
	States      []imageOut `json:"images"`
	Version     int        `json:"version"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

type imageOut struct {
	Position      int               `json:"position"`
	SourceURL     string            `json:"source_url"`
	Status        string            `json:"status"`
	Attempts      int               `json:"attempts"`
	ErrorCode     string            `json:"error_code"`
	CompressedURL string            `json:"compressed_url"`
	Width         int               `json:"width"`
	Height        int               `json:"height"`
	Bytes         int64             `json:"bytes"`
	Format        string            `json:"format"`
	Variants      []variantOut      `json:"variants"`
	Srcset        map[string]string `json:"srcset"`
	Source        *sourceOut        `json:"source"`
	ThumbHash     string            `json:"thumbhash"`
	DominantColor string            `json:"dominant_color"`
}

type sourceOut struct {
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Format string `json:"format"`
	Bytes  int64  `json:"bytes"`
}

type variantOut struct {
	Name   string `json:"name"`
	URL    string `json:"url"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Bytes  int64  `json:"bytes"`
	Format string `json:"format"`
}

// productKeys are the members every product representation has.
var productKeys = []string{
	"id", "user_id", "product_name", "product_description", "product_price", "product_images",
	"compressed_product_images", "images", "version", "created_at", "updated_at",
}

// decodeProduct checks that r carries a JSON product with every key and a
// numeric price, and returns it.
func decodeProduct(t testing.TB, r response) productOut {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatalf("%v: not a JSON object: %v", r, err)
	}
	p, err := productFromRaw(raw)
	if err != nil {
		t.Fatalf("%v: %v", r, err)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%v: Content-Type %q, want application/json", r, ct)
	}
	return p
}

func productFromRaw(raw map[string]json.RawMessage) (productOut, error) {
	var missing []string
	for _, k := range productKeys {
		if _, ok := raw[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return productOut{}, fmt.Errorf("product lacks keys %q", missing)
	}
	for _, k := range []string{"product_images", "compressed_product_images", "images"} {
		if string(raw[k]) == "null" {
			return productOut{}, fmt.Errorf("%s is null, want an array", k)
		}
	}
	price := string(raw["product_price"])
	if price == "" || price[0] == '"' {
		return productOut{}, fmt.Errorf("product_price is %s, want a JSON number", price)
	}
	b, _ := json.Marshal(raw)
	var p productOut
	if err := json.Unmarshal(b, &p); err != nil {
		return productOut{}, fmt.Errorf("decode product: %w", err)
	}
	p.Price = price
	return p, nil
}

// pageOut is a page of a product list.
type pageOut struct {
	Items      []productOut
	NextCursor *string
}

func decodePage(t testing.TB, r response) pageOut {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%v, want 200", r)
	}
	var raw struct {
		Items      []map[string]json.RawMessage `json:"items"`
		NextCursor *string                      `json:"next_cursor"`
	}
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatalf("%v: not a page: %v", r, err)
	}
	if raw.Items == nil {
		t.Fatalf("%v: items is missing or null, want an array", r)
	}
	page := pageOut{NextCursor: raw.NextCursor}
	for i, item := range raw.Items {
		p, err := productFromRaw(item)
		if err != nil {
			t.Fatalf("%v: item %d: %v", r, i, err)
		}
		page.Items = append(page.Items, p)
	}
	return page
}

// apiError is the error envelope's content.
type apiError struct {
	Code      string     `json:"code"`
	Message   string     `json:"message"`
	Fields    []fieldOut `json:"fields"`
	RequestID string     `json:"request_id"`
}

type fieldOut struct {
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

// wantStatus checks that r has status: a success, or an error envelope with
// code. It reports whether r succeeded.
func wantStatus(t testing.TB, r response, status int, code string) bool {
	t.Helper()
	if status < 300 {
		if r.status != status {
			t.Errorf("%v, want %d", r, status)
		}
		return true
	}
	wantError(t, r, status, code)
	return false
}

// wantError checks that r is an error envelope with the status, the code
// (unless code is "") and exactly the named fields, and that its request_id
// matches the X-Request-ID header.
func wantError(t testing.TB, r response, status int, code string, fields ...string) apiError {
	t.Helper()
	if r.status != status {
		t.Errorf("%v, want %d", r, status)
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &env); err != nil || len(env) != 1 || env["error"] == nil {
		t.Fatalf("%v: body is not {\"error\": {...}} (%v)", r, err)
	}
	var inner map[string]json.RawMessage
	if err := json.Unmarshal(env["error"], &inner); err != nil {
		t.Fatalf("%v: error is not an object: %v", r, err)
	}
	for k := range inner {
		if !slices.Contains([]string{"code", "message", "fields", "request_id"}, k) {
			t.Errorf("%v: error has unexpected key %q", r, k)
		}
	}
	var e apiError
	if err := json.Unmarshal(env["error"], &e); err != nil {
		t.Fatalf("%v: decode error: %v", r, err)
	}
	if code != "" && e.Code != code {
		t.Errorf("%v: code %q, want %q", r, e.Code, code)
	}
	if e.Code == "" || e.Message == "" {
		t.Errorf("%v: code and message must not be empty", r)
	}
	if e.RequestID == "" || e.RequestID != r.header.Get(httpapi.HeaderRequestID) {
		t.Errorf("%v: request_id %q, want the X-Request-ID header %q", r, e.RequestID, r.header.Get(httpapi.HeaderRequestID))
	}
	got := make([]string, 0, len(e.Fields))
	for _, f := range e.Fields {
		got = append(got, f.Field)
		if f.Problem == "" {
			t.Errorf("%v: field %q has no problem", r, f.Field)
		}
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(fields))
	if want == nil {
		want = []string{}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%v: error.fields (-want +got):\n%s", r, diff)
	}
	return e
}

// draft is a create request body.
type draft map[string]any

// validDraft returns a valid create body for the user with a unique name.
func validDraft(userID uuid.UUID) draft {
	tag := uuid.NewString()[:8]
	return draft{
		"user_id":             userID.String(),
		"product_name":        "Lamp " + tag,
		"product_description": "A reading lamp",
		"product_price":       json.Number("12.50"),
		"product_images": []string{
			"https://img.example.com/" + tag + "/a.png",
			"https://img.example.com/" + tag + "/b.png",
			"http://img.example.com/" + tag + "/c.jpg",
		},
	}
}

func (d draft) with(key string, v any) draft {
	out := make(draft, len(d)+1)
	for k, old := range d {
		out[k] = old
	}
	out[key] = v
	return out
}

func (d draft) without(key string) draft {
	out := d.with(key, nil)
	delete(out, key)
	return out
}

func (d draft) String() string {
	b, err := json.Marshal(d)
	if err != nil {
		panic(err) // a test wrote an unencodable draft
	}
	return string(b)
}

// create posts d and returns the created product, failing unless it is 201.
func (a *api) create(t testing.TB, d draft) productOut {
	t.Helper()
	r := a.do(t, http.MethodPost, "/api/v1/products", d.String())
	if r.status != http.StatusCreated {
		t.Fatalf("%v, want 201", r)
	}
	return decodeProduct(t, r)
}

// get returns the product, failing unless it is 200.
func (a *api) get(t testing.TB, id uuid.UUID) productOut {
	t.Helper()
	r := a.do(t, http.MethodGet, "/api/v1/products/"+id.String(), "")
	if r.status != http.StatusOK {
		t.Fatalf("%v, want 200", r)
	}
	return decodeProduct(t, r)
}

// jsonOf returns v as JSON.
func jsonOf(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %v: %v", v, err)
	}
	return string(b)
}

// raw puts s into a draft as it is, e.g. a number literal such as 1e3.
func raw(s string) json.RawMessage { return json.RawMessage(s) }

// padTo pads a JSON document with trailing spaces to exactly n bytes.
func padTo(t testing.TB, doc string, n int) string {
	t.Helper()
	if len(doc) > n {
		t.Fatalf("document is %d bytes, more than %d", len(doc), n)
	}
	return doc + strings.Repeat(" ", n-len(doc))
}

// chunked hides a body's length, so the client sends it chunked without a
// Content-Length.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

func newChunked(s string) io.Reader { return chunked{bytes.NewReader([]byte(s))} }
