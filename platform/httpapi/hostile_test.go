package httpapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/httpapi"
)

// member returns d's JSON with one more member, whose name and value are
// put in as they are: whatever bytes a hostile client sends.
func member(d draft, name, value string) string {
	s := d.without(name).String()
	return s[:len(s)-1] + `,"` + name + `":` + value + "}"
}

// hostileCase is one request a hostile client sends and the 4xx it must get.
type hostileCase struct {
	name, method, path, body string
	header                   []string // name, value pairs
	status                   int
	code                     string
	fields                   []string // for 400 validation_failed
}

// TestHostileRequests sends malformed credentials, headers, path
// parameters, queries and bodies through the whole server to the real
// database: each gets its 4xx with a valid UTF-8 envelope, never a 5xx.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	valid := validDraft(user)
	p := a.create(t, valid)
	path := productURL(p.ID)
	post, list := "/api/v1/products", "/api/v1/products?"

	badKeys := map[string]string{
		"key not UTF-8 (the issue's case)": "Bearer pms_" + strings.Repeat("\xff", 12) + "_" + strings.Repeat("A", 43),
		"key with a non-base64url prefix":  "Bearer pms_AAAAAAAAAAA!_" + strings.Repeat("A", 43),
		"key with standard base64":         "Bearer pms_AAAAAAAAAA+/_" + strings.Repeat("A", 43),
		"secret not UTF-8":                 "Bearer pms_AAAAAAAAAAAA_" + strings.Repeat("\xc3", 43),
		"key of 10000 bytes":               "Bearer " + strings.Repeat("A", 10_000),
		"key one byte short":               "Bearer " + unknownKey[:len(unknownKey)-1],
		"key one byte long":                "Bearer " + unknownKey + "A",
		"key with an inner space":          "Bearer pms_AAAAAA AAAAA_" + strings.Repeat("A", 43),
	}
	var tests []hostileCase
	for name, h := range badKeys {
		tests = append(tests, hostileCase{name: "Authorization: " + name, method: http.MethodGet, path: "/api/v1/me",
			header: []string{"Authorization", h}, status: http.StatusUnauthorized, code: "unauthorized"})
	}
	tests = append(tests, []hostileCase{
		{name: "Authorization given twice", method: http.MethodGet, path: "/api/v1/me",
			header: []string{"Authorization", "Bearer " + a.key, "Authorization", "Bearer " + a.key}, status: 401, code: "unauthorized"},

		{name: "Idempotency-Key not UTF-8 (the issue's case)", method: http.MethodPost, path: post, body: valid.String(),
			header: []string{"Idempotency-Key", "key-\xfe\xff"}, status: 400, code: "validation_failed", fields: []string{"Idempotency-Key"}},
		{name: "Idempotency-Key in UTF-8 but not ASCII", method: http.MethodPost, path: post, body: valid.String(),
			header: []string{"Idempotency-Key", "clé"}, status: 400, code: "validation_failed", fields: []string{"Idempotency-Key"}},
		{name: "Idempotency-Key with a space", method: http.MethodPost, path: post, body: valid.String(),
			header: []string{"Idempotency-Key", "my key"}, status: 400, code: "validation_failed", fields: []string{"Idempotency-Key"}},
		{name: "Idempotency-Key with a tab", method: http.MethodPost, path: post, body: valid.String(),
			header: []string{"Idempotency-Key", "my\tkey"}, status: 400, code: "validation_failed", fields: []string{"Idempotency-Key"}},
		{name: "Idempotency-Key given twice", method: http.MethodPost, path: post, body: valid.String(),
			header: []string{"Idempotency-Key", "a", "Idempotency-Key", "b"}, status: 400, code: "validation_failed", fields: []string{"Idempotency-Key"}},
		{name: "Idempotency-Key of 100000 bytes", method: http.MethodPost, path: post, body: valid.String(),
			header: []string{"Idempotency-Key", strings.Repeat("k", 100_000)}, status: 400, code: "validation_failed", fields: []string{"Idempotency-Key"}},

		{name: "If-Match not UTF-8", method: http.MethodPatch, path: path, body: `{"product_price":1}`,
			header: []string{"If-Match", "\"\xff\xfe\""}, status: 412, code: "version_mismatch"},
		{name: "If-Match of 30 digits", method: http.MethodDelete, path: path,
			header: []string{"If-Match", `"` + strings.Repeat("9", 30) + `"`}, status: 412, code: "version_mismatch"},
		{name: "If-Match negative", method: http.MethodDelete, path: path,
			header: []string{"If-Match", `"-1"`}, status: 412, code: "version_mismatch"},

		{name: "Content-Type in Latin-1", method: http.MethodPost, path: post, body: valid.String(),
			header: []string{"Content-Type", "application/json; charset=iso-8859-1"}, status: 415, code: "unsupported_media_type"},
		{name: "Content-Type charset not UTF-8", method: http.MethodPost, path: post, body: valid.String(),
			header: []string{"Content-Type", "application/json; charset=\"\xff\""}, status: 415, code: "unsupported_media_type"},
		{name: "Content-Type with a repeated parameter", method: http.MethodPost, path: post, body: valid.String(),
			header: []string{"Content-Type", "application/json; charset=utf-8; charset=latin1"}, status: 415, code: "unsupported_media_type"},
		{name: "Content-Type not UTF-8", method: http.MethodPost, path: post, body: valid.String(),
			header: []string{"Content-Type", "application/\xffjson"}, status: 415, code: "unsupported_media_type"},

		{name: "id not UTF-8", method: http.MethodGet, path: "/api/v1/products/%FF%FE", status: 400, code: "validation_failed", fields: []string{"id"}},
		{name: "id with NUL", method: http.MethodPatch, path: "/api/v1/products/%00", body: `{}`, status: 400, code: "validation_failed", fields: []string{"id"}},
		{name: "id of 5000 characters", method: http.MethodDelete, path: "/api/v1/products/" + strings.Repeat("a", 5000), status: 400, code: "validation_failed", fields: []string{"id"}},
	}...)

	unknownParams := make([]string, 200)
	for i := range unknownParams {
		unknownParams[i] = fmt.Sprintf("p%03d=1", i)
	}
	for _, q := range []struct{ name, query, field string }{
		{"name not UTF-8", "name=%FF%FE", "name"},
		{"name overlong UTF-8", "name=%C0%AF", "name"},
		{"name with a tab", "name=a%09b", "name"},
		{"name with a C1 control", "name=a%C2%85b", "name"},
		{"name with a lone surrogate in UTF-8", "name=%ED%A0%80", "name"},
		{"user_id not UTF-8", "user_id=%FF", "user_id"},
		{"user_id as a braced UUID with NUL", "user_id=%7B" + user.String() + "%00%7D", "user_id"},
		{"sort with NUL", "sort=%00", "sort"},
		{"min_price not UTF-8", "min_price=1%FF", "min_price"},
		{"max_price with NUL", "max_price=1%00", "max_price"},
		{"limit with NUL", "limit=1%00", "limit"},
		{"limit of 2000 digits", "limit=" + strings.Repeat("9", 2000), "limit"},
		{"name of 2000 bytes", "name=" + strings.Repeat("n", 2000), "name"},
		{"cursor of 5000 characters", "cursor=" + strings.Repeat("A", 5000), "cursor"},
		{"cursor not UTF-8", "cursor=%FF", "cursor"},
		{"cursor after a name of 256 characters", "user_id=" + user.String() + "&sort=name&cursor=" + handMadeCursor(t, user, "name", strings.Repeat("n", 256)), "cursor"},
		{"malformed escape in a value", "name=%zz", "query"},
		{"malformed escape in a name", "%zz=1", "query"},
		{"semicolon separator", "name=a;limit=2", "query"},
		{"query over 8192 bytes", "name=" + strings.Repeat("n", 8200), "query"},
		{"unknown parameter not UTF-8", "%FF%FE=1", "\uFFFD"},
		{"unknown parameter of 5000 characters", strings.Repeat("p", 5000) + "=1", strings.Repeat("p", 64) + "…"},
	} {
		tests = append(tests, hostileCase{name: "query: " + q.name, method: http.MethodGet, path: list + q.query,
			status: 400, code: "validation_failed", fields: []string{q.field}})
	}
	tests = append(tests, hostileCase{name: "query: 200 unknown parameters", method: http.MethodGet,
		path: list + strings.Join(unknownParams, "&"), status: 400, code: "validation_failed",
		fields: []string{"p000", "p001", "p002", "p003", "p004", "p005", "p006", "p007", "p008", "p009", "query"}})

	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, b := range []struct {
		name, body string
		fields     []string
	}{
		{"name with \\u0000", member(valid, "product_name", `"lamp\u0000"`), []string{"product_name"}},
		{"name with a lone high surrogate", member(valid, "product_name", `"lamp\ud800"`), []string{"product_name"}},
		{"name with a lone low surrogate", member(valid, "product_name", `"\udfff lamp"`), []string{"product_name"}},
		{"name with a high surrogate before a letter", member(valid, "product_name", `"\ud800\u0041"`), []string{"product_name"}},
		{"name with reversed surrogates", member(valid, "product_name", `"\ude00\ud83d"`), []string{"product_name"}},
		{"name not UTF-8", member(valid, "product_name", "\"lamp \xff\""), []string{"product_name"}},
		{"name in overlong UTF-8", member(valid, "product_name", "\"\xc0\xaf\""), []string{"product_name"}},
		{"name of 100000 characters", member(valid, "product_name", `"`+strings.Repeat("n", 100_000)+`"`), []string{"product_name"}},
		{"description not UTF-8", member(valid, "product_description", "\"a\xffb\""), []string{"product_description"}},
		{"description with \\u0000", member(valid, "product_description", `"a\u0000b"`), []string{"product_description"}},
		{"image URL not UTF-8", member(valid, "product_images", "[\"https://img.example.com/\xff.png\"]"), []string{"product_images[0]"}},
		{"image URL with \\u0000", member(valid, "product_images", `["https://img.example.com/a\u0000.png"]`), []string{"product_images[0]"}},
		{"user_id with \\u0000", member(valid, "user_id", `"`+user.String()+`\u0000"`), []string{"user_id"}},
		{"price as a 400-digit number", member(valid, "product_price", strings.Repeat("9", 400)), []string{"product_price"}},
		{"member given twice", strings.TrimSuffix(valid.String(), "}") + `,"product_name":"Again"}`, []string{"product_name"}},
		{"member name not UTF-8", member(valid, "\xff\xfe", "1"), []string{"\uFFFD\uFFFD", "\uFFFD\uFFFD"}},
		{"member name with \\u0000", member(valid, `colour\u0000`, "1"), []string{"colour\x00", "colour\x00"}},
		{"member name of 10000 characters", member(valid, strings.Repeat("k", 10_000), "1"), []string{strings.Repeat("k", 64) + "…"}},
		{"duplicate in a nested object", member(valid, "x", `{"a":1,"a":2}`), []string{"x", "x.a"}},
		{"duplicate in an object in an array", member(valid, "x", `[{"a":1},{"b":1,"b":2}]`), []string{"x", "x[1].b"}},
		{"lone surrogate deep inside", member(valid, "x", `{"a":[1,{"b":"\udc00"}]}`), []string{"x", "x.a[1].b"}},
		{"16 levels deep", member(valid, "x", deep(15)), []string{"x"}},
		{"17 levels deep", member(valid, "x", deep(16)), []string{"x", "x" + strings.Repeat("[0]", 15)}},
		{"100000 levels deep", member(valid, "x", deep(100_000)), []string{"body"}},
	} {
		tests = append(tests, hostileCase{name: "body: " + b.name, method: http.MethodPost, path: post, body: b.body,
			status: 400, code: "validation_failed", fields: b.fields})
	}
	tests = append(tests,
		hostileCase{name: "patch body: name not UTF-8", method: http.MethodPatch, path: path, body: "{\"product_name\":\"\xff\"}",
			status: 400, code: "validation_failed", fields: []string{"product_name"}},
		hostileCase{name: "patch body: member given twice", method: http.MethodPatch, path: path, body: `{"product_price":1,"product_price":2}`,
			status: 400, code: "validation_failed", fields: []string{"product_price"}},
		hostileCase{name: "patch body: lone surrogate in an image URL", method: http.MethodPatch, path: path,
			body: `{"product_images":["https://img.example.com/\ud800.png"]}`, status: 400, code: "validation_failed", fields: []string{"product_images[0]"}},
	)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := a.do(t, tt.method, tt.path, tt.body, tt.header...)
			wantHostileRefused(t, r, tt)
		})
	}

	t.Run("80000 unknown members", func(t *testing.T) {
		t.Parallel()
		var b strings.Builder
		b.WriteString(valid.String()[:len(valid.String())-1])
		for i := range 80_000 {
			fmt.Fprintf(&b, `,"k%05d":0`, i)
		}
		b.WriteString("}")
		r := a.do(t, http.MethodPost, post, b.String())
		e := wantError(t, r, http.StatusBadRequest, "validation_failed",
			"k00000", "k00001", "k00002", "k00003", "k00004", "k00005", "k00006", "k00007", "k00008", "k00009", "body")
		if last := e.Fields[len(e.Fields)-1]; !strings.Contains(last.Problem, "79990 more") {
			t.Errorf("%v: last field %+v, want a count of the 79990 fields not listed", r, last)
		}
		if len(r.body) > 2048 {
			t.Errorf("%v: the error is %d bytes, want at most 2048 whatever the body holds", r, len(r.body))
		}
	})
}

