package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"
)

// Check is one readiness check. A failing check that is not Critical makes
// the service "degraded" but still ready.
type Check struct {
	Name     string
	Critical bool
	Run      func(ctx context.Context) error
}

// Readiness limits: how long a report is reused, how long each check may
// take, and how often a failing check is logged.
const (
	readyEvery    = time.Second
	checkTimeout  = 2 * time.Second
	readyLogEvery = 10 * time.Second
)

// What /ready says of each check: all a caller learns. The error itself
// (which may name hosts, users or addresses) goes only to the log.
const (
	resultOK      = "ok"
	resultFailed  = "failed"
	resultTimeout = "timeout"
)

type readyJSON struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

type readyReport struct {
	status int
	body   readyJSON
}

// readiness runs the checks for /ready at most once per readyEvery however
// often it is asked: callers that arrive during a run share it, and later
// ones get its report until it is readyEvery old. A flood of /ready then
// costs each dependency at most one probe a second, not a pool connection
// or a Kafka request per call.
type readiness struct {
	checks []Check
	log    zerolog.Logger
	flight singleflight.Group

	mu      sync.Mutex
	report  readyReport
	at      time.Time // when report was made; zero before the first run
	failing map[string]*failure
}

// failure is what the log knows of a failing check.
type failure struct {
	logged     time.Time
	suppressed int
}

func newReadiness(checks []Check, log zerolog.Logger) *readiness {
	return &readiness{checks: checks, log: log, failing: map[string]*failure{}}
}

// fresh returns the last report if it is recent enough to reuse.
func (r *readiness) fresh(now time.Time) (readyReport, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at.IsZero() || now.Sub(r.at) >= readyEvery {
		return readyReport{}, false
	}
	return r.report, true
}

// get returns a report at most readyEvery old, running the checks if there
// is none. The run outlives the caller that started it, so that caller
// leaving does not fail the others; an error means ctx ended first.
func (r *readiness) get(ctx context.Context) (readyReport, error) {
	if rep, ok := r.fresh(time.Now()); ok {
		return rep, nil
	}
	ch := r.flight.DoChan("ready", func() (any, error) {
		// A run may have ended between fresh and DoChan.
		if rep, ok := r.fresh(time.Now()); ok {
			return rep, nil
		}
		return r.run(context.WithoutCancel(ctx)), nil
	})
	select {
	case res := <-ch:
		return res.Val.(readyReport), nil
	case <-ctx.Done():
		return readyReport{}, ctx.Err()
	}
}

// run runs every check concurrently, each with its own timeout: 200 "ok" or
// "degraded" when every critical check passes, else 503.
func (r *readiness) run(ctx context.Context) readyReport {
	results := make([]error, len(r.checks))
	var wg sync.WaitGroup
	for i, ch := range r.checks {
		wg.Go(func() { results[i] = runCheck(ctx, ch) })
	}
	wg.Wait()
	rep := readyReport{status: http.StatusOK, body: readyJSON{Status: "ok", Checks: make(map[string]string, len(r.checks))}}
	for i, ch := range r.checks {
		err := results[i]
		switch {
		case err == nil:
			rep.body.Checks[ch.Name] = resultOK
		case errors.Is(err, context.DeadlineExceeded):
			rep.body.Checks[ch.Name] = resultTimeout
		default:
			rep.body.Checks[ch.Name] = resultFailed
		}
		if err != nil && ch.Critical {
			rep.status, rep.body.Status = http.StatusServiceUnavailable, "unavailable"
		} else if err != nil && rep.body.Status == "ok" {
			rep.body.Status = "degraded"
		}
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, ch := range r.checks {
		r.note(ch, results[i], now)
	}
	r.report, r.at = rep, now
	return rep
}

// runCheck runs one check under checkTimeout; a panic is its failure, since
// no recovery middleware watches this goroutine.
func runCheck(ctx context.Context, ch Check) (err error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("check %s panicked: %v", ch.Name, p)
		}
	}()
	return ch.Run(ctx)
}

// note logs a check's failure at most once per readyLogEvery, with the
// number of failures held back, and its recovery once. r.mu is held.
func (r *readiness) note(ch Check, err error, now time.Time) {
	f := r.failing[ch.Name]
	switch {
	case err == nil && f != nil:
		delete(r.failing, ch.Name)
		r.log.Info().Str("check", ch.Name).Msg("readiness check passes again")
	case err == nil:
	case f == nil || now.Sub(f.logged) >= readyLogEvery:
		suppressed := 0
		if f != nil {
			suppressed = f.suppressed
		}
		r.failing[ch.Name] = &failure{logged: now}
		r.log.Warn().Err(err).Str("check", ch.Name).Bool("critical", ch.Critical).Int("suppressed", suppressed).
			Msg("readiness check failed")
	default:
		f.suppressed++
	}
}

// ready answers /ready from a report at most readyEvery old.
func (s *Server) ready(c echo.Context) error {
	rep, err := s.readiness.get(c.Request().Context())
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(rep.status, rep.body)
}

// Ready reports whether the operator listener's /ready would answer 200
// now: every critical check passes. It is false on a Server without checks
// (the API's), or when ctx ends first.
func (s *Server) Ready(ctx context.Context) bool {
	if s.readiness == nil {
		return false
	}
	rep, err := s.readiness.get(ctx)
	return err == nil && rep.status == http.StatusOK
}

var (
	readyDesc = prometheus.NewDesc("pms_ready",
		"1 when /ready answers 200 (every critical check passes), else 0.", nil, nil)
	readyCheckDesc = prometheus.NewDesc("pms_ready_check",
		"1 when the readiness check passes, else 0 (failed or timed out).", []string{"check", "critical"}, nil)
)

// Describe implements prometheus.Collector: the readiness report as
// gauges, so that Prometheus, which scrapes /metrics, sees /ready too.
func (r *readiness) Describe(ch chan<- *prometheus.Desc) {
	ch <- readyDesc
	ch <- readyCheckDesc
}

// Collect implements prometheus.Collector, from a report at most
// readyEvery old (the one /ready would answer with).
func (r *readiness) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout+time.Second)
	defer cancel()
	rep, err := r.get(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, boolValue(rep.status == http.StatusOK))
	for _, c := range r.checks {
		ch <- prometheus.MustNewConstMetric(readyCheckDesc, prometheus.GaugeValue, boolValue(rep.body.Checks[c.Name] == resultOK),
			c.Name, strconv.FormatBool(c.Critical))
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
