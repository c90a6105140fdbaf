package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/pms-dev/pms/product"
)

// writeProduct answers with code and p's public representation.
func writeProduct(c echo.Context, code int, p product.Product) error {
	return writeJSON(c, code, func(b []byte) ([]byte, error) {
		b, err := appendProduct(b, p)
		return append(b, '\n'), err
	})
}

// bodies holds the buffers that response bodies are built in.
var bodies = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBody is the capacity above which a body's buffer is left to the
// garbage collector rather than kept for the next response.
const maxPooledBody = 1 << 20

// writeJSON answers with code and the JSON that build appends to a buffer.
// As c.JSON does, it indents the JSON when the request has a pretty query
// parameter or Echo is in debug mode.
func writeJSON(c echo.Context, code int, build func([]byte) ([]byte, error)) error {
	buf := bodies.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= maxPooledBody {
			bodies.Put(buf)
		}
	}()
	b, err := build((*buf)[:0])
	*buf = b
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	if pretty(c) {
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err != nil {
			return fmt.Errorf("indent response: %w", err)
		}
		b = out.Bytes()
	}
	// Echo sets the type only where none is set; this one is shared by
	// every response and never changed in place (Set replaces a header's
	// slice, Add grows a copy), so it costs no allocation.
	c.Response().Header()[echo.HeaderContentType] = jsonContentType
	return c.JSONBlob(code, b)
}

var jsonContentType = []string{echo.MIMEApplicationJSON}

// pretty reports whether c.JSON would indent the response.
func pretty(c echo.Context) bool {
	if c.Echo().Debug {
		return true
	}
	if !strings.Contains(c.Request().URL.RawQuery, "pretty") {
		return false
	}
	_, ok := c.QueryParams()["pretty"]
	return ok
}