// wantHostileRefused checks that r is the 4xx tt wants, in a UTF-8
// envelope; a 401 must carry a Bearer challenge.
func wantHostileRefused(t *testing.T, r response, tt hostileCase) {
	t.Helper()
	if r.status >= 500 {
		t.Errorf("%v, want %d: a malformed request is never a 5xx", r, tt.status)
	}
	if !utf8.Valid(r.body) {
		t.Errorf("%v: the body is not valid UTF-8", r)
	}
	wantError(t, r, tt.status, tt.code, tt.fields...)
	if tt.status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("%v: WWW-Authenticate %q, want a Bearer challenge", r, r.header.Get("WWW-Authenticate"))
	}
}

// TestHostileRequestsAccepted shows the other side of the rules: text that
// looks odd but is valid passes, and a malformed request id is replaced.
func TestHostileRequestsAccepted(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	valid := validDraft(user)
	generated := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, tt := range []struct {
		name, body string
		header     []string
		wantName   string
	}{
		{"emoji as a surrogate pair", member(valid, "product_name", `"lamp \ud83d\udca1"`), nil, "lamp 💡"},
		{"U+FFFD escaped", member(valid, "product_name", `"lamp \ufffd"`), nil, "lamp \uFFFD"},
		{"U+FFFD in UTF-8", member(valid, "product_name", "\"lamp \uFFFD\""), nil, "lamp \uFFFD"},
		{"escaped backslash before u0000", member(valid, "product_name", `"lamp \\u0000"`), nil, `lamp \u0000`},
		{"Content-Type charset UTF-8 in capitals", valid.String(), []string{"Content-Type", "application/json; charset=UTF-8"}, ""},
		{"bearer in lower case", valid.String(), []string{"Authorization", "bearer " + a.key}, ""},
		{"X-Request-ID not UTF-8", valid.String(), []string{httpapi.HeaderRequestID, "req-\xff\xfe"}, ""},
		{"Idempotency-Key of 255 visible characters", valid.String(), []string{"Idempotency-Key", strings.Repeat("~", 254) + "!"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := a.do(t, http.MethodPost, "/api/v1/products", tt.body, tt.header...)
			if r.status != http.StatusCreated {
				t.Fatalf("%v, want 201", r)
			}
			if got := decodeProduct(t, r).Name; tt.wantName != "" && got != tt.wantName {
				t.Errorf("%v: product_name %q, want %q", r, got, tt.wantName)
			}
			if id := r.header.Get(httpapi.HeaderRequestID); strings.Contains(tt.name, "X-Request-ID") && !generated.MatchString(id) {
				t.Errorf("%v: X-Request-ID %q, want a generated one in place of the malformed one", r, id)
			}
		})
	}
	t.Run("If-None-Match not UTF-8", func(t *testing.T) {
		t.Parallel()
		p := a.create(t, validDraft(user))
		if r := a.do(t, http.MethodGet, productURL(p.ID), "", "If-None-Match", "\"\xff\", W/\"\xfe\""); r.status != http.StatusOK {
			t.Errorf("%v, want 200: the tags name no version", r)
		}
	})
}

