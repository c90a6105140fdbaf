// Package httpapi serves the product REST API with Echo: the route table,
// request and response types, the error table and middleware.
package httpapi

import (
	"context"
	_ "embed" // the OpenAPI description
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
	"github.com/pms-dev/pms/webhook"
)

// openAPI describes the API; a test keeps it in step with the routes.
//
//go:embed openapi.yaml
var openAPI []byte

// Config says where the API listens and how long requests may take.
type Config struct {
	Addr              string        `mapstructure:"addr"`
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	ReadTimeout       time.Duration `mapstructure:"read_timeout"`
	WriteTimeout      time.Duration `mapstructure:"write_timeout"`
	IdleTimeout       time.Duration `mapstructure:"idle_timeout"`
	RequestTimeout    time.Duration `mapstructure:"request_timeout"`
	// MaxWait bounds GET /api/v1/products/{id}?wait=, which extends the
	// request's deadline by its wait.
	MaxWait         time.Duration `mapstructure:"max_wait"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	MaxBodyBytes    int64         `mapstructure:"max_body_bytes"`
	// MaxHeaderBytes bounds the request line and headers of a request (431
	// beyond), and so the memory each connection can make the server hold
	// before any handler runs; Go's own default is 1 MiB.
	MaxHeaderBytes int `mapstructure:"max_header_bytes"`
	// TrustedProxies are the CIDRs (or addresses) of the proxies that may
	// name the client address in X-Forwarded-For or X-Real-IP; for every
	// other peer the client is the peer itself. None by default.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
}

// DefaultConfig returns the defaults of every setting.
func DefaultConfig() Config {
	return Config{
		Addr:              ":8080",
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      35 * time.Second,
		IdleTimeout:       120 * time.Second,
		RequestTimeout:    10 * time.Second,
		MaxWait:           20 * time.Second,
		ShutdownTimeout:   15 * time.Second,
		MaxBodyBytes:      1 << 20,
		MaxHeaderBytes:    64 << 10,
		TrustedProxies:    []string{},
	}
}

// Validate reports every problem with the config.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("http.addr: must be host:port: %w", err))
	}
	for name, d := range map[string]time.Duration{
		"read_header_timeout": c.ReadHeaderTimeout, "read_timeout": c.ReadTimeout, "write_timeout": c.WriteTimeout,
		"idle_timeout": c.IdleTimeout, "request_timeout": c.RequestTimeout, "shutdown_timeout": c.ShutdownTimeout,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("http.%s: must be positive", name))
		}
	}
	if c.RequestTimeout >= c.WriteTimeout {
		errs = append(errs, errors.New("http.request_timeout: must be shorter than write_timeout"))
	}
	if c.MaxWait < 0 {
		errs = append(errs, errors.New("http.max_wait: must not be negative"))
	} else if c.RequestTimeout+c.MaxWait >= c.WriteTimeout {
		errs = append(errs, errors.New("http.max_wait: request_timeout + max_wait must be shorter than write_timeout"))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, errors.New("http.max_body_bytes: must be at least 1024"))
	}
	if c.MaxHeaderBytes < 4096 {
		errs = append(errs, errors.New("http.max_header_bytes: must be at least 4096"))
	}
	if _, err := parseProxies(c.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("http.trusted_proxies: %w", err))
	}
	return errors.Join(errs...)
}

// Server is the HTTP API, or the operator listener of NewOps.
type Server struct {
	cfg       Config
	products  *product.Service
	auth      *account.Service
	webhooks  *webhook.Service
	limiter   RateLimiter
	changes   Changes
	readiness *readiness
	metrics   *metrics
	log       zerolog.Logger
	echo      *echo.Echo
	http      *http.Server

	// The middleware every request passes, outermost first, and the routes
	// registered behind it (see handle and ServeHTTP).
	common []echo.MiddlewareFunc
	routes map[routeKey]struct{}

	// For limitFailures: the budget, and what this process remembers of
	// credentials that authenticated and client addresses that failed to.
	failures    FailureLimiter
	goodCreds   *recentSet[uint64]
	failedAddrs *recentSet[string]

	mu       sync.Mutex
	listener net.Listener
}

// API is what the product API serves: products, who may act on them, and
// how fast. A nil Limiter means no rate limit per key; a nil Failures, no
// limit on failed authentications per client address.
type API struct {
	Products *product.Service
	Auth     *account.Service
	Limiter  RateLimiter
	Failures FailureLimiter
	// Changes lets GET /api/v1/products/{id}?wait= wait for image results;
	// without it such a GET answers at once.
	Changes Changes
	// Webhooks serves /api/v1/webhooks.
	Webhooks *webhook.Service
}

// New returns a Server for the public product API: /health for load
// balancers, the OpenAPI description (/openapi.yaml, /openapi.json, and the
// /docs page), and the /api/v1 routes, each of which requires
// an API key. /ready and /metrics are for operators and live on NewOps's
// listener. The request metrics are registered on reg.
func New(cfg Config, api API, reg *prometheus.Registry, log zerolog.Logger) (*Server, error) {
	s, err := newServer(cfg, reg, zerolog.InfoLevel, log)
	if err != nil {
		return nil, err
	}
	s.products, s.auth, s.limiter, s.failures, s.changes, s.webhooks = api.Products, api.Auth, api.Limiter, api.Failures, api.Changes, api.Webhooks
	if err := s.serveDocs(); err != nil {
		return nil, err
	}
	// Middleware goes on each route, not the group: Echo answers a group's
	// unknown methods with 404 where 405 is right.
	var mw []echo.MiddlewareFunc
	if s.failures != nil {
		s.goodCreds, s.failedAddrs = newRecentSet[uint64](), newRecentSet[string]()
		mw = append(mw, s.limitFailures)
	}
	mw = append(mw, s.authenticate)
	if s.limiter != nil {
		mw = append(mw, s.limitRate)
	}
	for _, r := range []struct {
		method, path string
		h            echo.HandlerFunc
	}{
		{http.MethodGet, "/me", s.me},
		{http.MethodPost, "/products", s.createProduct},
		{http.MethodGet, "/products", s.listProducts},
		{http.MethodGet, "/products/:id", s.getProduct},
		{http.MethodPatch, "/products/:id", s.updateProduct},
		{http.MethodDelete, "/products/:id", s.deleteProduct},
		{http.MethodPost, "/products/:id/images/:position/retry", s.retryImage},
		{http.MethodPost, "/webhooks", s.createWebhook},
		{http.MethodGet, "/webhooks", s.listWebhooks},
		{http.MethodGet, "/webhooks/:id", s.getWebhook},
		{http.MethodPatch, "/webhooks/:id", s.updateWebhook},
		{http.MethodDelete, "/webhooks/:id", s.deleteWebhook},
		{http.MethodPost, "/webhooks/:id/rotate-secret", s.rotateWebhookSecret},
		{http.MethodGet, "/webhooks/:id/deliveries", s.listDeliveries},
		{http.MethodPost, "/webhooks/:id/deliveries/:delivery_id/retry", s.retryDelivery},
	} {
		s.handle(r.method, "/api/v1"+r.path, r.h, mw...)
	}
	return s, nil
}

type routeKey struct{ method, path string }

// handle registers h for method and path behind the common middleware and
// then mw, the chain built once: Echo would build a chain anew for every
// request.
func (s *Server) handle(method, path string, h echo.HandlerFunc, mw ...echo.MiddlewareFunc) {
	s.echo.Add(method, path, wrap(wrap(h, mw...), s.common...))
	s.routes[routeKey{method, path}] = struct{}{}
}

// ServeHTTP serves a request as Echo.ServeHTTP does, with the routes'
// chains built once (see handle). Only the answers Echo's router makes
// itself (404, 405, OPTIONS) get the common middleware per request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ec := s.echo.AcquireContext()
	ec.Reset(r, w)
	s.echo.Router().Find(r.Method, echo.GetPath(r), ec)
	h := ec.Handler()
	if _, ok := s.routes[routeKey{r.Method, ec.Path()}]; !ok {
		h = wrap(h, s.common...)
	}
	c := requestContexts.Get().(*requestContext)
	c.Context = ec
	if err := h(c); err != nil {
		s.echo.HTTPErrorHandler(err, c)
	}
	*c = requestContext{}
	requestContexts.Put(c)
	s.echo.ReleaseContext(ec)
}

// requestContext is the echo.Context of pms's handlers: Echo's, who the
// request acts for in a field of its own (see caller), and the fields of
// its log lines (see requestLog). Echo's store would make a map and box
// the caller for every request.
type requestContext struct {
	echo.Context
	caller account.Caller
	log    *requestLog // withRequest's
}

var requestContexts = sync.Pool{New: func() any { return new(requestContext) }}

// wrap returns h inside mw, the first outermost, as Echo applies a route's
// middleware.
func wrap(h echo.HandlerFunc, mw ...echo.MiddlewareFunc) echo.HandlerFunc {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// NewOps returns the operator listener of a process: /health, /ready
// (which runs checks, see readiness) and /metrics (what reg gathers). It is
// meant for a port that only operators and their tools reach. Its requests
// are logged at debug level, since probes and scrapes repeat all day.
func NewOps(cfg Config, checks []Check, reg *prometheus.Registry, log zerolog.Logger) (*Server, error) {
	s, err := newServer(cfg, reg, zerolog.DebugLevel, log)
	if err != nil {
		return nil, err
	}
	s.readiness = newReadiness(checks, log)
	if err := reg.Register(s.readiness); err != nil {
		return nil, fmt.Errorf("register readiness metrics: %w", err)
	}
	s.handle(http.MethodGet, "/ready", s.ready)
	s.handle(http.MethodGet, "/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	return s, nil
}

func newServer(cfg Config, reg *prometheus.Registry, logLevel zerolog.Level, log zerolog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	proxies, _ := parseProxies(cfg.TrustedProxies) // validated
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, echo: echo.New(), metrics: m, routes: map[routeKey]struct{}{},
		common: []echo.MiddlewareFunc{withRequest(log, cfg.RequestTimeout, cfg.MaxWait), logRequests(m, logLevel), recoverPanics, requireJSON(cfg.MaxBodyBytes)}}
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.IPExtractor = clientIP(proxies)
	e.HTTPErrorHandler = handleError
	s.handle(http.MethodGet, "/health", s.health)
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
	}
	return s, nil
}

// Handler returns the API as an http.Handler, for tests and embedding.
func (s *Server) Handler() http.Handler { return s }

// Listen binds the configured address; Run calls it when it has not been
// called. Addr tells the bound address afterwards (useful with port 0).
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	s.listener = ln
	return nil
}

// Addr returns the bound address, or "" before Listen.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// Run serves until ctx ends, then stops accepting connections and waits up
// to the shutdown timeout for requests in flight. It returns nil after a
// clean shutdown.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.listener) }()
	s.log.Info().Str("addr", s.Addr()).Msg("http server listening")
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	s.log.Info().Dur("timeout", s.cfg.ShutdownTimeout).Msg("http server shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down http server: %w", err)
	}
	return nil
}

func (s *Server) health(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}
