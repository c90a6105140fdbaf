package product

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Sort is the order of a product list: a key, descending when prefixed with "-".
type Sort string

// The orders a list may have.
const (
	SortCreated     Sort = "created_at"
	SortCreatedDesc Sort = "-created_at"
	SortPrice       Sort = "price"
	SortPriceDesc   Sort = "-price"
	SortName        Sort = "name"
)

// Valid reports whether s is one of the known orders.
func (s Sort) Valid() bool {
	switch s {
	case SortCreated, SortCreatedDesc, SortPrice, SortPriceDesc, SortName:
		return true
	}
	return false
}

// Key returns the sort key without its direction.
func (s Sort) Key() string {
	if s != "" && s[0] == '-' {
		return string(s[1:])
	}
	return string(s)
}

// Desc reports whether the order is descending.
func (s Sort) Desc() bool { return s != "" && s[0] == '-' }

// List limits.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// Filter selects and orders a page of products. Nil pointers and "" mean
// "any".
type Filter struct {
	UserID   *uuid.UUID
	MinPrice *Price
	MaxPrice *Price
	Name     string // case-insensitive substring of product_name
	Sort     Sort
	Limit    int
	After    *Cursor // where the previous page ended
}

// Validate returns a *ValidationError naming every contradictory or
// out-of-range parameter, or nil.
func (f Filter) Validate() error {
	var ps Problems
	if f.MinPrice != nil {
		checkPriceParam(&ps, "min_price", *f.MinPrice)
	}
	if f.MaxPrice != nil {
		checkPriceParam(&ps, "max_price", *f.MaxPrice)
	}
	if f.MinPrice != nil && f.MaxPrice != nil && *f.MinPrice > *f.MaxPrice {
		ps.Add("min_price", "must not be greater than max_price")
	}
	switch {
	case utf8.RuneCountInString(f.Name) > MaxNameLen:
		ps.Add("name", "must be at most 255 characters")
	case !utf8.ValidString(f.Name) || strings.ContainsRune(f.Name, 0):
		ps.Add("name", "must be UTF-8 text without NUL characters")
	}
	if !f.Sort.Valid() {
		ps.Add("sort", "must be one of created_at, -created_at, price, -price, name")
	}
	if f.Limit < 1 || f.Limit > MaxLimit {
		ps.Add("limit", "must be between 1 and 100")
	}
	if f.After != nil && f.After.filter != f.fingerprint() {
		ps.Add("cursor", "belongs to a list with other filters or order")
	} else if f.After != nil && !f.After.valid() {
		ps.Add("cursor", ErrBadCursor.Error())
	}
	return ps.Err()
}

func checkPriceParam(ps *Problems, field string, p Price) {
	if p < 0 || p > MaxPrice {
		ps.Add(field, "must be between 0 and 9999999999.99")
	}
}

// fingerprint identifies the filters and order a cursor was made for, so a
// cursor cannot be replayed against a different list.
func (f Filter) fingerprint() uint32 {
	h := sha256.New()
	var buf [8]byte
	put := func(s string) {
		binary.BigEndian.PutUint64(buf[:], uint64(len(s)))
		h.Write(buf[:])
		h.Write([]byte(s))
	}
	if f.UserID != nil {
		put(f.UserID.String())
	} else {
		put("")
	}
	for _, p := range []*Price{f.MinPrice, f.MaxPrice} {
		if p != nil {
			put(p.String())
		} else {
			put("")
		}
	}
	put(f.Name)
	put(string(f.Sort))
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// Page is one page of a product list.
type Page struct {
	Items []Product
	Next  *Cursor // nil on the last page
}

// Cursor marks the last product of a page in its list's order.
type Cursor struct {
	CreatedAt time.Time
	Price     Price
	Name      string
	ID        uuid.UUID
	filter    uint32
}

// cursorAfter returns the cursor that continues f after p.
func cursorAfter(f Filter, p Product) *Cursor {
	return &Cursor{CreatedAt: p.CreatedAt, Price: p.Price, Name: p.Name, ID: p.ID, filter: f.fingerprint()}
}

type cursorJSON struct {
	T time.Time `json:"t"`
	P int64     `json:"p"`
	N string    `json:"n"`
	I uuid.UUID `json:"i"`
	F uint32    `json:"f"`
}

// cursorCheckLen is how many bytes of SHA-256 guard a cursor against edits.
// The check is for integrity only: every list query applies the caller's
// filters whatever the cursor says.
const cursorCheckLen = 8

// ErrBadCursor is returned by ParseCursor for a cursor this package did not make.
var ErrBadCursor = errors.New("cursor is malformed or was altered")

// MaxCursorLen is the length of the longest cursor ParseCursor reads: more
// than a cursor after the longest name takes.
const MaxCursorLen = 4096

// valid reports whether the cursor holds only what a product can: cursors
// are checked, not signed, so one can be made by hand.
func (c Cursor) valid() bool {
	return c.Price >= 0 && c.Price <= MaxPrice && utf8.ValidString(c.Name) && !strings.ContainsRune(c.Name, 0) &&
		utf8.RuneCountInString(c.Name) <= MaxNameLen
}

// String encodes the cursor as an opaque URL-safe token.
func (c Cursor) String() string {
	var buf [256]byte
	body := c.appendJSON(buf[:0])
	sum := sha256.Sum256(body)
	return base64.RawURLEncoding.EncodeToString(append(body, sum[:cursorCheckLen]...))
}

// appendJSON appends what json.Marshal makes of the cursor as a cursorJSON,
// written member by member: a list page ends with a cursor, and
// encoding/json's reflection cost it more than the rest of the cursor
// (issue 9). Like json.Marshal's, the result is empty for a time that RFC
// 3339 cannot write.
func (c Cursor) appendJSON(b []byte) []byte {
	start := len(b)
	b = append(b, `{"t":"`...)
	b, err := c.CreatedAt.AppendText(b)
	if err != nil {
		return b[:start]
	}
	b = append(b, `","p":`...)
	b = strconv.AppendInt(b, int64(c.Price), 10)
	b = append(b, `,"n":`...)
	if plainJSON(c.Name) {
		b = append(append(append(b, '"'), c.Name...), '"')
	} else {
		name, _ := json.Marshal(c.Name) // a string: cannot fail
		b = append(b, name...)
	}
	b = append(b, `,"i":"`...)
	b = append(b, c.ID.String()...)
	b = append(b, `","f":`...)
	b = strconv.AppendUint(b, uint64(c.filter), 10)
	return append(b, '}')
}

// plainJSON reports whether json.Marshal writes s as it is, between quotes:
// printable ASCII without the quote, the backslash, <, > and &.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < ' ' || c >= utf8.RuneSelf, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// ParseCursor decodes a token made by Cursor.String, or returns ErrBadCursor
// for a token that is too long, altered, or holds what no product can.
func ParseCursor(s string) (*Cursor, error) {
	if len(s) > MaxCursorLen {
		return nil, ErrBadCursor
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) <= cursorCheckLen {
		return nil, ErrBadCursor
	}
	body, check := raw[:len(raw)-cursorCheckLen], raw[len(raw)-cursorCheckLen:]
	if sum := sha256.Sum256(body); string(sum[:cursorCheckLen]) != string(check) {
		return nil, ErrBadCursor
	}
	var cj cursorJSON
	if err := json.Unmarshal(body, &cj); err != nil {
		return nil, ErrBadCursor
	}
	c := &Cursor{CreatedAt: cj.T, Price: Price(cj.P), Name: cj.N, ID: cj.I, filter: cj.F}
	if !c.valid() {
		return nil, ErrBadCursor
	}
	return c, nil
}
