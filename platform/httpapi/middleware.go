package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pms-dev/pms/product/correlation"
)

// HeaderRequestID carries the request/correlation id in requests and
// responses. It is written in canonical form (X-Request-ID on the wire is
// the same header): http.Header canonicalizes any other spelling anew, at
// the cost of an allocation, on every Get and Set.
const HeaderRequestID = "X-Request-Id"

// requestID returns the id assigned to the request by withRequest: its
// correlation id.
func requestID(c echo.Context) string { return correlation.ID(c.Request().Context()) }

// validRequestID reports whether a client's id is safe to log and echo back.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

// traceHeaders is the carrier the propagator reads a request's trace
// context from: propagation.HeaderCarrier, but the W3C headers' names,
// which the propagator asks for in lower case, are looked up in canonical
// form at once, not canonicalised into a new string on every request.
type traceHeaders http.Header

func (h traceHeaders) Get(key string) string {
	var vs []string
	switch key {
	case "traceparent":
		vs = h["Traceparent"]
	case "tracestate":
		vs = h["Tracestate"]
	default:
		return http.Header(h).Get(key)
	}
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

func (h traceHeaders) Set(key, value string) { http.Header(h).Set(key, value) }
func (h traceHeaders) Keys() []string        { return propagation.HeaderCarrier(h).Keys() }

// serverSpan is the option of every request's span, made once.
var serverSpan = trace.WithSpanKind(trace.SpanKindServer)

// withRequest makes a request's context, in one copy of the request: it
// honours a valid incoming X-Request-ID or makes one, echoes it back, and
// puts it into the context as the correlation id (which the messages the
// request causes carry), with the request's span and a logger carrying
// both; and it bounds the work the request may cause to d, plus the wait a
// GET asks for (see waitParam).
func withRequest(log zerolog.Logger, d, maxWait time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			id := req.Header.Get(HeaderRequestID)
			if !validRequestID(id) {
				id = newRequestID()
			}
			c.Response().Header()[HeaderRequestID] = []string{id} // canonical: Set would check
			// The span continues the caller's trace (traceparent) if any; its
			// id goes into every log line of the request and, through the
			// outbox, into the messages it causes.
			ctx := otel.GetTextMapPropagator().Extract(req.Context(), traceHeaders(req.Header))
			ctx, span := tracer.Start(ctx, spanName(req.Method, c.Path()), serverSpan)
			defer span.End()
			// Attributes only for spans that are kept: pms's samplers decide
			// by the trace id alone, and most spans are not sampled.
			if span.IsRecording() {
				span.SetAttributes(attribute.String("http.request.method", req.Method), attribute.String("http.route", c.Path()),
					attribute.String("pms.request_id", id))
			}
			rl := &requestLog{id: id, method: req.Method, route: c.Path(), traceID: span.SpanContext().TraceID()}
			if rc, ok := c.(*requestContext); ok {
				rc.log = rl // for authenticate
			}
			l := log.Hook(rl)
			wait, _ := waitParam(c, maxWait) // a bad one is the handler's 400
			ctx, cancel := withLazyDeadline(ctx, time.Now().Add(d+wait))
			defer cancel()
			c.SetRequest(req.WithContext(correlation.WithID(l.WithContext(ctx), id)))
			err := next(c)
			if span.IsRecording() {
				status := c.Response().Status
				span.SetAttributes(attribute.Int("http.response.status_code", status))
				if status >= 500 {
					span.SetStatus(codes.Error, http.StatusText(status))
				}
			}
			return err
		}
	}
}

// requestLog is what every log line of a request says of it: a hook on
// the request's logger that writes these fields when a line is written.
// zerolog's With would copy the logger's context into a new 500-byte
// buffer for every request, most of whose lines are only the one
// logRequests writes.
type requestLog struct {
	id, method, route string
	traceID           trace.TraceID // invalid (zero) without a span
	// Who the request acts for, set by authenticate once the key is known.
	// Nothing of the request logs while authenticate sets them: what it
	// started so far (the key lookup, whose fill may run on a goroutine of
	// its own) has returned, and a lookup that gave up early (its client
	// left) returned an error.
	user, key uuid.UUID
}

func (r *requestLog) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str("request_id", r.id).Str("method", r.method).Str("route", r.route)
	if r.traceID.IsValid() {
		e.Hex("trace_id", r.traceID[:])
	}
	if r.user != uuid.Nil {
		var buf [2 * (36 + 2)]byte // two quoted UUIDs, not a string each
		user := appendUUID(buf[:0], r.user)
		e.RawJSON("user_id", user).RawJSON("key_id", appendUUID(buf[len(user):len(user)], r.key))
	}
}

// memo keeps what build made of each key, so each is made once: for the
// per-request bookkeeping whose keys are few (pms's routes, methodLabel's
// methods, the statuses pms answers).
type memo[K comparable, V any] struct {
	build func(K) V

	mu sync.RWMutex
	m  map[K]V
}

func newMemo[K comparable, V any](build func(K) V) *memo[K, V] {
	return &memo[K, V]{build: build, m: map[K]V{}}
}

