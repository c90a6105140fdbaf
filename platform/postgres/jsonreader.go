package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// jsonReader reads JSON values from s, from position i on.
type jsonReader struct {
	s string
	i int
}

// errJSONEnd reports JSON that ends before its value does.
var errJSONEnd = errors.New("unexpected end of JSON")

// fail returns an error that says what was wanted where.
func (r *jsonReader) fail(want string) error {
	if r.i >= len(r.s) {
		return errJSONEnd
	}
	return fmt.Errorf("want %s at offset %d of the JSON, found %q", want, r.i, r.s[r.i])
}

// space skips white space and returns the next byte, 0 at the end (a
// NUL byte, which JSON never holds outside strings, also reads as 0).
func (r *jsonReader) space() byte {
	for ; r.i < len(r.s); r.i++ {
		switch c := r.s[r.i]; c {
		case ' ', '\t', '\n', '\r':
		default:
			return c
		}
	}
	return 0
}

// end fails unless only white space is left.
func (r *jsonReader) end() error {
	if r.space(); r.i < len(r.s) {
		return r.fail("the end")
	}
	return nil
}

// null consumes a null and reports whether there was one.
func (r *jsonReader) null() bool {
	if r.space() == 'n' && strings.HasPrefix(r.s[r.i:], "null") {
		r.i += len("null")
		return true
	}
	return false
}

// list reads a list, calling elem to read each element; null is an empty
// list.
func (r *jsonReader) list(elem func() error) error {
	if r.null() {
		return nil
	}
	if r.space() != '[' {
		return r.fail("a list")
	}
	r.i++
	if r.space() == ']' {
		r.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch r.space() {
		case ',':
			r.i++
		case ']':
			r.i++
			return nil
		default:
			return r.fail("',' or ']'")
		}
	}
}

// object reads an object, calling member with each key to read its value;
// null is an empty object.
func (r *jsonReader) object(member func(key string) error) error {
	if r.null() {
		return nil
	}
	if r.space() != '{' {
		return r.fail("an object")
	}
	r.i++
	if r.space() == '}' {
		r.i++
		return nil
	}
	for {
		if r.space() != '"' {
			return r.fail("a key")
		}
		key, err := r.str()
		if err != nil {
			return err
		}
		if r.space() != ':' {
			return r.fail("':'")
		}
		r.i++
		if err := member(key); err != nil {
			return err
		}
		switch r.space() {
		case ',':
			r.i++
		case '}':
			r.i++
			return nil
		default:
			return r.fail("',' or '}'")
		}
	}
}

// str reads a string; null is "".
func (r *jsonReader) str() (string, error) {
	if r.null() {
		return "", nil
	}
	if r.space() != '"' {
		return "", r.fail("a string")
	}
	start, escaped, ascii := r.i+1, false, true
	for j := start + plainPrefix(r.s[start:]); j < len(r.s); j++ {
		c := r.s[j]
		if plainByte[c] {
			continue
		}
		switch {
		case c == '"':
			r.i = j + 1
			if v := r.s[start:j]; !escaped && (ascii || utf8.ValidString(v)) {
				return v, nil
			}
			return unquote(r.s[start-1 : j+1])
		case c == '\\':
			escaped = true
			j++
		case c < ' ':
			r.i = j
			return "", r.fail("a string character")
		default:
			ascii = false
		}
	}
	r.i = len(r.s)
	return "", r.fail("a string")
}

// plainByte reports, for each byte, whether a JSON string may hold it as
// it is and it stands for itself: printable ASCII but the quote and the
// backslash.
var plainByte = func() (plain [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		plain[c] = c != '"' && c != '\\'
	}
	return plain
}()

// plainPrefix returns the length of a prefix of s whose bytes are all
// plainByte, looking at eight bytes at a time (a byte at a time cost the
// decoder a fifth of its time). The prefix is a multiple of eight bytes
// long; the rest of s is for the caller to look at.
func plainPrefix(s string) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	// zero is non-zero when a byte of v is zero (exactly, as a boolean).
	zero := func(v uint64) uint64 { return (v - ones) &^ v & highs }
	i := 0
	for ; i+8 <= len(s); i += 8 {
		t := s[i : i+8] // of known length: no bounds checks below
		w := uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24 |
			uint64(t[4])<<32 | uint64(t[5])<<40 | uint64(t[6])<<48 | uint64(t[7])<<56
		// A byte of 0x80 or more, one below ' ' (exact once those are
		// ruled out), a quote or a backslash ends the prefix.
		if w&highs|(w-' '*ones)&^w&highs|zero(w^('"'*ones))|zero(w^('\\'*ones)) != 0 {
			break
		}
	}
	return i
}

// unquote decodes a JSON string with escapes or invalid UTF-8 as
// encoding/json does, which is rare enough not to be worth a copy of.
func unquote(quoted string) (string, error) {
	var s string
	if err := json.Unmarshal([]byte(quoted), &s); err != nil {
		return "", err
	}
	return s, nil
}

// int reads a whole number; null is 0.
func (r *jsonReader) int() (int, error) {
	if r.null() {
		return 0, nil
	}
	r.space()
	start := r.i
	r.number()
	n, err := strconv.Atoi(r.s[start:r.i])
	if err != nil {
		r.i = start
		return 0, r.fail("a whole number")
	}
	return n, nil
}

// number moves past the bytes a JSON number may be made of.
func (r *jsonReader) number() {
	for ; r.i < len(r.s); r.i++ {
		switch c := r.s[r.i]; {
		case '0' <= c && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
		default:
			return
		}
	}
}

// uuid reads a UUID string; null is the nil UUID.
func (r *jsonReader) uuid() (uuid.UUID, error) {
	if r.null() {
		return uuid.Nil, nil
	}
	at := r.i
	s, err := r.str()
	if err != nil {
		return uuid.Nil, err
	}
	id, err := uuid.Parse(s)
	if err != nil {
		r.i = at
		return uuid.Nil, r.fail("a UUID")
	}
	return id, nil
}

// time reads an RFC 3339 time and returns it in UTC; null is the zero
// time.
func (r *jsonReader) time() (time.Time, error) {
	if r.null() {
		return time.Time{}, nil
	}
	at := r.i
	s, err := r.str()
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		r.i = at
		return time.Time{}, r.fail("an RFC 3339 time")
	}
	return t.UTC(), nil
}

// skip reads a value of any kind and drops it.
func (r *jsonReader) skip() error {
	switch c := r.space(); {
	case c == '"':
		_, err := r.str()
		return err
	case c == '[':
		return r.list(r.skip)
	case c == '{':
		return r.object(func(string) error { return r.skip() })
	case c == 't' && strings.HasPrefix(r.s[r.i:], "true"):
		r.i += len("true")
	case c == 'f' && strings.HasPrefix(r.s[r.i:], "false"):
		r.i += len("false")
	case c == 'n' && r.null():
	case c == '-' || '0' <= c && c <= '9':
		at := r.i
		r.number()
		if _, err := strconv.ParseFloat(r.s[at:r.i], 64); err != nil && !errors.Is(err, strconv.ErrRange) {
			r.i = at
			return r.fail("a number")
		}
	default:
		return r.fail("a value")
	}
	return nil
}