// TestHostileRawRequests sends what Go's client refuses to: control
// characters in headers and the request line. The server must refuse them
// with a 4xx before any handler runs or any store is asked.
func TestHostileRawRequests(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	valid := validDraft(a.newUser(t)).String()
	request := func(line string, headers ...string) string {
		h := "Host: pms.test\r\nAuthorization: Bearer " + a.key + "\r\nContent-Type: application/json\r\n"
		for _, x := range headers {
			h += x + "\r\n"
		}
		return fmt.Sprintf("%s\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n%s", line, h, len(valid), valid)
	}
	post := "POST /api/v1/products HTTP/1.1"
	for _, tt := range []struct{ name, raw string }{
		{"NUL in the API key", strings.Replace(request(post), "Bearer pms_", "Bearer pms_\x00", 1)},
		{"NUL in Idempotency-Key", request(post, "Idempotency-Key: a\x00b")},
		{"control character in Idempotency-Key", request(post, "Idempotency-Key: a\x01b")},
		{"NUL in X-Request-ID", request(post, "X-Request-ID: a\x00b")},
		{"DEL in If-Match", request("PATCH /api/v1/products/"+uuid.NewString()+" HTTP/1.1", "If-Match: \"1\x7f\"")},
		{"bare CR in a header", request(post, "Idempotency-Key: a\rb")},
		{"header name not a token", request(post, "Idem\xffpotency-Key: a")},
		{"NUL in the path", request("GET /api/v1/products/\x00 HTTP/1.1")},
		{"raw bytes not UTF-8 in the path", request("GET /api/v1/products/\xff\xfe HTTP/1.1")},
		{"raw bytes not UTF-8 in the query", request("GET /api/v1/products?name=\xff HTTP/1.1")},
		{"space in the query", request("GET /api/v1/products?name=a b HTTP/1.1")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status := rawRoundTrip(t, a.srv.Listener.Addr().String(), tt.raw)
			if status < 400 || status >= 500 {
				t.Errorf("%q = %d, want a 4xx", tt.raw, status)
			}
		})
	}
}

