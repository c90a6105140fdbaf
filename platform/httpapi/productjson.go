package httpapi

import (
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/product"
)

// The public representation of products is written by hand, member by
// member, into one buffer: encoding/json's reflection cost a list page more
// CPU than everything else pms does for it (BENCHMARKS.md, issue 9). The
// output is what encoding/json made of the former productJSON types, byte
// for byte (productjson_test.go keeps them as the reference).
//
// A product is {id, user_id, product_name, product_description,
// product_price, product_images (the source URLs), compressed_product_images
// (the main variants of the ready images), images, version, created_at,
// updated_at}. Its keys are the API contract.

// appendPage appends a list page, {"items": [...], "next_cursor": ...}, and
// a newline, as json.Encoder ends a value.
func appendPage(b []byte, page product.Page) ([]byte, error) {
	b = append(b, `{"items":[`...)
	for i, p := range page.Items {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendProduct(b, p); err != nil {
			return b, err
		}
	}
	b = append(b, `],"next_cursor":`...)
	if page.Next == nil {
		b = append(b, "null"...)
	} else {
		b = appendString(b, page.Next.String())
	}
	return append(b, "}\n"...), nil
}

// appendProduct appends p's public representation. It fails only for a
// time that RFC 3339 cannot write, as encoding/json does.
func appendProduct(b []byte, p product.Product) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendUUID(b, p.ID)
	b = append(b, `,"user_id":`...)
	b = appendUUID(b, p.UserID)
	b = append(b, `,"product_name":`...)
	b = appendString(b, p.Name)
	b = append(b, `,"product_description":`...)
	b = appendString(b, p.Description)
	b = append(b, `,"product_price":`...)
	b = p.Price.Append(b)
	b = append(b, `,"product_images":[`...)
	for i, im := range p.Images {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, im.SourceURL)
	}
	b = append(b, `],"compressed_product_images":[`...)
	for i, url := range p.CompressedURLs() {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, url)
	}
	b = append(b, `],"images":[`...)
	for i, im := range p.Images {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendImage(b, im)
	}
	b = append(b, `],"version":`...)
	b = strconv.AppendInt(b, int64(p.Version), 10)
	b = append(b, `,"created_at":`...)
	b, err := appendTime(b, p.CreatedAt)
	if err != nil {
		return b, err
	}
	b = append(b, `,"updated_at":`...)
	if b, err = appendTime(b, p.UpdatedAt); err != nil {
		return b, err
	}
	return append(b, '}'), nil
}

// appendImage appends where one image is in processing: {position,
// source_url, status, attempts, error_code, then the main variant's
// compressed_url, width, height, bytes and format (as before variants were
// listed), variants, srcset, source, thumbhash, dominant_color}. Empty
// members are left out, but variants, which is always a list.
func appendImage(b []byte, im product.Image) []byte {
	b = append(b, `{"position":`...)
	b = strconv.AppendInt(b, int64(im.Position), 10)
	b = append(b, `,"source_url":`...)
	b = appendString(b, im.SourceURL)
	b = append(b, `,"status":`...)
	b = appendString(b, string(im.Status))
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(im.Attempts), 10)
	b = appendOptString(b, `,"error_code":`, im.ErrorCode)
	if main, ok := im.Main(); ok {
		b = appendOptString(b, `,"compressed_url":`, main.URL)
		b = appendSizes(b, main)
		b = appendOptString(b, `,"format":`, main.Format)
	}
	b = append(b, `,"variants":[`...)
	for i, v := range im.Variants {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendVariant(b, v)
	}
	b = append(b, ']')
	b = appendSrcsets(b, im)
	if src := im.Source; src != nil {
		b = appendSource(b, *src)
		b = appendOptString(b, `,"thumbhash":`, src.ThumbHash)
		b = appendOptString(b, `,"dominant_color":`, src.Color)
	}
	return append(b, '}')
}

// appendVariant appends one compressed copy of an image: {name, url,
// width, height, bytes, format}, the sizes left out when not recorded.
func appendVariant(b []byte, v product.Variant) []byte {
	b = append(b, `{"name":`...)
	b = appendString(b, v.Name)
	b = append(b, `,"url":`...)
	b = appendString(b, v.URL)
	b = appendSizes(b, v)
	b = append(b, `,"format":`...)
	b = appendString(b, v.Format)
	return append(b, '}')
}

// appendSizes appends a variant's width, height and bytes members, each
// only when recorded.
func appendSizes(b []byte, v product.Variant) []byte {
	b = appendOptInt(b, `,"width":`, int64(v.Width))
	b = appendOptInt(b, `,"height":`, int64(v.Height))
	return appendOptInt(b, `,"bytes":`, v.Bytes)
}

