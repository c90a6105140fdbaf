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

	"github.com/pms-dev/pms/product"
)

// The images of a product arrive as one JSON list (productColumns), and
// idempotency snapshots keep them the same way ([]imageRow). decodeImages
// reads that list member by member instead of through encoding/json's
// reflection, which cost a list page of the default ladder more CPU than
// the rest of the page (BENCHMARKS.md, issue 9). It decodes what
// json.Unmarshal into []imageRow decoded: keys match case-insensitively,
// unknown keys are skipped, null leaves a member at its zero value.
// Strings without escapes are slices of the one string the list is read
// into, so they cost no allocation.

// imageDecoder decodes images columns; its buffers are reused from one
// column to the next.
type imageDecoder struct {
	images   []product.Image
	variants []product.Variant
}

// noImages is the images of a product without any: empty, not nil, as
// json.Unmarshal made them.
var noImages = []product.Image{}

// decode returns the images of the JSON list s, in its order.
func (d *imageDecoder) decode(s string) ([]product.Image, error) {
	r := jsonReader{s: s}
	d.images = d.images[:0]
	err := r.list(func() error {
		im, err := d.image(&r)
		d.images = append(d.images, im)
		return err
	})
	if err == nil {
		err = r.end()
	}
	switch {
	case err != nil:
		return nil, err
	case len(d.images) == 0:
		return noImages, nil
	}
	return append([]product.Image(nil), d.images...), nil
}

// image reads one image object, the keys of imageRow.
func (d *imageDecoder) image(r *jsonReader) (product.Image, error) {
	var im product.Image
	err := r.object(func(key string) error {
		var err error
		switch field(key, imageKeys) {
		case "id":
			im.ID, err = r.uuid()
		case "position":
			im.Position, err = r.int()
		case "source_url":
			im.SourceURL, err = r.str()
		case "status":
			var status string
			status, err = r.str()
			im.Status = product.ImageStatus(status)
		case "attempts":
			im.Attempts, err = r.int()
		case "error_code":
			im.ErrorCode, err = r.str()
		case "updated_at":
			im.UpdatedAt, err = r.time()
		case "variants":
			im.Variants, err = d.variantList(r)
		case "source":
			im.Source, err = r.source(im.Source)
		default:
			err = r.skip()
		}
		return err
	})
	return im, err
}

// variantList reads a list of variants: nil for null, empty (not nil) for
// an empty list.
func (d *imageDecoder) variantList(r *jsonReader) ([]product.Variant, error) {
	if r.null() {
		return nil, nil
	}
	d.variants = d.variants[:0]
	err := r.list(func() error {
		v, err := r.variant()
		d.variants = append(d.variants, v)
		return err
	})
	if err != nil {
		return nil, err
	}
	return append(make([]product.Variant, 0, len(d.variants)), d.variants...), nil
}

// variant reads a variant object, product.Variant's fields (variantRow's
// keys in the column, the field names in snapshots).
func (r *jsonReader) variant() (product.Variant, error) {
	var v product.Variant
	err := r.object(func(key string) error {
		var err error
		switch field(key, variantKeys) {
		case "name":
			v.Name, err = r.str()
		case "url":
			v.URL, err = r.str()
		case "width":
			v.Width, err = r.int()
		case "height":
			v.Height, err = r.int()
		case "bytes":
			var n int
			n, err = r.int()
			v.Bytes = int64(n)
		case "format":
			v.Format, err = r.str()
		default:
			err = r.skip()
		}
		return err
	})
	return v, err
}

// source reads a source object (sourceRow's keys) into src, or into a new
// one when src is nil; null is nil.
func (r *jsonReader) source(src *product.SourceFacts) (*product.SourceFacts, error) {
	if r.null() {
		return nil, nil
	}
	if src == nil {
		src = new(product.SourceFacts)
	}
	err := r.object(func(key string) error {
		var err error
		switch field(key, sourceKeys) {
		case "width":
			src.Width, err = r.int()
		case "height":
			src.Height, err = r.int()
		case "format":
			src.Format, err = r.str()
		case "bytes":
			var n int
			n, err = r.int()
			src.Bytes = int64(n)
		case "thumbhash":
			src.ThumbHash, err = r.str()
		case "color":
			src.Color, err = r.str()
		default:
			err = r.skip()
		}
		return err
	})
	return src, err
}

// The keys of the objects in an images column: imageRow's, variantRow's
// (product.Variant's fields) and sourceRow's.
var (
	imageKeys   = []string{"id", "position", "source_url", "status", "attempts", "error_code", "updated_at", "variants", "source"}
	variantKeys = []string{"name", "url", "width", "height", "bytes", "format"}
	sourceKeys  = []string{"width", "height", "format", "bytes", "thumbhash", "color"}
)

// field returns the one of keys that key names, as encoding/json matches a
// key to a field: exactly, else case-insensitively; "" for none.
func field(key string, keys []string) string {
	for _, k := range keys {
		if key == k {
			return k
		}
	}
	for _, k := range keys {
		if strings.EqualFold(key, k) {
			return k
		}
	}
	return ""
}

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

// space skips white space and returns the next byte, 0 at the end.
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
	if r.space() != 0 {
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
	for j := start; j < len(r.s); j++ {
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
