package httpapi

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
	"go.yaml.in/yaml/v3"
)

// docsFiles is the /docs page: pms's index.html and docs.js, and the
// vendored Swagger UI (docs/VENDOR.md says which release).
//
//go:embed docs/index.html docs/docs.js docs/swagger-ui
var docsFiles embed.FS

// openAPIJSON is openapi.yaml as JSON, made once.
var openAPIJSON = sync.OnceValues(func() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(openAPI, &doc); err != nil {
		return nil, fmt.Errorf("read openapi.yaml: %w", err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml as JSON: %w", err)
	}
	return b, nil
})

// serveDocs adds the OpenAPI description, as YAML and as JSON, and the
// /docs page that renders it, all from the binary.
func (s *Server) serveDocs() error {
	js, err := openAPIJSON()
	if err != nil {
		return err
	}
	files, _ := fs.Sub(docsFiles, "docs") // the directory is embedded
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		return fmt.Errorf("read the docs page: %w", err)
	}
	assets := http.StripPrefix("/docs/", http.FileServerFS(files))
	s.handle(http.MethodGet, "/openapi.yaml", func(c echo.Context) error { return c.Blob(http.StatusOK, "application/yaml", openAPI) })
	s.handle(http.MethodGet, "/openapi.json", func(c echo.Context) error { return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, js) })
	s.handle(http.MethodGet, "/docs", func(c echo.Context) error { return c.HTMLBlob(http.StatusOK, index) })
	s.handle(http.MethodGet, "/docs/*", func(c echo.Context) error {
		// The page's links are relative to /docs: a trailing slash would
		// break them, and index.html is served only as /docs.
		if p := c.Param("*"); p == "" || p == "index.html" || strings.HasSuffix(p, "/") {
			return c.Redirect(http.StatusMovedPermanently, "/docs")
		}
		if st, err := fs.Stat(files, c.Param("*")); err != nil || st.IsDir() {
			return echo.ErrNotFound // the error table's 404, not the file server's
		}
		c.Response().Header().Set(echo.HeaderCacheControl, "public, max-age=3600")
		assets.ServeHTTP(c.Response(), c.Request())
		return nil
	})
	return nil
}
