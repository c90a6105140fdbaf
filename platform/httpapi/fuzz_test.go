package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/pms-dev/pms/product"
)

// The fuzz targets here drive the request readers without a server or a
// database; their seed corpora are in testdata/fuzz. Run one for longer with
// make fuzz, or: go test -run '^$' -fuzz '^FuzzReadBody$' ./platform/httpapi/

// fuzzLimit is the body limit the fuzz targets read with.
const fuzzLimit = 64 << 10

// maxFields bounds how many fields one error names: the unknown members,
// the members checkJSON flags (each list capped with a count), the five
// known fields and every image.
const maxFields = 2*(maxListed+1) + 5 + product.MaxImages

// wantClientError fails unless err is what a client's bad input gives: a
// 4xx, and for a *ValidationError a bounded list of named problems whose
// names are short, valid UTF-8.
func wantClientError(t *testing.T, what string, err error) {
	t.Helper()
	if ae := toAPIError(err); ae.Status < 400 || ae.Status >= 500 {
		t.Fatalf("%s: error %v is a %d, want a 4xx", what, err, ae.Status)
	}
	var ve *product.ValidationError
	if !errors.As(err, &ve) {
		return
	}
	if len(ve.Fields) == 0 || len(ve.Fields) > maxFields {
		t.Fatalf("%s: error names %d fields, want 1 to %d", what, len(ve.Fields), maxFields)
	}
	for _, f := range ve.Fields {
		if f.Field == "" || f.Problem == "" || !utf8.ValidString(f.Field) || utf8.RuneCountInString(f.Field) > maxFieldName+1 {
			t.Fatalf("%s: field %q (problem %q): want a name of 1 to %d characters of valid UTF-8, and a problem",
				what, f.Field, f.Problem, maxFieldName+1)
		}
	}
}

// wantText fails unless s is what a store can keep: valid UTF-8 without NUL.
func wantText(t *testing.T, what, s string) {
	t.Helper()
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		t.Fatalf("%s %q was accepted: want valid UTF-8 without NUL", what, s)
	}
}

var fuzzOwner = uuid.MustParse("0191d5f0-0000-7000-8000-000000000001")

