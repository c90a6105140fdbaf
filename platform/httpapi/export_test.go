package httpapi

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"
)

// AddRoute registers h behind the server's middleware, so tests can add a
// handler the API lacks, such as a slow one for the shutdown tests.
func AddRoute(s *Server, method, path string, h http.Handler) {
	s.handle(method, path, echo.WrapHandler(h))
}

// AddClientIPRoute registers GET path, which answers the client address
// the server sees for the request.
func AddClientIPRoute(s *Server, path string) {
	s.handle(http.MethodGet, path, func(c echo.Context) error { return c.String(http.StatusOK, c.RealIP()) })
}

// ClientIP returns the server's client address extractor for the trusted
// proxies, which must be valid.
func ClientIP(trusted ...string) func(*http.Request) string {
	nets, err := parseProxies(trusted)
	if err != nil {
		panic(err)
	}
	return clientIP(nets)
}

// AddressKey is the client address a failure budget is kept for.
var AddressKey = addressKey

// AddErrorRoute registers a GET route behind the server's middleware that
// answers with what fn returns, so tests can show how the error handler
// answers an error a real store returned.
func AddErrorRoute(s *Server, path string, fn func(ctx context.Context) error) {
	s.handle(http.MethodGet, path, func(c echo.Context) error { return fn(c.Request().Context()) })
}

// OpenAPI returns the embedded openapi.yaml.
func OpenAPI() []byte { return openAPI }
