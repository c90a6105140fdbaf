package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/pms-dev/pms/product"
)

// listParams are the query parameters GET /products understands.
var listParams = []string{"user_id", "min_price", "max_price", "name", "sort", "limit", "cursor"}

// Limits on a list query: a cursor may be product.MaxCursorLen long, every
// other value maxParamLen bytes.
const (
	maxQueryLen = 8192
	maxParamLen = 1024
)

func (s *Server) listProducts(c echo.Context) error {
	f, err := parseFilter(c.Request().URL.RawQuery)
	if err != nil {
		return err
	}
	page, err := s.products.List(c.Request().Context(), caller(c), f)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, func(b []byte) ([]byte, error) { return appendPage(b, page) })
}

// parseFilter reads a list's raw query string, naming every parameter that
// is unknown, repeated, not text or unparsable. Every value it passes on is
// UTF-8 without control characters, and bounded in length.
func parseFilter(rawQuery string) (product.Filter, error) {
	f := product.Filter{Sort: product.SortCreated, Limit: product.DefaultLimit}
	if len(rawQuery) > maxQueryLen {
		return f, badRequest(product.FieldError{Field: "query", Problem: fmt.Sprintf("must be at most %d bytes", maxQueryLen)})
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return f, badRequest(product.FieldError{Field: "query", Problem: "must be a well-formed URL query (name=value pairs joined by &)"})
	}
	var ps product.Problems
	var unknown []string
	for name, vs := range q {
		switch {
		case !slices.Contains(listParams, name):
			unknown = append(unknown, name)
		case len(vs) > 1:
			ps.Add(name, "must be given once")
		default:
			if problem := textProblem(name, vs[0]); problem != "" {
				ps.Add(name, problem)
			}
		}
	}
	slices.Sort(unknown)
	ps = append(ps, unknownProblems(unknown, "parameter", "query")...)
	get := func(name string) (string, bool) {
		vs, ok := q[name]
		if !ok || len(vs) != 1 || textProblem(name, vs[0]) != "" {
			return "", false
		}
		return vs[0], true
	}
	if v, ok := get("user_id"); ok {
		if id, err := uuid.Parse(v); err != nil {
			ps.Add("user_id", "must be a UUID")
		} else {
			f.UserID = &id
		}
	}
	for name, dst := range map[string]**product.Price{"min_price": &f.MinPrice, "max_price": &f.MaxPrice} {
		if v, ok := get(name); ok {
			if p, err := product.ParsePrice(v); err != nil {
				ps.Add(name, err.Error())
			} else {
				*dst = &p
			}
		}
	}
	if v, ok := get("name"); ok {
		if v == "" {
			ps.Add("name", "must not be empty")
		}
		f.Name = v
	}
	if v, ok := get("sort"); ok {
		f.Sort = product.Sort(v)
	}
	if v, ok := get("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			ps.Add("limit", "must be a whole number")
			n = product.DefaultLimit
		}
		f.Limit = n
	}
	if v, ok := get("cursor"); ok {
		c, err := product.ParseCursor(v)
		if err != nil {
			ps.Add("cursor", err.Error())
		}
		f.After = c
	}
	if err := ps.Err(); err != nil {
		return f, err
	}
	return f, f.Validate()
}

// textProblem says what keeps a query parameter's value from being passed
// on, or returns "": it must be UTF-8 without control characters, and
// short.
func textProblem(name, v string) string {
	limit := maxParamLen
	if name == "cursor" {
		limit = product.MaxCursorLen
	}
	switch {
	case len(v) > limit:
		return fmt.Sprintf("must be at most %d bytes", limit)
	case !utf8.ValidString(v):
		return "must be valid UTF-8"
	case strings.ContainsFunc(v, unicode.IsControl):
		return "must not contain control characters"
	}
	return ""
}
