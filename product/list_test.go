package product_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/product"
)

func TestFilterValidate(t *testing.T) {
	price := func(p product.Price) *product.Price { return &p }
	tests := []struct {
		name string
		edit func(*product.Filter)
		want string
	}{
		{"ok", func(*product.Filter) {}, ""},
		{"min > max", func(f *product.Filter) { f.MinPrice, f.MaxPrice = price(500), price(100) }, "min_price: must not be greater than max_price"},
		{"min = max", func(f *product.Filter) { f.MinPrice, f.MaxPrice = price(500), price(500) }, ""},
		{"limit 0", func(f *product.Filter) { f.Limit = 0 }, "limit: must be between 1 and 100"},
		{"limit 101", func(f *product.Filter) { f.Limit = 101 }, "limit: must be between 1 and 100"},
		{"bad sort", func(f *product.Filter) { f.Sort = "colour" }, "sort: must be one of created_at, -created_at, price, -price, name"},
		{"negative min", func(f *product.Filter) { f.MinPrice = price(-1) }, "min_price: must be between 0 and 9999999999.99"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := product.Filter{Sort: product.SortCreated, Limit: 20}
			tt.edit(&f)
			if got := strings.TrimPrefix(errText(f.Validate()), "invalid input: "); got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCursorRoundTrip(t *testing.T) {
	in := product.Cursor{CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), Price: 1234, Name: "Lamp", ID: uuid.New()}
	out, err := product.ParseCursor(in.String())
	if err != nil {
		t.Fatalf("ParseCursor(%q) error %v", in.String(), err)
	}
	if !out.CreatedAt.Equal(in.CreatedAt) || out.Price != in.Price || out.Name != in.Name || out.ID != in.ID {
		t.Errorf("ParseCursor(String()) = %+v, want %+v", *out, in)
	}
}

// TestCursorJSONMatchesEncodingJSON: a cursor's body is written by hand as
// json.Marshal wrote it, so tokens stay the same.
func TestCursorJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 2, 14, 50, 56, 123456000, time.UTC)
	for _, c := range []product.Cursor{
		{},
		{CreatedAt: at, Price: 1234, Name: "Lamp", ID: uuid.New()},
		{CreatedAt: at.Add(-123456000), Price: product.MaxPrice, Name: `Schreibtischlampe «Nº 1» & <Zubehör> "warm"\`, ID: uuid.New()},
		{CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 1, time.FixedZone("", -8*3600)), Name: "tab\tnul\x00del\x7f\u2028 \xff", ID: uuid.New()},
		{CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Name: "year 10000"},
		{CreatedAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), Name: "year -1"},
		{CreatedAt: at.In(time.FixedZone("", 24*3600)), Name: "offset 24h"},
	} {
		for _, filter := range []uint32{0, 1, 1<<32 - 1} {
			body, want := product.CursorJSON(c, filter)
			if !bytes.Equal(body, want) {
				t.Errorf("cursor %+v, filter %d: body %s, json.Marshal %s", c, filter, body, want)
			}
		}
	}
}

func TestParseCursorRefusesAlteredCursors(t *testing.T) {
	good := product.Cursor{Price: 100, Name: "Lamp", ID: uuid.New()}.String()
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	flipped := append([]byte(nil), raw...)
	flipped[5] ^= 1
	for name, s := range map[string]string{
		"empty":     "",
		"garbage":   "not a cursor!",
		"truncated": good[:len(good)-3],
		"flipped":   base64.RawURLEncoding.EncodeToString(flipped),
		"json only": base64.RawURLEncoding.EncodeToString([]byte(`{"p":1}`)),
	} {
		if _, err := product.ParseCursor(s); err != product.ErrBadCursor {
			t.Errorf("ParseCursor(%s %q) error = %v, want ErrBadCursor", name, s, err)
		}
	}
}

func TestParseCursorRefusesWhatNoProductHolds(t *testing.T) {
	for name, c := range map[string]product.Cursor{
		"negative price":         {Price: -1},
		"price over the maximum": {Price: product.MaxPrice + 1},
		"name of 256 characters": {Name: strings.Repeat("é", 256)},
		"name with NUL":          {Name: "Lamp\x00"},
	} {
		if got, err := product.ParseCursor(c.String()); err != product.ErrBadCursor {
			t.Errorf("ParseCursor(cursor with %s) = %+v, %v, want ErrBadCursor", name, got, err)
		}
	}
	if got, err := product.ParseCursor(strings.Repeat("A", product.MaxCursorLen+1)); err != product.ErrBadCursor {
		t.Errorf("ParseCursor(%d characters) = %+v, %v, want ErrBadCursor", product.MaxCursorLen+1, got, err)
	}
}

func TestLongestCursorFits(t *testing.T) {
	// json.Marshal writes < as \u003c: six bytes for one character.
	c := product.Cursor{CreatedAt: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.FixedZone("", -(23*3600+59*60))),
		Price: product.MaxPrice, Name: strings.Repeat("<", product.MaxNameLen), ID: uuid.New()}
	s := c.String()
	if len(s) > product.MaxCursorLen {
		t.Fatalf("a cursor after the longest name is %d characters, more than MaxCursorLen %d", len(s), product.MaxCursorLen)
	}
	if got, err := product.ParseCursor(s); err != nil || got.Name != c.Name || got.Price != c.Price {
		t.Errorf("ParseCursor(longest cursor) = %+v, %v, want it back", got, err)
	}
}

func TestIdempotencyKeyProblem(t *testing.T) {
	for key, ok := range map[string]bool{
		"k":                             true,
		uuid.NewString():                true,
		"!~" + strings.Repeat("a", 253): true,
		strings.Repeat("a", 256):        false,
		"":                              false,
		"a b":                           false,
		"a\tb":                          false,
		"a\x00b":                        false,
		"a\x7fb":                        false,
		"clé":                           false,
		"key-\xff":                      false,
	} {
		if got := product.IdempotencyKeyProblem(key); (got == "") != ok {
			t.Errorf("IdempotencyKeyProblem(%q) = %q, want ok %v", key, got, ok)
		}
	}
}
