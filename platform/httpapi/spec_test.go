package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/pms-dev/pms/platform/httpapi"
)

// specRouter finds the operation of a request in openapi.yaml.
var specRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI())
	if err != nil {
		return nil, err
	}
	doc.Servers = nil // the test servers listen on loopback ports of their own
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	return legacy.NewRouter(doc)
})

// specServer serves h on loopback and holds every exchange of the test to
// openapi.yaml: the response must be one the description documents for
// the operation (status, headers, body schema); a request the description
// refuses must be answered with a 4xx; a route it does not describe, with
// 404 or 405. The /docs page's assets are not API and go unchecked. So the
// integration suite, which goes through here, keeps the description from
// drifting from what the handlers really do.
func specServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	router, err := specRouter()
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	var mu sync.Mutex
	var problems []string
	// Registered before the server's Close, so it runs after every request
	// in flight has finished.
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("openapi.yaml: %s", p)
		}
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		r.Body = readCloser{io.TeeReader(r.Body, &body), r.Body}
		cw := &capture{ResponseWriter: w, status: http.StatusOK}
		req := r.Clone(context.WithoutCancel(r.Context()))
		h.ServeHTTP(cw, r)
		req.Body = io.NopCloser(bytes.NewReader(body.Bytes()))
		if p := checkExchange(router, req, cw); p != "" {
			mu.Lock()
			problems = append(problems, p)
			mu.Unlock()
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// checkExchange returns what is wrong with one exchange, or "".
func checkExchange(router routers.Router, req *http.Request, res *capture) string {
	call := fmt.Sprintf("%s %s = %d", req.Method, req.URL.RequestURI(), res.status)
	if strings.HasPrefix(req.URL.Path, "/docs/") || strings.HasPrefix(req.URL.Path, "/test/") { // assets; tests' own routes
		return ""
	}
	route, params, err := router.FindRoute(req)
	if err == nil && route.PathItem.GetOperation(req.Method) == nil {
		err = errors.New("no such method")
	}
	for name, v := range params {
		if v == "" && err == nil { // the legacy router matches /products as /products/{id}
			err = fmt.Errorf("empty path parameter %s", name)
		}
	}
	if err != nil {
		if res.status != http.StatusNotFound && res.status != http.StatusMethodNotAllowed {
			return fmt.Sprintf("%s: an undescribed route (%v) answered other than 404 or 405", call, err)
		}
		return ""
	}
	ctx := context.Background()
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil && res.status < 400 {
		return fmt.Sprintf("%s: the description refuses the request (%v), the server accepted it", call, oneLine(err))
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.status, Header: res.Header(),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	out.SetBodyBytes(res.body.Bytes())
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Sprintf("%s: the response is not as described: %v (body %.300s)", call, oneLine(err), res.body.String())
	}
	return ""
}

func oneLine(err error) string {
	var me openapi3.MultiError
	if errors.As(err, &me) {
		parts := make([]string, len(me))
		for i, e := range me {
			parts[i] = e.Error()
		}
		return strings.Join(parts, "; ")
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// capture passes a response through and keeps its status and body.
type capture struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
	wrote  bool
}

func (c *capture) WriteHeader(code int) {
	if !c.wrote {
		c.status, c.wrote = code, true
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *capture) Write(b []byte) (int, error) {
	c.wrote = true
	c.body.Write(b)
	return c.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (c *capture) Unwrap() http.ResponseWriter { return c.ResponseWriter }

type readCloser struct {
	io.Reader
	io.Closer
}