// get returns the value of k, made now if it is the first time.
func (c *memo[K, V]) get(k K) V {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if !ok {
		v = c.build(k)
		c.mu.Lock()
		c.m[k] = v
		c.mu.Unlock()
	}
	return v
}

// spanNames holds "<method> <route>", the name of each route's spans.
var spanNames = newMemo(func(k routeKey) string { return k.method + " " + k.path })

func spanName(method, route string) string {
	return spanNames.get(routeKey{methodLabel(method), route})
}

// tracer starts the spans of requests.
var tracer = otel.Tracer("github.com/pms-dev/pms/platform/httpapi")

// metrics counts requests and their durations by route and status.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	degraded *prometheus.CounterVec
	refused  *prometheus.CounterVec

	// The series of each method, route and status seen, resolved once:
	// looking the labels up cost more than the rest of the bookkeeping.
	series *memo[seriesKey, series]
}

type seriesKey struct {
	method, route string
	status        int
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// seriesOf returns the request counter and the latency histogram of a
// method (as methodLabel names it), route and status. Every one of them is
// pms's own, so there are only so many series.
func (m *metrics) seriesOf(method, route string, status int) series {
	return m.series.get(seriesKey{methodLabel(method), route, status})
}

// methodLabel is a request method as the metrics label it: one of HTTP's
// own, or "other". The client chooses the method, and each name it made up
// would otherwise become series of its own.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "other"
}

// Limits of pms_rate_limit_refusals_total.
const (
	limitRead         = "read"
	limitWrite        = "write"
	limitAuthFailures = "auth_failures"
)

// newMetrics registers the request metrics on reg, or takes the ones
// already there: the API and the operator listener of one process share
// them.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pms_http_requests_total", Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pms_http_request_duration_seconds", Help: "HTTP request latency by method and route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route"}),
		degraded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pms_http_degraded_reads_total",
			Help: "Requests answered from caches alone, by route, while PostgreSQL was unavailable to authenticate them.",
		}, []string{"route"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pms_rate_limit_refusals_total",
			Help: "Requests refused with 429, by limit: read or write (per API key), auth_failures (per client address).",
		}, []string{"limit"}),
	}
	for _, l := range []string{limitRead, limitWrite, limitAuthFailures} {
		m.refused.WithLabelValues(l)
	}
	var err error
	if m.refused, err = register(reg, m.refused); err != nil {
		return nil, err
	}
	if m.degraded, err = register(reg, m.degraded); err != nil {
		return nil, err
	}
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	m.series = newMemo(func(k seriesKey) series {
		return series{requests: m.requests.WithLabelValues(k.method, k.route, strconv.Itoa(k.status)),
			duration: m.duration.WithLabelValues(k.method, k.route)}
	})
	return m, nil
}

// register registers c on reg and returns it, or the identical collector
// registered before.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	if err != nil {
		return c, fmt.Errorf("register http metrics: %w", err)
	}
	return c, nil
}

// logRequests writes one log line per request at level and records its
// metrics. It runs the error handler itself so the status logged is the one
// sent.
func logRequests(m *metrics, level zerolog.Level) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			if err := next(c); err != nil {
				c.Error(err)
			}
			took := time.Since(start)
			req, res := c.Request(), c.Response()
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			sr := m.seriesOf(req.Method, route, res.Status)
			sr.requests.Inc()
			sr.duration.Observe(took.Seconds())
			ev := zerolog.Ctx(req.Context()).WithLevel(level)
			if caller(c).Degraded {
				ev = ev.Bool("degraded", true) // authenticated from the cache alone
				if res.Status < http.StatusInternalServerError {
					m.degraded.WithLabelValues(route).Inc()
				}
			}
			ev.Int("status", res.Status).
				Dur("latency", took).
				Int64("bytes", res.Size).
				Str("remote_ip", c.RealIP()).
				Msg("request")
			return nil
		}
	}
}

// recoverPanics turns a panic in a handler into a 500.
func recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return next(c)
	}
}

// requireJSON refuses request bodies that are not JSON in UTF-8 (415), but
// lets a request with no body and no Content-Type through, or
// larger than limit (413, also when the body turns out larger than
// Content-Length said).
func requireJSON(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.Method != http.MethodPost && req.Method != http.MethodPatch && req.Method != http.MethodPut {
				return next(c)
			}
			// A request without a body (the image retry) declares no type;
			// a handler that needs a body refuses an empty one itself.
			if req.ContentLength == 0 && req.Header.Get(echo.HeaderContentType) == "" {
				return next(c)
			}
			mt, params, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
			if err != nil || (mt != echo.MIMEApplicationJSON && mt != "application/merge-patch+json") {
				return echo.NewHTTPError(http.StatusUnsupportedMediaType, "the request body must be application/json")
			}
			// JSON is UTF-8 (RFC 8259); a body declared otherwise would be misread.
			if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
				return echo.NewHTTPError(http.StatusUnsupportedMediaType, "the request body must be application/json in UTF-8")
			}
			if req.ContentLength > limit {
				return errTooLarge(limit)
			}
			req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
			return next(c)
		}
	}
}

func errTooLarge(limit int64) error {
	return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body must be at most %d bytes", limit))
}

// isTooLarge reports whether reading the body hit the size limit.
func isTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
