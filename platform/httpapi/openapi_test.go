package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/product"
)

// TestOpenAPIDescribesEveryRoute keeps openapi.yaml valid and in step with
// the route table: every route is documented, and nothing else is.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(openAPI)
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is invalid: %v", err)
	}
	cfg := Config{Addr: "127.0.0.1:0", ReadHeaderTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: 2 * time.Second,
		IdleTimeout: time.Second, RequestTimeout: time.Second, ShutdownTimeout: time.Second, MaxBodyBytes: 1 << 20, MaxHeaderBytes: 64 << 10}
	s, err := New(cfg, API{}, prometheus.NewRegistry(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`:(\w+)`)
	routes := map[string]bool{}
	for _, r := range s.echo.Routes() {
		if r.Method == "echo_route_not_found" || r.Path == "/docs/*" { // the page's assets, not API
			continue
		}
		path := param.ReplaceAllString(r.Path, "{$1}")
		routes[r.Method+" "+path] = true
		item := doc.Paths.Find(path)
		if item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("route %s %s is not in openapi.yaml", r.Method, path)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !routes[method+" "+path] && method != http.MethodHead {
				t.Errorf("openapi.yaml documents %s %s, which no route serves", method, path)
			}
		}
	}
}

// TestOpenAPIDescribesProductJSON keeps the Product schema in step with what
// the handlers write: a product with images in every state, variants with
// and without recorded sizes, matches the schema, and has no member the
// schema does not document.
func TestOpenAPIDescribesProductJSON(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(openAPI)
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	schema := doc.Components.Schemas["Product"].Value
	at := time.Date(2026, 11, 25, 22, 6, 44, 0, time.UTC)
	p := product.Product{
		ID: uuid.New(), UserID: uuid.New(), Name: "Desk lamp", Price: 4990, Version: 3, CreatedAt: at, UpdatedAt: at,
		Images: []product.Image{
			{ID: uuid.New(), Position: 0, SourceURL: "https://example.com/a.png", Status: product.ImageReady, Attempts: 1,
				Variants: []product.Variant{
					{Name: "main", URL: "https://cdn.example.com/a.webp", Width: 1600, Height: 1200, Bytes: 81234, Format: "webp"},
					{Name: "thumbnail", URL: "https://cdn.example.com/b.webp", Format: "webp"},
				}},
			{ID: uuid.New(), Position: 1, SourceURL: "https://example.com/b.jpg", Status: product.ImagePending},
			{ID: uuid.New(), Position: 2, SourceURL: "https://example.com/c.jpg", Status: product.ImageFailed, Attempts: 3,
				ErrorCode: "source_not_found"},
		},
	}
	raw, err := appendProduct(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if err := schema.VisitJSON(v); err != nil {
		t.Errorf("product JSON %s does not match the Product schema: %v", raw, err)
	}
	for _, path := range undocumented("product", schema, v) {
		t.Errorf("product JSON has %s, which the Product schema does not document", path)
	}
}

// undocumented returns the paths of the members of v that schema does not
// name, at any depth.
func undocumented(path string, schema *openapi3.Schema, v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			prop, ok := schema.Properties[k]
			if !ok {
				out = append(out, path+"."+k)
				continue
			}
			out = append(out, undocumented(path+"."+k, prop.Value, child)...)
		}
	case []any:
		if schema.Items != nil {
			for _, child := range v {
				out = append(out, undocumented(path+"[]", schema.Items.Value, child)...)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
