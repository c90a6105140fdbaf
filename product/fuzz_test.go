package product_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/product"
)

// holdable reports whether a product could have these values: what a
// cursor after it may hold.
func holdable(price product.Price, name string) bool {
	return price >= 0 && price <= product.MaxPrice && utf8.ValidString(name) && !strings.ContainsRune(name, 0) &&
		utf8.RuneCountInString(name) <= product.MaxNameLen
}

// FuzzParseCursor feeds ParseCursor any token, and cursors made from any
// values. A token is refused with ErrBadCursor or parses to values a product
// can hold, which encode to a token that parses to them again; a cursor made
// by String parses back to what it was made of exactly when a product could
// hold that, and always fits in MaxCursorLen.
func FuzzParseCursor(f *testing.F) {
	lamp := product.Cursor{CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), Price: 1250, Name: "Lamp", ID: uuid.MustParse("0191d5f0-0000-7000-8000-000000000001")}
	f.Add(lamp.String(), "Lamp", int64(1250), int64(1767225600000000000), []byte(lamp.ID[:]))
	f.Add("", "", int64(0), int64(0), []byte{})
	f.Add("eyJ0IjoxfQ", "Lamp\x00", int64(-1), int64(-1), []byte{1, 2, 3})
	f.Add(strings.Repeat("A", 5000), strings.Repeat("<", 255), int64(product.MaxPrice), int64(1<<62), make([]byte, 16))
	f.Add("!!!", "\xff", int64(product.MaxPrice)+1, int64(-1<<62), []byte("0123456789abcdef"))
	f.Fuzz(func(t *testing.T, token, name string, price, nanos int64, id []byte) {
		if c, err := product.ParseCursor(token); err != nil {
			if err != product.ErrBadCursor {
				t.Fatalf("ParseCursor(%q) error %v, want ErrBadCursor", token, err)
			}
		} else {
			if !holdable(c.Price, c.Name) {
				t.Fatalf("ParseCursor(%q) = %+v, which no product can be", token, *c)
			}
			wantRoundTrip(t, *c)
		}

		c := product.Cursor{CreatedAt: time.Unix(0, nanos).UTC(), Price: product.Price(price), Name: name}
		if u, err := uuid.FromBytes(id); err == nil {
			c.ID = u
		}
		if !utf8.ValidString(name) {
			return // String writes U+FFFD for what is not UTF-8: another name
		}
		got, err := product.ParseCursor(c.String())
		switch {
		case holdable(c.Price, c.Name) && err != nil:
			t.Fatalf("ParseCursor(%+v.String()) error %v, want it back", c, err)
		case !holdable(c.Price, c.Name) && err == nil:
			t.Fatalf("ParseCursor(%+v.String()) = %+v, want ErrBadCursor: no product can be that", c, *got)
		case err == nil:
			wantRoundTrip(t, c)
		}
	})
}

// wantRoundTrip checks that c survives String and ParseCursor whole, in a
// token no longer than MaxCursorLen.
func wantRoundTrip(t *testing.T, c product.Cursor) {
	t.Helper()
	s := c.String()
	if len(s) > product.MaxCursorLen {
		t.Fatalf("%+v.String() is %d characters, more than MaxCursorLen", c, len(s))
	}
	back, err := product.ParseCursor(s)
	if err != nil {
		t.Fatalf("ParseCursor(%+v.String()) error %v", c, err)
	}
	if !back.CreatedAt.Equal(c.CreatedAt) || back.Price != c.Price || back.Name != c.Name || back.ID != c.ID {
		t.Fatalf("ParseCursor(%+v.String()) = %+v, want it back", c, *back)
	}
	if back.String() != s {
		t.Fatalf("%+v encodes to %q, and parsed back to %q", c, s, back.String())
	}
}
