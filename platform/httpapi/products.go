package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/pms-dev/pms/product"
)

// Headers of the product endpoints, in canonical form (see HeaderRequestID).
const (
	headerETag           = "Etag"
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
	h.Set(headerETag, etag(p.Version))
	if replayed {
		h.Set(headerReplayed, "true")
	}
	return writeProduct(c, http.StatusCreated, p)
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
	c.Response().Header().Set(headerETag, tag)
	if matchesAny(c.Request().Header.Get("If-None-Match"), tag) {
		return c.NoContent(http.StatusNotModified)
	}
	return writeProduct(c, http.StatusOK, p)
}

// retryImage queues a failed image again (product.Service.RetryImage) and
// answers 202 with the product, the image pending.
func (s *Server) retryImage(c echo.Context) error {
	id, err := productID(c)
	if err != nil {
		return err
	}
	pos, err := strconv.Atoi(c.Param("position"))
	if err != nil || pos < 0 || pos >= product.MaxImages {
		return badRequest(product.FieldError{Field: "position", Problem: fmt.Sprintf("must be an image position, 0 to %d", product.MaxImages-1)})
	}
	p, err := s.products.RetryImage(c.Request().Context(), caller(c), id, pos)
	if err != nil {
		return err
	}
	c.Response().Header().Set(headerETag, etag(p.Version))
	return writeProduct(c, http.StatusAccepted, p)
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
	c.Response().Header().Set(headerETag, etag(p.Version))
	return writeProduct(c, http.StatusOK, p)
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
