package httpapi_test

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

// listPath returns the list URL for the query, given as name, value pairs.
func listPath(params ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		q.Add(params[i], params[i+1])
	}
	return "/api/v1/products?" + q.Encode()
}

func names(ps []productOut) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

func TestListProductsFilters(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	// Created in this order, so created_at (and the UUIDv7 ids) follow it.
	fixtures := []struct{ name, price string }{
		{"Alpha Lamp", "10"},
		{"beta lamp", "5"},
		{"Gamma Chair", "5.00"},
		{"50% off sale", "99.99"},
		{"5000 off", "100"},
		{"a_b table", "0"},
		{"axb table", "0.01"},
		{"Zeta lamp", "9999999999.99"},
		{"Ärmel lamp", "5"},
		{`back\slash`, "7"},
	}
	for _, f := range fixtures {
		a.create(t, validDraft(user).with("product_name", f.name).with("product_price", raw(f.price)))
	}
	pick := func(idx ...int) []string {
		out := []string{}
		for _, i := range idx {
			out = append(out, fixtures[i].name)
		}
		return out
	}
	u := user.String()
	tests := []struct {
		name   string
		params []string
		want   []string
	}{
		{"user only", nil, pick(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
		{"min_price inclusive", []string{"min_price", "5"}, pick(0, 1, 2, 3, 4, 7, 8, 9)},
		{"max_price inclusive", []string{"max_price", "5.00"}, pick(1, 2, 5, 6, 8)},
		{"min equals max", []string{"min_price", "5", "max_price", "5"}, pick(1, 2, 8)},
		{"price range", []string{"min_price", "99.99", "max_price", "100"}, pick(3, 4)},
		{"cent precision", []string{"min_price", "0.01", "max_price", "0.01"}, pick(6)},
		{"maximum price", []string{"min_price", "9999999999.99"}, pick(7)},
		{"nothing in range", []string{"min_price", "100.01", "max_price", "9999999999.98"}, pick()},
		{"name substring", []string{"name", "lamp"}, pick(0, 1, 7, 8)},
		{"name case-insensitive", []string{"name", "LaMp"}, pick(0, 1, 7, 8)},
		{"name in the middle", []string{"name", "ha L"}, pick(0)},
		{"percent matches literally", []string{"name", "%"}, pick(3)},
		{"percent prefix", []string{"name", "50%"}, pick(3)},
		{"underscore matches literally", []string{"name", "_"}, pick(5)},
		{"underscore in a word", []string{"name", "a_b"}, pick(5)},
		{"backslash matches literally", []string{"name", `\`}, pick(9)},
		{"backslash sequence", []string{"name", `k\s`}, pick(9)},
		{"non-ASCII", []string{"name", "Ärmel"}, pick(8)},
		{"name and price", []string{"name", "lamp", "max_price", "10"}, pick(0, 1, 8)},
		{"no match", []string{"name", "sofa"}, pick()},
		{"255-character name", []string{"name", strings.Repeat("é", 255)}, pick()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := listPath(append([]string{"user_id", u}, tt.params...)...)
			r := a.do(t, http.MethodGet, path, "")
			page := decodePage(t, r)
			if diff := gocmp.Diff(tt.want, names(page.Items)); diff != "" {
				t.Errorf("GET %s: names (-want +got):\n%s", path, diff)
			}
			if page.NextCursor != nil {
				t.Errorf("GET %s: next_cursor %q on the only page, want null", path, *page.NextCursor)
			}
			for _, p := range page.Items {
				if p.UserID != user {
					t.Errorf("GET %s: product %s of user %s, want only user %s", path, p.ID, p.UserID, user)
				}
			}
		})
	}

	sorts := []struct {
		sort string
		want []string
	}{
		{"", pick(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
		{"created_at", pick(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
		{"-created_at", pick(9, 8, 7, 6, 5, 4, 3, 2, 1, 0)},
		// Equal prices are ordered by id, which follows creation.
		{"price", pick(5, 6, 1, 2, 8, 9, 0, 3, 4, 7)},
		{"-price", pick(7, 4, 3, 0, 9, 8, 2, 1, 6, 5)},
		// Byte order: digits, then upper case, then lower case, then non-ASCII.
		{"name", pick(3, 4, 0, 2, 7, 5, 6, 9, 1, 8)},
	}
	for _, tt := range sorts {
		t.Run("sort "+tt.sort, func(t *testing.T) {
			t.Parallel()
			params := []string{"user_id", u}
			if tt.sort != "" {
				params = append(params, "sort", tt.sort)
			}
			path := listPath(params...)
			page := decodePage(t, a.do(t, http.MethodGet, path, ""))
			if diff := gocmp.Diff(tt.want, names(page.Items)); diff != "" {
				t.Errorf("GET %s: order (-want +got):\n%s", path, diff)
			}
		})
	}

	t.Run("deleted products are left out", func(t *testing.T) {
		t.Parallel()
		other := a.newUser(t)
		keep := a.create(t, validDraft(other))
		gone := a.create(t, validDraft(other))
		if r := a.do(t, http.MethodDelete, "/api/v1/products/"+gone.ID.String(), ""); r.status != http.StatusNoContent {
			t.Fatalf("%v, want 204", r)
		}
		path := listPath("user_id", other.String())
		page := decodePage(t, a.do(t, http.MethodGet, path, ""))
		if len(page.Items) != 1 || page.Items[0].ID != keep.ID {
			t.Errorf("GET %s after deleting one of two products: %q, want only %q", path, names(page.Items), keep.Name)
		}
	})

	t.Run("unknown user", func(t *testing.T) {
		t.Parallel()
		r := a.do(t, http.MethodGet, listPath("user_id", uuid.NewString()), "")
		if page := decodePage(t, r); len(page.Items) != 0 || string(r.body) != "{\"items\":[],\"next_cursor\":null}\n" {
			t.Errorf("%v, want 200 with items [] and next_cursor null", r)
		}
	})
}

// pagingFixture is a product made for the paging tests.
type pagingFixture struct {
	id    uuid.UUID
	name  string
	price int // cents
	order int // creation order
}

func TestListProductsPaging(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	const n = 25
	var all []pagingFixture
	for i := range n {
		// Prices and names repeat, so pages also break inside runs of equal keys.
		f := pagingFixture{name: fmt.Sprintf("Item %02d", i%10), price: (i % 4) * 150, order: i}
		p := a.create(t, validDraft(user).with("product_name", f.name).with("product_price", raw(strconv.Itoa(f.price/100)+"."+fmt.Sprintf("%02d", f.price%100))))
		f.id = p.ID
		all = append(all, f)
	}
	byID := func(x, y pagingFixture) int { return strings.Compare(x.id.String(), y.id.String()) }
	orders := map[string]func(x, y pagingFixture) int{
		"created_at":  func(x, y pagingFixture) int { return cmp.Compare(x.order, y.order) },
		"-created_at": func(x, y pagingFixture) int { return cmp.Compare(y.order, x.order) },
		"price":       func(x, y pagingFixture) int { return cmp.Or(cmp.Compare(x.price, y.price), byID(x, y)) },
		"-price":      func(x, y pagingFixture) int { return cmp.Or(cmp.Compare(y.price, x.price), byID(y, x)) },
		"name":        func(x, y pagingFixture) int { return cmp.Or(strings.Compare(x.name, y.name), byID(x, y)) },
	}
	for sortName, order := range orders {
		t.Run("walk sort "+sortName, func(t *testing.T) {
			t.Parallel()
			want := slices.Clone(all)
			slices.SortFunc(want, order)
			wantIDs := make([]uuid.UUID, len(want))
			for i, f := range want {
				wantIDs[i] = f.id
			}

			var got []uuid.UUID
			seen := map[uuid.UUID]bool{}
			cursor, pages := "", 0
			for {
				params := []string{"user_id", user.String(), "sort", sortName, "limit", "7"}
				if cursor != "" {
					params = append(params, "cursor", cursor)
				}
				path := listPath(params...)
				page := decodePage(t, a.do(t, http.MethodGet, path, ""))
				pages++
				if len(page.Items) > 7 || len(page.Items) == 0 {
					t.Fatalf("GET %s: %d items, want 1 to 7", path, len(page.Items))
				}
				for _, p := range page.Items {
					if seen[p.ID] {
						t.Errorf("GET %s: product %s again, already on an earlier page", path, p.ID)
					}
					seen[p.ID] = true
					got = append(got, p.ID)
				}
				if page.NextCursor == nil {
					break
				}
				if pages > n {
					t.Fatalf("GET %s: still a next_cursor after %d pages", path, pages)
				}
				cursor = *page.NextCursor
			}
			if pages != 4 {
				t.Errorf("walking %d products 7 at a time by %s: %d pages, want 4", n, sortName, pages)
			}
			if diff := gocmp.Diff(wantIDs, got); diff != "" {
				t.Errorf("walking %d products 7 at a time by %s: ids (-want +got):\n%s", n, sortName, diff)
			}
		})
	}

	t.Run("default limit", func(t *testing.T) {
		t.Parallel()
		path := listPath("user_id", user.String())
		first := decodePage(t, a.do(t, http.MethodGet, path, ""))
		if len(first.Items) != 20 || first.NextCursor == nil {
			t.Fatalf("GET %s over %d products: %d items, next_cursor %v, want 20 and a cursor", path, n, len(first.Items), first.NextCursor)
		}
		next := listPath("user_id", user.String(), "cursor", *first.NextCursor)
		second := decodePage(t, a.do(t, http.MethodGet, next, ""))
		if len(second.Items) != 5 || second.NextCursor != nil {
			t.Errorf("GET %s: %d items, next_cursor %v, want 5 and none", next, len(second.Items), second.NextCursor)
		}
	})
	t.Run("limit 100", func(t *testing.T) {
		t.Parallel()
		path := listPath("user_id", user.String(), "limit", "100")
		page := decodePage(t, a.do(t, http.MethodGet, path, ""))
		if len(page.Items) != n || page.NextCursor != nil {
			t.Errorf("GET %s: %d items, next_cursor %v, want %d and none", path, len(page.Items), page.NextCursor, n)
		}
	})
	t.Run("limit 100 over every product", func(t *testing.T) {
		t.Parallel()
		page := decodePage(t, a.do(t, http.MethodGet, listPath("limit", "100"), ""))
		if len(page.Items) > 100 {
			t.Errorf("GET limit=100: %d items, want at most 100", len(page.Items))
		}
	})
	t.Run("exact pages end without a cursor", func(t *testing.T) {
		t.Parallel()
		path := listPath("user_id", user.String(), "limit", "25")
		page := decodePage(t, a.do(t, http.MethodGet, path, ""))
		if len(page.Items) != n || page.NextCursor != nil {
			t.Errorf("GET %s: %d items, next_cursor %v, want %d and none", path, len(page.Items), page.NextCursor, n)
		}
	})
	t.Run("a cursor may change the limit", func(t *testing.T) {
		t.Parallel()
		first := decodePage(t, a.do(t, http.MethodGet, listPath("user_id", user.String(), "limit", "5"), ""))
		path := listPath("user_id", user.String(), "limit", "30", "cursor", *first.NextCursor)
		rest := decodePage(t, a.do(t, http.MethodGet, path, ""))
		if len(rest.Items) != n-5 {
			t.Errorf("GET %s: %d items, want %d", path, len(rest.Items), n-5)
		}
	})
}

func TestListProductsRejectsBadParameters(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	for range 3 {
		a.create(t, validDraft(user))
	}
	u := user.String()
	first := decodePage(t, a.do(t, http.MethodGet, listPath("user_id", u, "limit", "1"), ""))
	if first.NextCursor == nil {
		t.Fatalf("GET user_id=%s&limit=1 over 3 products: no next_cursor", u)
	}
	cursor := *first.NextCursor
	flipped := []byte(cursor)
	mid := len(flipped) / 2
	if flipped[mid] == 'A' {
		flipped[mid] = 'B'
	} else {
		flipped[mid] = 'A'
	}

	tests := []struct {
		name   string
		query  string // raw query string
		fields []string
	}{
		{"min over max", "min_price=10&max_price=5", []string{"min_price"}},
		{"bad user_id", "user_id=abc", []string{"user_id"}},
		{"empty user_id", "user_id=", []string{"user_id"}},
		{"bad min_price", "min_price=cheap", []string{"min_price"}},
		{"empty min_price", "min_price=", []string{"min_price"}},
		{"negative min_price", "min_price=-1", []string{"min_price"}},
		{"max_price of 10^10", "max_price=10000000000", []string{"max_price"}},
		{"max_price with 3 decimals", "max_price=1.234", []string{"max_price"}},
		{"min_price in exponent form", "min_price=1e3", []string{"min_price"}},
		{"limit 0", "limit=0", []string{"limit"}},
		{"limit -1", "limit=-1", []string{"limit"}},
		{"limit 101", "limit=101", []string{"limit"}},
		{"limit 1000", "limit=1000", []string{"limit"}},
		{"limit abc", "limit=abc", []string{"limit"}},
		{"limit empty", "limit=", []string{"limit"}},
		{"limit 1.5", "limit=1.5", []string{"limit"}},
		{"limit huge", "limit=99999999999999999999", []string{"limit"}},
		{"unknown sort", "sort=popularity", []string{"sort"}},
		{"sort in upper case", "sort=PRICE", []string{"sort"}},
		{"descending name", "sort=-name", []string{"sort"}},
		{"empty sort", "sort=", []string{"sort"}},
		{"unknown parameter", "colour=red", []string{"colour"}},
		{"misspelt parameter", "user=" + u, []string{"user"}},
		{"repeated parameter", "limit=5&limit=6", []string{"limit"}},
		{"repeated user_id", "user_id=" + u + "&user_id=" + u, []string{"user_id"}},
		{"empty name", "name=", []string{"name"}},
		{"name of 256 characters", "name=" + strings.Repeat("n", 256), []string{"name"}},
		{"name of 256 two-byte characters", "name=" + url.QueryEscape(strings.Repeat("é", 256)), []string{"name"}},
		{"name with NUL", "name=a%00b", []string{"name"}},
		{"name not UTF-8", "name=%FF%FE", []string{"name"}},
		{"garbage cursor", "cursor=!!!not-a-cursor!!!", []string{"cursor"}},
		{"base64 cursor not ours", "cursor=eyJ0IjoxfQ", []string{"cursor"}},
		{"empty cursor", "cursor=", []string{"cursor"}},
		{"flipped cursor", "user_id=" + u + "&limit=1&cursor=" + string(flipped), []string{"cursor"}},
		{"truncated cursor", "user_id=" + u + "&limit=1&cursor=" + cursor[:len(cursor)-5], []string{"cursor"}},
		{"cursor cut in half", "user_id=" + u + "&limit=1&cursor=" + cursor[:len(cursor)/2], []string{"cursor"}},
		{"cursor with another user", "user_id=" + uuid.NewString() + "&limit=1&cursor=" + cursor, []string{"cursor"}},
		{"cursor without the user filter", "limit=1&cursor=" + cursor, []string{"cursor"}},
		{"cursor with another sort", "user_id=" + u + "&sort=price&limit=1&cursor=" + cursor, []string{"cursor"}},
		{"cursor with a price filter", "user_id=" + u + "&min_price=1&limit=1&cursor=" + cursor, []string{"cursor"}},
		{"cursor with a name filter", "user_id=" + u + "&name=Lamp&limit=1&cursor=" + cursor, []string{"cursor"}},
		{"several unreadable", "limit=x&min_price=y&user_id=z&colour=red", []string{"limit", "min_price", "user_id", "colour"}},
		{"several out of range", "limit=0&sort=x&min_price=2&max_price=1", []string{"limit", "sort", "min_price"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := a.do(t, http.MethodGet, "/api/v1/products?"+tt.query, "")
			wantError(t, r, http.StatusBadRequest, "validation_failed", tt.fields...)
		})
	}

	t.Run("hand-made cursor", func(t *testing.T) {
		t.Parallel()
		// A cursor is checksummed, not signed, so a client can make one; the
		// one with a valid name shows that the token below is well made.
		for _, tt := range []struct {
			name   string
			status int
		}{{"Lamp", http.StatusOK}, {"Lamp\x00", http.StatusBadRequest}} {
			token := handMadeCursor(t, user, "name", tt.name)
			r := a.do(t, http.MethodGet, listPath("user_id", u, "sort", "name", "cursor", token), "")
			if tt.status == http.StatusOK {
				decodePage(t, r)
				continue
			}
			wantError(t, r, tt.status, "validation_failed", "cursor")
		}
	})
	t.Run("cursor kept intact", func(t *testing.T) {
		t.Parallel()
		path := listPath("user_id", u, "limit", "1", "cursor", cursor)
		page := decodePage(t, a.do(t, http.MethodGet, path, ""))
		if len(page.Items) != 1 || page.Items[0].ID == first.Items[0].ID {
			t.Errorf("GET %s: %d items, want the second product", path, len(page.Items))
		}
	})
}

// handMadeCursor builds a cursor the way product.Cursor.String does, for a
// list of the user's products in the given order, positioned after name.
func handMadeCursor(t *testing.T, user uuid.UUID, sort, name string) string {
	t.Helper()
	h := sha256.New()
	for _, s := range []string{user.String(), "", "", "", sort} { // user, min, max, name filter, sort
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	body, err := json.Marshal(map[string]any{
		"t": time.Now().UTC(), "p": 0, "n": name, "i": uuid.Nil, "f": binary.BigEndian.Uint32(h.Sum(nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	return base64.RawURLEncoding.EncodeToString(append(body, sum[:8]...))
}

// TestListProductsNameEverywhere searches names across every user's
// products, where other tests' products are present too.
func TestListProductsNameEverywhere(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	user := a.newUser(t)
	tag := "Zq" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	var all []pagingFixture
	add := func(name string, cents int) {
		p := a.create(t, validDraft(user).with("product_name", name).with("product_price", raw(fmt.Sprintf("%d.%02d", cents/100, cents%100))))
		all = append(all, pagingFixture{id: p.ID, name: name, price: cents, order: len(all)})
	}
	for i := range 9 {
		add(fmt.Sprintf("%s item %d", tag, i%4), (i%3)*100)
	}
	add("50% "+tag, 50)
	add("50x "+tag, 50)

	literal := []struct {
		name string
		want []string
	}{
		{"50% " + tag, []string{"50% " + tag}},
		{"50_ " + tag, []string{}},
		{"% " + strings.ToLower(tag), []string{"50% " + tag}},
	}
	for _, tt := range literal {
		path := listPath("name", tt.name)
		page := decodePage(t, a.do(t, http.MethodGet, path, ""))
		if diff := gocmp.Diff(tt.want, names(page.Items)); diff != "" {
			t.Errorf("GET %s: names (-want +got):\n%s", path, diff)
		}
	}

	byID := func(x, y pagingFixture) int { return strings.Compare(x.id.String(), y.id.String()) }
	orders := map[string]func(x, y pagingFixture) int{
		"created_at":  func(x, y pagingFixture) int { return cmp.Compare(x.order, y.order) },
		"-created_at": func(x, y pagingFixture) int { return cmp.Compare(y.order, x.order) },
		"price":       func(x, y pagingFixture) int { return cmp.Or(cmp.Compare(x.price, y.price), byID(x, y)) },
		"-price":      func(x, y pagingFixture) int { return cmp.Or(cmp.Compare(y.price, x.price), byID(y, x)) },
		"name":        func(x, y pagingFixture) int { return cmp.Or(strings.Compare(x.name, y.name), byID(x, y)) },
	}
	for sortName, order := range orders {
		want := slices.Clone(all)
		slices.SortFunc(want, order)
		var wantIDs, got []uuid.UUID
		for _, f := range want {
			wantIDs = append(wantIDs, f.id)
		}
		cursor := ""
		for range len(all) {
			params := []string{"name", strings.ToLower(tag), "sort", sortName, "limit", "4"}
			if cursor != "" {
				params = append(params, "cursor", cursor)
			}
			page := decodePage(t, a.do(t, http.MethodGet, listPath(params...), ""))
			for _, p := range page.Items {
				got = append(got, p.ID)
			}
			if page.NextCursor == nil {
				break
			}
			cursor = *page.NextCursor
		}
		if diff := gocmp.Diff(wantIDs, got); diff != "" {
			t.Errorf("walking name=%s sort=%s 4 at a time: ids (-want +got):\n%s", strings.ToLower(tag), sortName, diff)
		}
	}
}
