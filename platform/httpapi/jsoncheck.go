package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pms-dev/pms/product"
)

// Limits on what a request body or query may make the API list or walk.
const (
	// maxJSONDepth is how deeply a body may nest arrays and objects. A
	// product is two levels deep; the rest is room for clients' mistakes.
	maxJSONDepth = 16
	// maxListed is how many unknown or bad members one error lists; the
	// rest are counted.
	maxListed = 10
	// maxFieldName is how many characters of a client's member or
	// parameter name an error repeats.
	maxFieldName = 64
)

// checkJSON walks a syntactically valid JSON document and finds what
// encoding/json would accept silently: a key repeated in an object (which
// one counts is up to the parser), strings holding bytes that are not UTF-8
// or lone UTF-16 surrogates (both read as U+FFFD), strings holding NUL
// (which PostgreSQL text cannot store), and nesting deeper than
// maxJSONDepth. Each problem names its member by path: product_images[2],
// a.b. At most maxListed are listed, then the rest are counted.
func checkJSON(doc []byte) product.Problems {
	w := jsonWalker{doc: doc, dec: json.NewDecoder(bytes.NewReader(doc))}
	w.dec.UseNumber()
	w.walk()
	if w.more > 0 {
		w.problems.Add("body", fmt.Sprintf("has %d more problems", w.more))
	}
	return w.problems
}

// jsonFrame is an object or array being walked.
type jsonFrame struct {
	path   string
	object bool
	keys   map[string]bool // the object's keys so far
	key    string          // the object's current key, "" before the first
	index  int             // the array's next index
}

type jsonWalker struct {
	doc      []byte
	dec      *json.Decoder
	stack    []jsonFrame
	problems product.Problems
	more     int
}

func (w *jsonWalker) add(field, problem string) {
	if len(w.problems) < maxListed {
		w.problems.Add(fieldName(field), problem) // a path of long names is long too
	} else {
		w.more++
	}
}

func (w *jsonWalker) walk() {
	wantKey := false // the next string is an object key
	for {
		start := w.dec.InputOffset()
		tok, err := w.dec.Token()
		if err != nil {
			return // the end, or a syntax error the decoder reports
		}
		if s, ok := tok.(string); ok && wantKey {
			w.checkKey(s, start)
			wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			path := w.valuePath()
			if len(w.stack) == maxJSONDepth {
				w.add(path, fmt.Sprintf("must not nest more than %d levels deep", maxJSONDepth))
				return
			}
			obj := tok == json.Delim('{')
			w.stack = append(w.stack, jsonFrame{path: path, object: obj})
			if obj {
				w.stack[len(w.stack)-1].keys = map[string]bool{}
			}
			wantKey = obj
			continue
		case json.Delim('}'), json.Delim(']'):
			w.stack = w.stack[:len(w.stack)-1]
		}
		if s, ok := tok.(string); ok {
			if problem := w.stringProblem(s, start); problem != "" {
				w.add(w.valuePath(), problem)
			}
		}
		// A value (or a container) is complete: an object wants its next key.
		if n := len(w.stack); n > 0 {
			if w.stack[n-1].object {
				wantKey = true
			} else {
				w.stack[n-1].index++
			}
		}
	}
}

// valuePath names the value about to be read.
func (w *jsonWalker) valuePath() string {
	if len(w.stack) == 0 {
		return "body"
	}
	top := w.stack[len(w.stack)-1]
	switch {
	case !top.object:
		return top.path + "[" + strconv.Itoa(top.index) + "]"
	case len(w.stack) == 1:
		return fieldName(top.key)
	}
	return top.path + "." + fieldName(top.key)
}

// checkKey records key as the current object's, with its problems.
func (w *jsonWalker) checkKey(key string, start int64) {
	top := &w.stack[len(w.stack)-1]
	top.key = key
	if problem := w.stringProblem(key, start); problem != "" {
		w.add(w.valuePath(), "its name "+problem) // and it may be a duplicate as well
	}
	if top.keys[key] {
		w.add(w.valuePath(), "must be given once")
	}
	top.keys[key] = true
}

// stringProblem says what is wrong with a string token whose literal starts
// at or after offset start of the document, or returns "".
func (w *jsonWalker) stringProblem(s string, start int64) string {
	if strings.IndexByte(s, 0) >= 0 {
		return "must not contain NUL characters"
	}
	if !strings.ContainsRune(s, utf8.RuneError) {
		return "" // nothing was replaced: the literal is clean
	}
	q := bytes.IndexByte(w.doc[start:], '"')
	if q < 0 {
		return ""
	}
	return literalProblem(w.doc[start+int64(q)+1:])
}

// literalProblem scans a JSON string literal after its opening quote, which
// the decoder has found well formed, for what it decodes as U+FFFD without
// saying so: bytes that are not UTF-8 and lone surrogates.
func literalProblem(lit []byte) string {
	for i := 0; i < len(lit); {
		switch c := lit[i]; {
		case c == '"':
			return ""
		case c == '\\' && i+1 < len(lit) && lit[i+1] == 'u':
			r := hex4(lit[i+2:])
			switch {
			case r >= 0xd800 && r <= 0xdbff:
				if i+11 < len(lit) && lit[i+6] == '\\' && lit[i+7] == 'u' {
					if lo := hex4(lit[i+8:]); lo >= 0xdc00 && lo <= 0xdfff {
						i += 12
						continue
					}
				}
				return "must not contain lone UTF-16 surrogates"
			case r >= 0xdc00 && r <= 0xdfff:
				return "must not contain lone UTF-16 surrogates"
			}
			i += 6
		case c == '\\':
			i += 2
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(lit[i:])
			if r == utf8.RuneError && size == 1 {
				return "must be valid UTF-8"
			}
			i += size
		}
	}
	return ""
}

// hex4 reads the four hex digits of a \u escape, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	n, err := strconv.ParseUint(string(b[:4]), 16, 16)
	if err != nil {
		return -1
	}
	return rune(n)
}

// fieldName makes a client's member or parameter name safe to repeat in an
// error: valid UTF-8, at most maxFieldName characters, and "" written as
// the two quotes, which cannot be mistaken for no name.
func fieldName(s string) string {
	if s == "" {
		return `""`
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= maxFieldName {
		return s
	}
	return string([]rune(s)[:maxFieldName]) + "…"
}

// unknownProblems lists names as not known (what: "field", "parameter"), in
// order, at most maxListed of them, then counts the rest under summary.
func unknownProblems(names []string, what, summary string) product.Problems {
	var ps product.Problems
	for i, name := range names {
		if i == maxListed {
			ps.Add(summary, fmt.Sprintf("has %d more unknown %ss", len(names)-maxListed, what))
			break
		}
		ps.Add(fieldName(name), "is not a known "+what)
	}
	return ps
}
