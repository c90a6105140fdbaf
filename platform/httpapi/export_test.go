package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// AddRoute registers h behind the server's middleware, so tests can add a
// handler the API lacks, such as a slow one for the shutdown tests.
func AddRoute(s *Server, method, path string, h http.Handler) {
	s.echo.Add(method, path, echo.WrapHandler(h))
}