// appendSrcsets appends the srcset member: by format, an HTML srcset of the
// variants in it, formats in byte order (encoding/json's order of a map's
// keys). A format has a srcset when a variant in it has a recorded width;
// the member is left out when none has.
func appendSrcsets(b []byte, im product.Image) []byte {
	var buf [4]string
	formats := buf[:0]
	for _, v := range im.Variants {
		if v.Width > 0 && !slices.Contains(formats, v.Format) {
			formats = append(formats, v.Format)
		}
	}
	if len(formats) == 0 {
		return b
	}
	slices.Sort(formats)
	b = append(b, `,"srcset":{`...)
	for i, f := range formats {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, f)
		b = append(b, ':')
		b = appendSrcset(b, im, f)
	}
	return append(b, '}')
}

// appendSrcset appends the image's srcset in format as a JSON string. It is
// built in place and copied to be escaped only when it holds a byte that
// needs it (such as an & in a URL's query).
func appendSrcset(b []byte, im product.Image, format string) []byte {
	b = append(b, '"')
	start := len(b)
	b = im.AppendSrcset(b, format)
	for _, c := range b[start+safePrefix(b[start:]):] {
		if c >= utf8.RuneSelf || !jsonSafe[c] {
			set := string(b[start:])
			return appendString(b[:start-1], set)
		}
	}
	return append(b, '"')
}

// appendSource appends the source member: the source image's upright
// width and height, format and bytes.
func appendSource(b []byte, src product.SourceFacts) []byte {
	b = append(b, `,"source":{"width":`...)
	b = strconv.AppendInt(b, int64(src.Width), 10)
	b = append(b, `,"height":`...)
	b = strconv.AppendInt(b, int64(src.Height), 10)
	b = append(b, `,"format":`...)
	b = appendString(b, src.Format)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, src.Bytes, 10)
	return append(b, '}')
}

// appendOptString appends key (with its comma and colon) and s, unless s
// is empty.
func appendOptString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, key...), s)
}

// appendOptInt appends key (with its comma and colon) and n, unless n is 0.
func appendOptInt(b []byte, key string, n int64) []byte {
	if n == 0 {
		return b
	}
	return strconv.AppendInt(append(b, key...), n, 10)
}

// appendUUID appends id as a JSON string in its canonical form.
func appendUUID(b []byte, id uuid.UUID) []byte {
	b = append(b, '"')
	b = hex.AppendEncode(b, id[0:4])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[4:6])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[6:8])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[8:10])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[10:16])
	return append(b, '"')
}

// appendTime appends t as a JSON string in RFC 3339 with nanoseconds, as
// time.Time's MarshalJSON does, and fails where it fails: for a year
// outside 0–9999 or an offset of 24 hours or more.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	b = append(b, '"')
	n := len(b)
	b = t.AppendFormat(b, time.RFC3339Nano)
	switch {
	case len(b)-n < len("2006-01-02T15:04:05Z") || b[n+len("2006")] != '-':
		return b, errors.New("encode time: year outside of range [0,9999]")
	case b[len(b)-1] != 'Z':
		zone := b[len(b)-len("-07:00"):]
		if h := 10*int(zone[1]-'0') + int(zone[2]-'0'); zone[0] != '+' && zone[0] != '-' || h >= 24 {
			return b, errors.New("encode time: timezone hour outside of range [0,23]")
		}
	}
	return append(b, '"'), nil
}

// jsonSafe reports, for each ASCII byte, whether a JSON string holds it as
// it is. Besides the quote, the backslash and the control characters,
// encoding/json escapes <, > and & (for HTML), and so does appendString.
var jsonSafe = func() (safe [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		safe[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return safe
}()

// appendString appends s as a JSON string, escaped exactly as
// encoding/json escapes it: short escapes for \b \f \n \r \t, \u00XX for
// other control characters and for <, > and &, \ufffd for each invalid
// UTF-8 byte, and \u2028 and \u2029 for the line and paragraph separators.
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := safePrefix(s); i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(append(b, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// safePrefix returns the length of a prefix of s that a JSON string holds
// as it is (jsonSafe), looking at eight bytes at a time: most of a product's
// strings (URLs above all) need no escape, and a byte at a time cost the
// encoder a third of its time. The prefix is a multiple of eight bytes
// long; the rest of s is for the caller to look at.
func safePrefix[T string | []byte](s T) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	// zero is non-zero when a byte of v is zero (exactly, as a boolean), and
	// below when a byte of v is below n (for bytes under 0x80, n <= 0x80).
	zero := func(v uint64) uint64 { return (v - ones) &^ v & highs }
	below := func(v uint64, n uint64) uint64 { return (v - n*ones) &^ v & highs }
	i := 0
	for ; i+8 <= len(s); i += 8 {
		t := s[i : i+8] // of known length: no bounds checks below
		w := uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24 |
			uint64(t[4])<<32 | uint64(t[5])<<40 | uint64(t[6])<<48 | uint64(t[7])<<56
		if w&highs|below(w, ' ')|zero(w^('"'*ones))|zero(w^('\\'*ones))|
			zero(w^('<'*ones))|zero(w^('>'*ones))|zero(w^('&'*ones)) != 0 {
			break
		}
	}
	return i
}
