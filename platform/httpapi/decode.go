package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/pms-dev/pms/product"
)

// readObject reads a request body holding one JSON object and returns a
// fieldReader for its members, known being those the request may have.
// Syntax errors, trailing data and a body over the limit are client errors
// at once; the reader holds the other problems (see checkJSON and
// newFieldReader) for the response that names every one.
func readObject(body io.Reader, limit int64, known ...string) (*fieldReader, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		switch {
		case isTooLarge(err):
			return nil, errTooLarge(limit)
		case errors.Is(err, os.ErrDeadlineExceeded):
			// http.read_timeout ended a body that came too slowly.
			return nil, echo.NewHTTPError(http.StatusRequestTimeout, "the request body did not arrive in time")
		}
		// A body cut short or badly chunked is the client's doing.
		return nil, badRequest(product.FieldError{Field: "body", Problem: "could not be read"})
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, badRequest(product.FieldError{Field: "body", Problem: "must be a JSON object" + jsonErrorDetail(err)})
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest(product.FieldError{Field: "body", Problem: "must hold a single JSON object"})
	}
	r := newFieldReader(obj, known...)
	r.problems = append(checkJSON(raw), r.problems...)
	return r, nil
}

func jsonErrorDetail(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf(" (syntax error at byte %d)", se.Offset)
	}
	return ""
}

// fieldReader decodes the members of a JSON object one by one, collecting a
// problem for every member that is unknown or of the wrong type.
type fieldReader struct {
	obj      map[string]json.RawMessage
	problems product.Problems
}

// newFieldReader returns a reader of obj's members that lists the unknown
// ones: at most maxListed by name, in order, and how many more there are.
func newFieldReader(obj map[string]json.RawMessage, known ...string) *fieldReader {
	r := &fieldReader{obj: obj}
	var unknown []string
	for name := range obj {
		if !slices.Contains(known, name) {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	r.problems = unknownProblems(unknown, "field", "body")
	return r
}

// present reports whether the member exists; null reports whether it is null.
func (r *fieldReader) present(name string) (present, null bool) {
	raw, ok := r.obj[name]
	return ok, ok && string(bytes.TrimSpace(raw)) == "null"
}

// member returns the member's raw value, unless it is missing or has a
// problem already (see checkJSON): one problem per member is enough.
func (r *fieldReader) member(name string) (json.RawMessage, bool) {
	raw, ok := r.obj[name]
	return raw, ok && !slices.ContainsFunc(r.problems, func(f product.FieldError) bool { return f.Field == name })
}

func (r *fieldReader) str(name string, dst *string) {
	if raw, ok := r.member(name); ok {
		if json.Unmarshal(raw, dst) != nil {
			r.problems.Add(name, "must be a string")
		}
	}
}

func (r *fieldReader) id(name string, dst *uuid.UUID) {
	var s string
	if _, null := r.present(name); null {
		return
	}
	if raw, ok := r.member(name); ok {
		if json.Unmarshal(raw, &s) != nil {
			r.problems.Add(name, "must be a UUID string")
			return
		}
		id, err := uuid.Parse(s)
		if err != nil || id == uuid.Nil {
			r.problems.Add(name, "must be a UUID string")
			return
		}
		*dst = id
	}
}

func (r *fieldReader) price(name string, dst *product.Price) {
	raw, ok := r.member(name)
	if _, null := r.present(name); !ok || null {
		return
	}
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		r.problems.Add(name, "must be a number")
		return
	}
	if n, ok = v.(json.Number); !ok {
		r.problems.Add(name, "must be a number")
		return
	}
	p, err := product.ParsePrice(n.String())
	if err != nil {
		r.problems.Add(name, err.Error())
		return
	}
	*dst = p
}

func (r *fieldReader) strings(name string, dst *[]string) {
	if raw, ok := r.member(name); ok {
		var list []string
		if json.Unmarshal(raw, &list) != nil {
			r.problems.Add(name, "must be an array of strings")
			return
		}
		if list == nil {
			list = []string{}
		}
		*dst = list
	}
}

func (r *fieldReader) err() error { return r.problems.Err() }

// check adds the problems a domain validation found with fields that were
// read well, so one response names every problem once.
func (r *fieldReader) check(err error) error {
	var ve *product.ValidationError
	if errors.As(err, &ve) {
		for _, f := range ve.Fields {
			if !r.flagged(f.Field) {
				r.problems = append(r.problems, f)
			}
		}
	} else if err != nil {
		return err
	}
	return r.err()
}

func (r *fieldReader) flagged(field string) bool {
	for _, p := range r.problems {
		if p.Field == field || strings.HasPrefix(field, p.Field+"[") {
			return true
		}
	}
	return false
}

// required adds a problem for each member that is missing or null.
func (r *fieldReader) required(names ...string) {
	for _, name := range names {
		if ok, null := r.present(name); !ok || null {
			r.problems.Add(name, "is required")
		}
	}
}

// notNull adds a problem for each member that is present but null.
func (r *fieldReader) notNull(names ...string) {
	for _, name := range names {
		if _, null := r.present(name); null {
			r.problems.Add(name, "must not be null")
		}
	}
}

// trimQuotes removes the quotes of an entity tag.
func trimQuotes(s string) string { return strings.Trim(strings.TrimSpace(s), `"`) }
