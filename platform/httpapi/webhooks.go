package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/webhook"
)

// webhookJSON is the public representation of a subscription. Secret is
// set only in the answers that make one (create and rotate).
type webhookJSON struct {
	ID             uuid.UUID  `json:"id"`
	URL            string     `json:"url"`
	EventTypes     []string   `json:"event_types"`
	Enabled        bool       `json:"enabled"`
	Status         string     `json:"status"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	FailingSince   *time.Time `json:"failing_since,omitempty"`
	Secret         string     `json:"secret,omitempty"`
	// PreviousSecretUntil is when the secret rotated out stops signing.
	PreviousSecretUntil *time.Time `json:"previous_secret_until,omitempty"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`
}

func webhookToJSON(w webhook.Subscription, withSecret bool) webhookJSON {
	out := webhookJSON{ID: w.ID, URL: w.URL, EventTypes: w.EventTypes, Enabled: w.Enabled, DisabledReason: w.DisabledReason,
		CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt}
	switch {
	case w.Enabled:
		out.Status = "active"
	case !w.FailingSince.IsZero():
		out.Status = "failing"
	case w.DisabledReason != "":
		out.Status = "gone"
	default:
		out.Status = "disabled"
	}
	if !w.FailingSince.IsZero() {
		out.FailingSince = &w.FailingSince
	}
	if w.PreviousSecret != "" && time.Now().Before(w.PreviousSecretUntil) {
		out.PreviousSecretUntil = &w.PreviousSecretUntil
	}
	if withSecret {
		out.Secret = w.Secret
	}
	return out
}

// deliveryJSON is one entry of a subscription's delivery log.
type deliveryJSON struct {
	ID            uuid.UUID  `json:"id"`
	EventID       uuid.UUID  `json:"event_id"`
	EventType     string     `json:"event_type"`
	ProductID     uuid.UUID  `json:"product_id"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	ResponseCode  int        `json:"response_code,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	LatencyMS     float64    `json:"latency_ms"`
	CreatedAt     time.Time  `json:"created_at"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	Seq           int64      `json:"seq"`
}

func deliveryToJSON(d webhook.Delivery) deliveryJSON {
	out := deliveryJSON{ID: d.ID, EventID: d.EventID, EventType: d.EventType, ProductID: d.ProductID, Status: d.Status,
		Attempts: d.Attempts, ResponseCode: d.ResponseCode, LastError: d.LastError,
		LatencyMS: float64(d.Latency) / float64(time.Millisecond), CreatedAt: d.CreatedAt, Seq: d.Seq}
	if d.Status == webhook.StatusPending {
		out.NextAttemptAt = &d.NextAttemptAt
	}
	if !d.FinishedAt.IsZero() {
		out.FinishedAt = &d.FinishedAt
	}
	return out
}

// pathID parses a UUID path parameter.
func pathID(c echo.Context, name string) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Param(name))
	if err != nil {
		return uuid.Nil, badRequest(product.FieldError{Field: name, Problem: "must be a UUID"})
	}
	return id, nil
}

func (s *Server) createWebhook(c echo.Context) error {
	r, err := readObject(c.Request().Body, s.cfg.MaxBodyBytes, "url", "event_types", "enabled")
	if err != nil {
		return err
	}
	r.required("url", "event_types")
	var d webhook.Draft
	r.str("url", &d.URL)
	r.strings("event_types", &d.EventTypes)
	if ok, _ := r.present("enabled"); ok {
		d.Enabled = new(bool)
		r.boolean("enabled", d.Enabled)
	}
	if err := r.err(); err != nil {
		return err
	}
	w, err := s.webhooks.Create(c.Request().Context(), caller(c), d)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/webhooks/"+w.ID.String())
	return c.JSON(http.StatusCreated, webhookToJSON(w, true))
}

func (s *Server) listWebhooks(c echo.Context) error {
	ws, err := s.webhooks.List(c.Request().Context(), caller(c))
	if err != nil {
		return err
	}
	items := make([]webhookJSON, len(ws))
	for i, w := range ws {
		items[i] = webhookToJSON(w, false)
	}
	return c.JSON(http.StatusOK, map[string]any{"items": items})
}

func (s *Server) getWebhook(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	w, err := s.webhooks.Get(c.Request().Context(), caller(c), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, webhookToJSON(w, false))
}

func (s *Server) updateWebhook(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	p, err := readWebhookPatch(c.Request().Body, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	w, err := s.webhooks.Update(c.Request().Context(), caller(c), id, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, webhookToJSON(w, false))
}

// readWebhookPatch reads a merge patch of a subscription; no member may be
// null.
func readWebhookPatch(body io.Reader, limit int64) (webhook.Patch, error) {
	r, err := readObject(body, limit, "url", "event_types", "enabled")
	if err != nil {
		return webhook.Patch{}, err
	}
	r.notNull("url", "event_types", "enabled")
	var p webhook.Patch
	if ok, _ := r.present("url"); ok {
		p.URL = new(string)
		r.str("url", p.URL)
	}
	if ok, _ := r.present("event_types"); ok {
		p.EventTypes = &[]string{}
		r.strings("event_types", p.EventTypes)
	}
	if ok, _ := r.present("enabled"); ok {
		p.Enabled = new(bool)
		r.boolean("enabled", p.Enabled)
	}
	return p, r.err()
}

func (s *Server) rotateWebhookSecret(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	w, err := s.webhooks.RotateSecret(c.Request().Context(), caller(c), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, webhookToJSON(w, true))
}

func (s *Server) deleteWebhook(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	if err := s.webhooks.Delete(c.Request().Context(), caller(c), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// listDeliveries answers a page of the log, newest first; next_before, when
// set, is the before of the next page.
func (s *Server) listDeliveries(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	limit, before, err := deliveryPage(c.QueryParams())
	if err != nil {
		return err
	}
	ds, err := s.webhooks.Deliveries(c.Request().Context(), caller(c), id, limit, before)
	if err != nil {
		return err
	}
	items := make([]deliveryJSON, len(ds))
	for i, d := range ds {
		items[i] = deliveryToJSON(d)
	}
	out := map[string]any{"items": items}
	if len(ds) == limit {
		out["next_before"] = ds[len(ds)-1].Seq
	}
	return c.JSON(http.StatusOK, out)
}

// deliveryPage reads limit (default 50) and before (default 0, the newest).
func deliveryPage(q url.Values) (limit int, before int64, err error) {
	var ps product.Problems
	limit = 50
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil {
			ps.Add("limit", "must be an integer")
		}
	}
	if v := q.Get("before"); v != "" {
		if before, err = strconv.ParseInt(v, 10, 64); err != nil || before < 0 {
			ps.Add("before", "must be a non-negative integer")
		}
	}
	return limit, before, ps.Err()
}

func (s *Server) retryDelivery(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	did, err := pathID(c, "delivery_id")
	if err != nil {
		return err
	}
	d, err := s.webhooks.Retry(c.Request().Context(), caller(c), id, did)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, deliveryToJSON(d))
}

func (r *fieldReader) boolean(name string, dst *bool) {
	if raw, ok := r.member(name); ok {
		if json.Unmarshal(raw, dst) != nil {
			r.problems.Add(name, "must be true or false")
		}
	}
}
