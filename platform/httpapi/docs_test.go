package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"

	"github.com/pms-dev/pms/platform/httpapi"
)

// docsServer is the public API without stores: enough for its documents.
func docsServer(t *testing.T) *httptest.Server {
	t.Helper()
	s, err := httpapi.New(testConfig(), httpapi.API{}, prometheus.NewRegistry(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	srv := specServer(t, s.Handler())
	return srv
}

func get(t *testing.T, client *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestOpenAPIServedAsYAMLAndJSON: both documents say the same, as OpenAPI
// 3.1, with their media types.
func TestOpenAPIServedAsYAMLAndJSON(t *testing.T) {
	srv := docsServer(t)
	ry, y := get(t, srv.Client(), srv.URL+"/openapi.yaml")
	rj, j := get(t, srv.Client(), srv.URL+"/openapi.json")
	if ry.StatusCode != 200 || ry.Header.Get("Content-Type") != "application/yaml" ||
		rj.StatusCode != 200 || !strings.HasPrefix(rj.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /openapi.yaml = %d %s, /openapi.json = %d %s; want 200 with their media types",
			ry.StatusCode, ry.Header.Get("Content-Type"), rj.StatusCode, rj.Header.Get("Content-Type"))
	}
	var fromYAML, fromJSON map[string]any
	if err := yaml.Unmarshal([]byte(y), &fromYAML); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(j), &fromJSON); err != nil {
		t.Fatal(err)
	}
	// YAML numbers decode as ints and floats, JSON's as float64: compare through JSON.
	b, _ := json.Marshal(fromYAML)
	var yamlAsJSON map[string]any
	_ = json.Unmarshal(b, &yamlAsJSON)
	if diff := cmp.Diff(yamlAsJSON, fromJSON); diff != "" {
		t.Errorf("/openapi.json differs from /openapi.yaml (-yaml +json):\n%s", diff)
	}
	if v := fromJSON["openapi"]; v != "3.1.0" {
		t.Errorf("openapi = %v, want 3.1.0", v)
	}
}

// TestDocsPageFromTheBinary: /docs and its assets come from the binary and
// name nothing on another host; /docs/ sends the reader to /docs.
func TestDocsPageFromTheBinary(t *testing.T) {
	srv := docsServer(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, page := get(t, srv.Client(), srv.URL+"/docs")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(page, `src="docs/swagger-ui/swagger-ui-bundle.js"`) {
		t.Fatalf("GET /docs = %d %s:\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), page)
	}
	for _, asset := range []string{"/docs/swagger-ui/swagger-ui-bundle.js", "/docs/swagger-ui/swagger-ui.css", "/docs/docs.js", "/docs/swagger-ui/LICENSE"} {
		resp, body := get(t, srv.Client(), srv.URL+asset)
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Errorf("GET %s = %d, %d bytes; want 200 with the file", asset, resp.StatusCode, len(body))
		}
	}
	if _, js := get(t, srv.Client(), srv.URL+"/docs/docs.js"); !strings.Contains(js, "validatorUrl: null") || strings.Contains(js, "http") {
		t.Errorf("docs.js must load the description from pms and turn the online validator off:\n%s", js)
	}
	for _, path := range []string{"/docs/", "/docs/index.html", "/docs/swagger-ui/"} {
		resp, _ := get(t, noRedirect, srv.URL+path)
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/docs" {
			t.Errorf("GET %s = %d to %q, want 301 to /docs", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if resp, body := get(t, srv.Client(), srv.URL+"/docs/nothing.js"); resp.StatusCode != 404 || !strings.Contains(body, `"code":"not_found"`) {
		t.Errorf("GET /docs/nothing.js = %d %s, want the error table's 404", resp.StatusCode, body)
	}
}
