package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/pms-dev/pms/product"
)

// productJSON is the public representation of a product. Its keys are the
// API contract.
type productJSON struct {
	ID                      uuid.UUID   `json:"id"`
	UserID                  uuid.UUID   `json:"user_id"`
	ProductName             string      `json:"product_name"`
	ProductDescription      string      `json:"product_description"`
	ProductPrice            json.Number `json:"product_price"`
	ProductImages           []string    `json:"product_images"`
	CompressedProductImages []string    `json:"compressed_product_images"`
	Images                  []imageJSON `json:"images"`
	Version                 int         `json:"version"`
	CreatedAt               time.Time   `json:"created_at"`
	UpdatedAt               time.Time   `json:"updated_at"`
}

// imageJSON tells where one image is in processing. Its compressed_url,
// width, height, bytes and format are those of the main variant, as before
// variants were listed.
type imageJSON struct {
	Position      int           `json:"position"`
	SourceURL     string        `json:"source_url"`
	Status        string        `json:"status"`
	Attempts      int           `json:"attempts"`
	ErrorCode     string        `json:"error_code,omitempty"`
	CompressedURL string        `json:"compressed_url,omitempty"`
	Width         int           `json:"width,omitempty"`
	Height        int           `json:"height,omitempty"`
	Bytes         int64         `json:"bytes,omitempty"`
	Format        string        `json:"format,omitempty"`
	Variants      []variantJSON `json:"variants"`
	// Srcset holds, by format, an HTML srcset of the variants in it.
	Srcset map[string]string `json:"srcset,omitempty"`
	// Source, ThumbHash and DominantColor are what a page needs before the
	// image loads, once the worker has seen the source.
	Source        *sourceJSON `json:"source,omitempty"`
	ThumbHash     string      `json:"thumbhash,omitempty"`
	DominantColor string      `json:"dominant_color,omitempty"`
}

// sourceJSON describes a source image: upright size, format and bytes.
type sourceJSON struct {
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Format string `json:"format"`
	Bytes  int64  `json:"bytes"`
}

// variantJSON is one compressed copy of an image. Sizes not recorded are
// left out.
type variantJSON struct {
	Name   string `json:"name"`
	URL    string `json:"url"`
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	Bytes  int64  `json:"bytes,omitempty"`
	Format string `json:"format"`
}

func toJSON(p product.Product) productJSON {
	out := productJSON{
		ID: p.ID, UserID: p.UserID, ProductName: p.Name, ProductDescription: p.Description,
		ProductPrice: json.Number(p.Price.String()), ProductImages: p.SourceURLs(),
		CompressedProductImages: p.CompressedURLs(), Images: make([]imageJSON, len(p.Images)),
		Version: p.Version, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	for i, im := range p.Images {
		out.Images[i] = imageToJSON(im)
	}
	return out
}

func imageToJSON(im product.Image) imageJSON {
	out := imageJSON{
		Position: im.Position, SourceURL: im.SourceURL, Status: string(im.Status), Attempts: im.Attempts,
		ErrorCode: im.ErrorCode, Variants: make([]variantJSON, len(im.Variants)),
	}
	if src := im.Source; src != nil {
		out.Source = &sourceJSON{Width: src.Width, Height: src.Height, Format: src.Format, Bytes: src.Bytes}
		out.ThumbHash, out.DominantColor = src.ThumbHash, src.Color
	}
	if main, ok := im.Main(); ok {
		out.CompressedURL, out.Width, out.Height, out.Bytes, out.Format = main.URL, main.Width, main.Height, main.Bytes, main.Format
	}
	for i, v := range im.Variants {
		out.Variants[i] = variantJSON{Name: v.Name, URL: v.URL, Width: v.Width, Height: v.Height, Bytes: v.Bytes, Format: v.Format}
		if _, done := out.Srcset[v.Format]; done {
			continue
		}
		if set := im.Srcset(v.Format); set != "" {
			if out.Srcset == nil {
				out.Srcset = map[string]string{}
			}
			out.Srcset[v.Format] = set
		}
	}
	return out
}

type pageJSON struct {
	Items      []productJSON `json:"items"`
	NextCursor *string       `json:"next_cursor"`
}

// Headers of the product endpoints.
const (
	headerIdempotencyKey = "Idempotency-Key"
	headerReplayed       = "Idempotent-Replayed"
)

// etag is the strong entity tag of a product version.
func etag(version int) string { return `"` + strconv.Itoa(version) + `"` }

func productPath(id uuid.UUID) string { return "/api/v1/products/" + id.String() }

func (s *Server) createProduct(c echo.Context) error {
	key, err := idempotencyKey(c.Request().Header)
	if err != nil {
		return err
	}
	d, err := readDraft(c.Request().Body, s.cfg.MaxBodyBytes, caller(c).UserID)
	if err != nil {
		return err
	}
	p, replayed, err := s.products.Create(c.Request().Context(), caller(c), d, key)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderLocation, productPath(p.ID))
	h.Set("ETag", etag(p.Version))
	if replayed {
		h.Set(headerReplayed, "true")
	}
	return c.JSON(http.StatusCreated, toJSON(p))
}