// rawRoundTrip writes raw to a new connection to addr and returns the
// response's status.
func rawRoundTrip(t *testing.T, addr, raw string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(raw)); err != nil {
		t.Fatalf("write %q: %v", raw, err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the response to %q: %v", raw, err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestMalformedKeysNeverReachTheStore runs against a database nothing
// listens at: a well-formed key needs a lookup and gets a 503, while every
// malformed one is a 401 at once, so none was looked up.
func TestMalformedKeysNeverReachTheStore(t *testing.T) {
	t.Parallel()
	db := openPool(t, "127.0.0.1:1", "") // nothing listens on port 1
	a := newAPIOn(t, db, testConfig())
	wantUnavailable(t, a.do(t, http.MethodGet, "/api/v1/me", "", "Authorization", "Bearer "+unknownKey))
	for _, key := range []string{
		"pms_" + strings.Repeat("\xff", 12) + "_" + strings.Repeat("A", 43),
		"pms_AAAAAAAAAAA!_" + strings.Repeat("A", 43),
		"pms_AAAAAAAAAAAA_" + strings.Repeat("\x80", 43),
		"PMS_AAAAAAAAAAAA_" + strings.Repeat("A", 43),
		strings.Repeat("A", 60),
	} {
		r := a.do(t, http.MethodGet, "/api/v1/me", "", "Authorization", "Bearer "+key)
		wantHostileRefused(t, r, hostileCase{status: http.StatusUnauthorized, code: "unauthorized"})
	}
}

// TestStoreDataErrorIsA400 shows the safety net behind validation: a value
// PostgreSQL refuses as data (SQLSTATE class 22) that reached it anyway is
// a 400 invalid_input, logged at warn as a gap in validation.
func TestStoreDataErrorIsA400(t *testing.T) {
	t.Parallel()
	a, logs := newLoggedAPI(t)
	r := a.do(t, http.MethodGet, "/test/store-data-error", "")
	wantError(t, r, http.StatusBadRequest, "invalid_input")
	var warned bool
	for _, line := range strings.Split(logs.String(), "\n") {
		var entry struct{ Level, Error string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Level == "warn" && strings.Contains(entry.Error, "invalid byte sequence") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("%v: no warn log line with PostgreSQL's error; logs:\n%s", r, logs.String())
	}
}
