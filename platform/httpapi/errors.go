package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
	"github.com/pms-dev/pms/webhook"
)

// apiError is a failure with its public status, code and message.
type apiError struct {
	Status  int
	Code    string
	Message string
	Fields  []product.FieldError
	Header  http.Header
	Err     error // cause, for the log only
}

func (e *apiError) Error() string { return e.Message }
func (e *apiError) Unwrap() error { return e.Err }

// errorTable maps domain errors to responses: the only place where an error
// gets its HTTP status.
var errorTable = []struct {
	err     error
	status  int
	code    string
	message string
}{
	{product.ErrNotFound, http.StatusNotFound, "not_found", "product not found"},
	{webhook.ErrNotFound, http.StatusNotFound, "not_found", "webhook or delivery not found"},
	{account.ErrForbidden, http.StatusForbidden, "forbidden", "this API key may not do that"},
	{account.ErrUserNotFound, http.StatusUnprocessableEntity, "unknown_user", "user_id names no user"},
	{account.ErrKeyNotFound, http.StatusNotFound, "not_found", "API key not found"},
	{account.ErrEmailTaken, http.StatusConflict, "conflict", "another user has this email address"},
	{product.ErrIdempotencyKey, http.StatusUnprocessableEntity, "idempotency_key_reused", "Idempotency-Key was already used with a different request"},
	{product.ErrInvalidInput, http.StatusBadRequest, "invalid_input", "the request holds a value that cannot be stored"},
	{product.ErrVersionMismatch, http.StatusPreconditionFailed, "version_mismatch", "the product has changed since the version in If-Match"},
	{product.ErrConflict, http.StatusConflict, "conflict", "the change conflicts with existing data"},
	{product.ErrImageNotFailed, http.StatusConflict, "image_not_failed", "only a failed image can be retried"},
	{product.ErrUnavailable, http.StatusServiceUnavailable, "unavailable", "a dependency is unavailable; try again shortly"},
	{context.DeadlineExceeded, http.StatusServiceUnavailable, "timeout", "the request took too long; try again shortly"},
	// The client went away (its request's context ends with its
	// connection): nobody reads the answer, and nothing failed on this side.
	// 499 is nginx's status for it, so that logs and metrics do not count it
	// as a server error.
	{context.Canceled, statusClientClosedRequest, "client_closed_request", "the client closed the request"},
}

// statusClientClosedRequest is the status of a request whose client left
// before its answer.
const statusClientClosedRequest = 499

// echoCodes names the codes of errors Echo itself raises.
var echoCodes = map[int]string{
	http.StatusNotFound:              "not_found",
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusRequestEntityTooLarge: "payload_too_large",
	http.StatusRequestTimeout:        "request_timeout",
	http.StatusUnsupportedMediaType:  "unsupported_media_type",
	http.StatusTooManyRequests:       "rate_limited",
	http.StatusUnauthorized:          "unauthorized",
	http.StatusForbidden:             "forbidden",
}

// toAPIError finds the response for err, falling back to a 500 that reveals
// nothing.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, account.ErrUnauthenticated) {
		return errUnauthenticated(err.Error())
	}
	if fields, ok := invalidFields(err); ok {
		return &apiError{Status: http.StatusBadRequest, Code: "validation_failed", Message: "the request has invalid fields", Fields: fields, Err: err}
	}
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			return &apiError{Status: row.status, Code: row.code, Message: row.message, Err: err}
		}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code, ok := echoCodes[he.Code]
		if !ok {
			code = "http_" + http.StatusText(he.Code)
		}
		msg, _ := he.Message.(string)
		if msg == "" {
			msg = http.StatusText(he.Code)
		}
		return &apiError{Status: he.Code, Code: code, Message: msg, Err: err}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Err: err}
}

// invalidFields returns the fields of the product or account
// *ValidationError in err's chain, or false when there is none.
func invalidFields(err error) ([]product.FieldError, bool) {
	var ve *product.ValidationError
	if errors.As(err, &ve) {
		return ve.Fields, true
	}
	var ae *account.ValidationError
	if !errors.As(err, &ae) {
		return nil, false
	}
	fields := make([]product.FieldError, len(ae.Fields))
	for i, f := range ae.Fields {
		fields[i] = product.FieldError(f)
	}
	return fields, true
}

type errorBody struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	Code      string      `json:"code"`
	Message   string      `json:"message"`
	Fields    []fieldJSON `json:"fields,omitempty"`
	RequestID string      `json:"request_id,omitempty"`
}

type fieldJSON struct {
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

// handleError is Echo's HTTPErrorHandler: it logs the error once, at error
// level for 5xx, warn for input only the store refused, and debug for other
// 4xx, and writes the error envelope.
func handleError(err error, c echo.Context) {
	ae := toAPIError(err)
	log := zerolog.Ctx(c.Request().Context())
	switch {
	case ae.Status >= 500:
		log.Error().Err(err).Int("status", ae.Status).Msg("request failed")
	case errors.Is(err, product.ErrInvalidInput):
		// The store refused what validation let through: a gap to close.
		log.Warn().Err(err).Int("status", ae.Status).Msg("request refused by the store, not by validation")
	default:
		log.Debug().Err(err).Int("status", ae.Status).Msg("request refused")
	}
	if c.Response().Committed {
		return
	}
	for k, vs := range ae.Header {
		c.Response().Header()[k] = vs
	}
	if ae.Status == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", "1")
	}
	body := errorBody{errorJSON{Code: ae.Code, Message: ae.Message, RequestID: requestID(c)}}
	for _, f := range ae.Fields {
		body.Error.Fields = append(body.Error.Fields, fieldJSON(f))
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(ae.Status)
		return
	}
	_ = c.JSON(ae.Status, body) // the client is gone if this fails; nothing left to do
}

// badRequest returns a 400 naming the fields that could not be read.
func badRequest(fields ...product.FieldError) error {
	return &product.ValidationError{Fields: fields}
}