// idempotencyKey returns the request's Idempotency-Key, "" for none, or a
// 400 when it is repeated or breaks product.IdempotencyKeyProblem's rule.
func idempotencyKey(h http.Header) (string, error) {
	vs := h.Values(headerIdempotencyKey)
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", badRequest(product.FieldError{Field: headerIdempotencyKey, Problem: "must be given once"})
	}
	if problem := product.IdempotencyKeyProblem(vs[0]); problem != "" {
		return "", badRequest(product.FieldError{Field: headerIdempotencyKey, Problem: problem})
	}
	return vs[0], nil
}

// readDraft reads a create request's body into a valid Draft, owned by
// owner unless the body names a user_id, or returns a *ValidationError
// naming every problem of the body.
func readDraft(body io.Reader, limit int64, owner uuid.UUID) (product.Draft, error) {
	r, err := readObject(body, limit, "user_id", "product_name", "product_description", "product_price", "product_images")
	if err != nil {
		return product.Draft{}, err
	}
	r.required("product_name", "product_price")
	r.notNull("product_description", "product_images")
	var d product.Draft
	r.id("user_id", &d.UserID)
	r.str("product_name", &d.Name)
	r.str("product_description", &d.Description)
	r.price("product_price", &d.Price)
	r.strings("product_images", &d.ImageURLs)
	if d.UserID == uuid.Nil {
		d.UserID = owner // as the service would: checked here to report every problem at once
	}
	if err := r.check(d.Validate()); err != nil {
		return product.Draft{}, err
	}
	return d, nil
}

// productID parses the :id path parameter.
func productID(c echo.Context) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return uuid.Nil, badRequest(product.FieldError{Field: "id", Problem: "must be a UUID"})
	}
	return id, nil
}

func (s *Server) getProduct(c echo.Context) error {
	id, err := productID(c)
	if err != nil {
		return err
	}
	wait, err := waitParam(c, s.cfg.MaxWait)
	if err != nil {
		return err
	}
	p, err := s.getSettled(c.Request().Context(), caller(c), id, wait)
	if err != nil {
		return err
	}
	tag := etag(p.Version)
	c.Response().Header().Set("ETag", tag)
	if matchesAny(c.Request().Header.Get("If-None-Match"), tag) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.JSON(http.StatusOK, toJSON(p))
}

// matchesAny reports whether an If-None-Match list names tag or is "*".
func matchesAny(list, tag string) bool {
	for t := range strings.SplitSeq(list, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == tag || t == "*" {
			return true
		}
	}
	return false
}

// target returns the product a change names and the version its If-Match
// demands (0 for none).
func target(c echo.Context) (uuid.UUID, int, error) {
	id, err := productID(c)
	if err != nil {
		return uuid.Nil, 0, err
	}
	version, err := ifMatch(c)
	return id, version, err
}

// ifMatch returns the version an If-Match header demands, or 0 when it
// demands none. A tag that can name no version can never match.
func ifMatch(c echo.Context) (int, error) {
	h := strings.TrimSpace(c.Request().Header.Get("If-Match"))
	if h == "" || h == "*" {
		return 0, nil
	}
	v, err := strconv.Atoi(trimQuotes(h))
	if err != nil || v < 1 || !strings.HasPrefix(h, `"`) {
		return 0, product.ErrVersionMismatch
	}
	return v, nil
}

func (s *Server) updateProduct(c echo.Context) error {
	id, version, err := target(c)
	if err != nil {
		return err
	}
	patch, err := readPatch(c.Request().Body, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	p, err := s.products.Update(c.Request().Context(), caller(c), id, patch, version)
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", etag(p.Version))
	return c.JSON(http.StatusOK, toJSON(p))
}

// readPatch reads a merge patch's body, or returns a *ValidationError
// naming every member it cannot read. The service validates the patched
// product.
func readPatch(body io.Reader, limit int64) (product.Patch, error) {
	r, err := readObject(body, limit, "product_name", "product_description", "product_price", "product_images")
	if err != nil {
		return product.Patch{}, err
	}
	// In a merge patch, null clears a field: only the optional ones may be cleared.
	r.notNull("product_name", "product_price")
	var patch product.Patch
	if ok, _ := r.present("product_name"); ok {
		patch.Name = new(string)
		r.str("product_name", patch.Name)
	}
	if ok, _ := r.present("product_description"); ok {
		patch.Description = new(string)
		r.str("product_description", patch.Description)
	}
	if ok, _ := r.present("product_price"); ok {
		patch.Price = new(product.Price)
		r.price("product_price", patch.Price)
	}
	if ok, _ := r.present("product_images"); ok {
		patch.ImageURLs = &[]string{}
		r.strings("product_images", patch.ImageURLs)
	}
	if err := r.err(); err != nil {
		return product.Patch{}, err
	}
	return patch, nil
}

func (s *Server) deleteProduct(c echo.Context) error {
	id, version, err := target(c)
	if err != nil {
		return err
	}
	if err := s.products.Delete(c.Request().Context(), caller(c), id, version); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
