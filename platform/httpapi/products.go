package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
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

// imageJSON tells where one image is in processing.
type imageJSON struct {
	Position      int    `json:"position"`
	SourceURL     string `json:"source_url"`
	Status        string `json:"status"`
	Attempts      int    `json:"attempts"`
	ErrorCode     string `json:"error_code,omitempty"`
	CompressedURL string `json:"compressed_url,omitempty"`
	Width         int    `json:"width,omitempty"`
	Height        int    `json:"height,omitempty"`
	Bytes         int64  `json:"bytes,omitempty"`
	Format        string `json:"format,omitempty"`
}

func toJSON(p product.Product) productJSON {
	out := productJSON{
		ID: p.ID, UserID: p.UserID, ProductName: p.Name, ProductDescription: p.Description,
		ProductPrice: json.Number(p.Price.String()), ProductImages: p.SourceURLs(),
		CompressedProductImages: p.CompressedURLs(), Images: make([]imageJSON, len(p.Images)),
		Version: p.Version, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	for i, im := range p.Images {
		out.Images[i] = imageJSON{
			Position: im.Position, SourceURL: im.SourceURL, Status: string(im.Status), Attempts: im.Attempts,
			ErrorCode: im.ErrorCode, CompressedURL: im.CompressedURL, Width: im.Width, Height: im.Height,
			Bytes: im.Bytes, Format: im.Format,
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
	obj, err := readJSONObject(c.Request().Body, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	r := newFieldReader(obj, "user_id", "product_name", "product_description", "product_price", "product_images")
	r.required("product_name", "product_price")
	r.notNull("product_description", "product_images")
	var d product.Draft
	r.id("user_id", &d.UserID)
	r.str("product_name", &d.Name)
	r.str("product_description", &d.Description)
	r.price("product_price", &d.Price)
	r.strings("product_images", &d.ImageURLs)
	if d.UserID == uuid.Nil {
		d.UserID = caller(c).UserID // as the service would: checked here to report every problem at once
	}
	if err := r.check(d.Validate()); err != nil {
		return err
	}
	key := c.Request().Header.Get(headerIdempotencyKey)
	if len(key) > 255 || (key == "" && c.Request().Header.Values(headerIdempotencyKey) != nil) {
		return badRequest(product.FieldError{Field: headerIdempotencyKey, Problem: "must be 1 to 255 characters"})
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
	p, err := s.products.Get(c.Request().Context(), caller(c), id)
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
	for _, t := range strings.Split(list, ",") {
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
	obj, err := readJSONObject(c.Request().Body, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	r := newFieldReader(obj, "product_name", "product_description", "product_price", "product_images")
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
		return err
	}
	p, err := s.products.Update(c.Request().Context(), caller(c), id, patch, version)
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", etag(p.Version))
	return c.JSON(http.StatusOK, toJSON(p))
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

// listParams are the query parameters GET /products understands.
var listParams = []string{"user_id", "min_price", "max_price", "name", "sort", "limit", "cursor"}

func (s *Server) listProducts(c echo.Context) error {
	f, err := parseFilter(c.QueryParams())
	if err != nil {
		return err
	}
	page, err := s.products.List(c.Request().Context(), caller(c), f)
	if err != nil {
		return err
	}
	out := pageJSON{Items: make([]productJSON, len(page.Items))}
	for i, p := range page.Items {
		out.Items[i] = toJSON(p)
	}
	if page.Next != nil {
		next := page.Next.String()
		out.NextCursor = &next
	}
	return c.JSON(http.StatusOK, out)
}

// parseFilter reads list parameters, naming every one that is unknown,
// repeated or unparsable.
func parseFilter(q url.Values) (product.Filter, error) {
	f := product.Filter{Sort: product.SortCreated, Limit: product.DefaultLimit}
	var ps product.Problems
	for name, vs := range q {
		switch {
		case !slices.Contains(listParams, name):
			ps.Add(name, "is not a known parameter")
		case len(vs) > 1:
			ps.Add(name, "must be given once")
		}
	}
	get := func(name string) (string, bool) {
		vs, ok := q[name]
		if !ok || len(vs) != 1 {
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