// FuzzReadBody reads bodies as a create and as a merge patch. Whatever the
// body, the readers return a value or a 4xx naming fields; an accepted body
// is UTF-8, reads into a valid value, and that value, written as JSON again,
// reads back the same.
func FuzzReadBody(f *testing.F) {
	for _, seed := range []string{
		`{"product_name":"Lamp","product_price":12.50}`,
		`{"user_id":"0191d5f0-0000-7000-8000-000000000002","product_name":"Lamp","product_description":"Brass",` +
			`"product_price":0.5,"product_images":["https://img.example.com/a.png","http://img.example.com/b.jpg"]}`,
		`{"product_name":null,"product_description":null,"product_images":null}`,
		`{"product_name":"a","product_name":"b"}`,
		`{"product_name":"\ud800","product_price":1e3}`,
		`{"x":{"a":[1,{"b":"\u0000"}]}}`,
		"{\"product_name\":\"\xff\"}",
		`[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]`,
		`{} {}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if d, err := readDraft(bytes.NewReader(body), fuzzLimit, fuzzOwner); err != nil {
			wantClientError(t, "readDraft", err)
		} else {
			wantDraft(t, body, d)
		}
		if p, err := readPatch(bytes.NewReader(body), fuzzLimit); err != nil {
			wantClientError(t, "readPatch", err)
		} else {
			wantPatch(t, body, p)
		}
	})
}

func wantDraft(t *testing.T, body []byte, d product.Draft) {
	t.Helper()
	if !utf8.Valid(body) {
		t.Fatalf("readDraft accepted a body that is not UTF-8: %q", body)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("readDraft(%q) = %+v, which is invalid: %v", body, d, err)
	}
	for _, s := range append([]string{d.Name, d.Description}, d.ImageURLs...) {
		wantText(t, "a draft's text", s)
	}
	again, err := json.Marshal(map[string]any{
		"user_id": d.UserID, "product_name": d.Name, "product_description": d.Description,
		"product_price": json.Number(d.Price.String()), "product_images": append([]string{}, d.ImageURLs...),
	})
	if err != nil {
		t.Fatal(err)
	}
	back, err := readDraft(bytes.NewReader(again), fuzzLimit, uuid.Nil)
	if err != nil {
		t.Fatalf("readDraft(%q) = %+v, but reading it again as %s: %v", body, d, again, err)
	}
	if diff := cmp.Diff(d, back, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("readDraft(%q) did not survive a round trip through %s (-first +again):\n%s", body, again, diff)
	}
}

func wantPatch(t *testing.T, body []byte, p product.Patch) {
	t.Helper()
	if !utf8.Valid(body) {
		t.Fatalf("readPatch accepted a body that is not UTF-8: %q", body)
	}
	doc := map[string]any{}
	if p.Name != nil {
		wantText(t, "a patch's product_name", *p.Name)
		doc["product_name"] = *p.Name
	}
	if p.Description != nil {
		wantText(t, "a patch's product_description", *p.Description)
		doc["product_description"] = *p.Description
	}
	if p.Price != nil {
		if *p.Price < 0 || *p.Price > product.MaxPrice {
			t.Fatalf("readPatch(%q) accepted the price %d", body, *p.Price)
		}
		doc["product_price"] = json.Number(p.Price.String())
	}
	if p.ImageURLs != nil {
		for _, u := range *p.ImageURLs {
			wantText(t, "a patch's image URL", u)
		}
		doc["product_images"] = *p.ImageURLs
	}
	again, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	back, err := readPatch(bytes.NewReader(again), fuzzLimit)
	if err != nil {
		t.Fatalf("readPatch(%q) = %+v, but reading it again as %s: %v", body, p, again, err)
	}
	if diff := cmp.Diff(p, back, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("readPatch(%q) did not survive a round trip through %s (-first +again):\n%s", body, again, diff)
	}
}

// FuzzParseFilter parses list queries. Whatever the query, parseFilter
// returns a filter or a 4xx naming parameters; an accepted filter is valid,
// passes on only short UTF-8 text without control characters, and written
// as a query again parses to the same filter.
func FuzzParseFilter(f *testing.F) {
	for _, seed := range []string{
		"",
		"user_id=0191d5f0-0000-7000-8000-000000000001&min_price=1.5&max_price=20&name=lamp&sort=-price&limit=5",
		"name=%FF&limit=0&colour=red",
		"sort=name&cursor=eyJ0IjoiMjAyNi0wMS0wMVQwMDowMDowMFoifQ",
		"limit=1&limit=2",
		"name=a%00b",
		"a=1;b=2",
		"%zz",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		flt, err := parseFilter(raw)
		if err != nil {
			wantClientError(t, "parseFilter", err)
			return
		}
		if err := flt.Validate(); err != nil {
			t.Fatalf("parseFilter(%q) = %+v, which is invalid: %v", raw, flt, err)
		}
		if len(flt.Name) > maxParamLen || strings.ContainsFunc(flt.Name, unicode.IsControl) {
			t.Fatalf("parseFilter(%q) passed on the name %q", raw, flt.Name)
		}
		wantText(t, "a name filter", flt.Name)
		q := url.Values{"sort": {string(flt.Sort)}, "limit": {strconv.Itoa(flt.Limit)}}
		if flt.UserID != nil {
			q.Set("user_id", flt.UserID.String())
		}
		if flt.MinPrice != nil {
			q.Set("min_price", flt.MinPrice.String())
		}
		if flt.MaxPrice != nil {
			q.Set("max_price", flt.MaxPrice.String())
		}
		if flt.Name != "" {
			q.Set("name", flt.Name)
		}
		if flt.After != nil {
			q.Set("cursor", flt.After.String())
		}
		back, err := parseFilter(q.Encode())
		if err != nil {
			t.Fatalf("parseFilter(%q) = %+v, but parsing it again as %q: %v", raw, flt, q.Encode(), err)
		}
		if diff := cmp.Diff(flt, back, cmp.AllowUnexported(product.Cursor{})); diff != "" {
			t.Fatalf("parseFilter(%q) did not survive a round trip through %q (-first +again):\n%s", raw, q.Encode(), diff)
		}
	})
}
