package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pms-dev/pms/platform/freeport"
	"github.com/pms-dev/pms/platform/sysmon"
)

// target is one measured load: a server and the requests sent to it.
type target struct {
	name string
	what string // for the report
	run  func(ctx context.Context, e *environment) (result, error)
}

// result is one run of a target.
type result struct {
	wrkResult
	cpu        map[string]time.Duration // per request, per measured process
	order      []string                 // of cpu's keys
	note       string                   // what the run checked
	statements float64                  // PostgreSQL statements per request
	serverP99  time.Duration            // of the latencies the server logged, 0 if it logs none
	top        string                   // the busiest of them
	host       host                     // what the machine did meanwhile
}

func (r result) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%8.0f req/s  mean %6.2f ms  p99 %7.2f ms", r.rps, ms(r.mean), ms(r.p99))
	if r.serverP99 > 0 {
		fmt.Fprintf(&b, " (in pms's log %.2f)", ms(r.serverP99))
	}
	b.WriteString("  CPU/req")
	for _, n := range r.order {
		fmt.Fprintf(&b, " %s %d µs", n, r.cpu[n].Microseconds())
	}
	if r.non2xx+r.errors > 0 {
		fmt.Fprintf(&b, "  (%d non-2xx, %d socket errors)", r.non2xx, r.errors)
	}
	fmt.Fprintf(&b, "  %.2f statements/req  %s", r.statements, r.host)
	if r.note != "" {
		b.WriteString("  " + r.note)
	}
	return b.String() + r.top
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// The JSON body every POST sends: one image, as a storefront would.
const postBody = `{"product_name":"Desk lamp","product_description":"Created by make load","product_price":24.5,` +
	`"product_images":["http://127.0.0.1:9/lamp.jpg"]}`

// allTargets returns every target in the order a round runs them: each
// target next to what its ratios compare it with (report's pairs), so that
// the host's drift between the two is as small as a round allows.
func allTargets(o options) []target {
	var ts []target
	add := func(name, what string, run func(context.Context, *environment) (result, error)) {
		ts = append(ts, target{name: name, what: what, run: run})
	}
	baseline := func(name, what string, run func(context.Context, *environment) (result, error)) {
		if o.baseline != "" {
			add(name, what, run)
		}
	}
	add("post", "POST /api/v1/products (one image), pms", postTarget(pmsServer("pms")))
	add("post-pgbench", "the create's SQL (product, image, two outbox rows) through pgbench -M prepared", postPgbenchTarget)
	baseline("post-baseline", "POST, the -baseline binary", postTarget(pmsServer("baseline")))
	add("post-noevents", "POST, pms with kafka.events_topic off (no event per change)", postTarget(pmsServer("pms", "PMS_KAFKA_EVENTS_TOPIC=")))
	add("get", "GET /api/v1/products/{id}, cached, near copies on", getTarget(pmsServer("pms")))
	add("get-echo", "GET, bare Echo handler returning the same bytes", getTarget(bareServer))
	add("get-nonear", "GET /api/v1/products/{id}, cached, near copies off", getTarget(pmsServer("pms", "PMS_REDIS_LOCAL_TTL=0s")))
	baseline("get-baseline", "GET cached, the -baseline binary", getTarget(pmsServer("baseline")))
	add("list", "GET /api/v1/products?user_id&min_price&max_price&limit=20", listTarget(pmsServer("pms")))
	add("list-pgbench", "the same list query, raw SQL through pgbench -M extended", pgbenchTarget)
	baseline("list-baseline", "list, the -baseline binary", listTarget(pmsServer("baseline")))
	return ts
}

// server starts what a target loads and returns it with its base URL.
type server func(ctx context.Context, e *environment) (*proc, string, error)

// pmsServer runs `pms serve` (or the baseline binary) with production
// settings on free loopback ports, plus env.
func pmsServer(which string, env ...string) server {
	return func(ctx context.Context, e *environment) (*proc, string, error) {
		bin := e.pms
		if which == "baseline" {
			bin = e.baseline
		}
		httpAddr, err := freeport.Addr()
		if err != nil {
			return nil, "", err
		}
		opsAddr, err := freeport.Addr()
		if err != nil {
			return nil, "", err
		}
		vars := append([]string{
			"PMS_POSTGRES_URL=" + e.pgURL,
			"PMS_REDIS_ADDR=" + e.redis,
			"PMS_KAFKA_BROKERS=" + e.brokers,
			"PMS_HTTP_ADDR=" + httpAddr,
			"PMS_OPS_ADDR=" + opsAddr,
		}, env...)
		vars = append(vars, e.o.pmsEnv...)
		// Each server starts on an empty Redis: the entries one binary
		// cached are not what another (the baseline) finds and reads again.
		if err := e.flushRedis(ctx); err != nil {
			return nil, "", err
		}
		// One log per measured run (target and round), so -keep keeps each.
		logName := which + ".log"
		if e.run != "" {
			logName = which + "-" + e.run + ".log"
		}
		p, err := start(ctx, which, e.o.serverCore, vars, filepath.Join(e.dir, logName),
			httpReady("http://"+opsAddr+"/ready"), bin, "serve")
		return p, "http://" + httpAddr, err
	}
}

// bareServer runs the bare Echo handler with the bytes pms answers a GET
// of the first user's product with.
func bareServer(ctx context.Context, e *environment) (*proc, string, error) {
	body, err := e.productJSON(ctx)
	if err != nil {
		return nil, "", err
	}
	addr, err := freeport.Addr()
	if err != nil {
		return nil, "", err
	}
	file := filepath.Join(e.dir, "product.json")
	if err := os.WriteFile(file, body, 0o644); err != nil {
		return nil, "", err
	}
	// With the runtime setting pms serve gives itself, so that the two
	// Go servers are compared like for like.
	steady := []string{"GODEBUG=" + sysmon.Setting}
	p, err := start(ctx, "echo", e.o.serverCore, steady, filepath.Join(e.dir, "echo.log"), tcpReady(addr),
		e.self, "bare", addr, file)
	return p, "http://" + addr, err
}

// measure vacuums (see quiesce), runs a warm-up, then settle (when not
// nil), then the measured wrk run of l, and returns it with the CPU each
// of procs spent per request.
func (e *environment) measure(ctx context.Context, l load, settle func() error, procs ...*proc) (result, error) {
	if err := e.quiesce(ctx); err != nil {
		return result{}, err
	}
	// Warm up until every request line was sent at least once, so that each
	// key's first use in this process is not measured.
	for l.offset = 0; l.offset < len(l.lines); {
		w, err := e.runWrk(ctx, l, e.o.warmup)
		if err != nil {
			return result{}, err
		}
		l.offset += w.requests
	}
	if settle != nil {
		if err := settle(); err != nil {
			return result{}, err
		}
	}
	before := make([]time.Duration, len(procs))
	for i, p := range procs {
		t, err := p.cpu()
		if err != nil {
			return result{}, err
		}
		before[i] = t
	}
	if err := e.resetStatements(ctx); err != nil {
		return result{}, err
	}
	stopPerf, err := e.startPerf(ctx, procs)
	if err != nil {
		return result{}, err
	}
	stopWaits := e.startWaits(ctx)
	stopProbe, err := e.probeHost(ctx)
	if err != nil {
		stopPerf()
		stopWaits()
		return result{}, err
	}
	began := time.Now()
	w, err := e.runWrk(ctx, l, e.o.duration)
	ended := time.Now()
	h, herr := stopProbe()
	waits := stopWaits()
	stopPerf()
	if err != nil {
		return result{}, err
	}
	if herr != nil {
		return result{}, herr
	}
	r := result{wrkResult: w, cpu: map[string]time.Duration{}, host: h}
	if len(procs) > 0 && procs[0].log != "" {
		if r.serverP99, err = serverP99(procs[0].log, began, ended); err != nil {
			return result{}, err
		}
	}
	ss, err := e.statements(ctx, w.requests)
	if err != nil {
		return result{}, err
	}
	r.statements, r.top = statementsSummary(ss)
	r.top += waits
	for i, p := range procs {
		t, err := p.cpu()
		if err != nil {
			return result{}, err
		}
		if w.requests > 0 {
			r.cpu[p.name] = (t - before[i]) / time.Duration(w.requests)
		}
		r.order = append(r.order, p.name)
	}
	return r, nil
}

// withServer starts s, runs fn against it and stops it.
func withServer(ctx context.Context, e *environment, s server, fn func(p *proc, base string) (result, error)) (result, error) {
	p, base, err := s(ctx, e)
	if err != nil {
		return result{}, err
	}
	defer p.stop()
	return fn(p, base)
}

func postTarget(s server) func(context.Context, *environment) (result, error) {
	return func(ctx context.Context, e *environment) (result, error) {
		return withServer(ctx, e, s, func(p *proc, base string) (result, error) {
			lines := make([]string, len(e.users))
			for i, u := range e.users {
				lines[i] = u.key + "\t/api/v1/products"
			}
			var before writeCounts
			settle := func() (err error) {
				time.Sleep(time.Second) // for the warm-up's last requests to land
				before, err = e.settledWrites(ctx)
				return err
			}
			r, err := e.measure(ctx, load{base: base, method: "POST", lines: lines, body: postBody}, settle,
				p, e.postgres, e.redisP, e.kafka)
			if err != nil {
				return result{}, err
			}
			if r.note, err = e.checkWrites(ctx, before, r); err != nil {
				p.dumpStacks() // into its log, which is kept
			}
			return r, err
		})
	}
}

func getTarget(s server) func(context.Context, *environment) (result, error) {
	return func(ctx context.Context, e *environment) (result, error) {
		if err := e.createGetProducts(ctx); err != nil {
			return result{}, err
		}
		return withServer(ctx, e, s, func(p *proc, base string) (result, error) {
			lines := make([]string, len(e.users))
			for i, u := range e.users {
				lines[i] = u.key + "\t/api/v1/products/" + u.product
			}
			procs := []*proc{p}
			if p.name != "echo" {
				procs = append(procs, e.postgres, e.redisP)
			}
			return e.measure(ctx, load{base: base, method: "GET", lines: lines}, nil, procs...)
		})
	}
}

// listPath is the list every list target asks for: a user's products in a
// price range, 20 to a page.
func listPath(userID string) string {
	return "/api/v1/products?user_id=" + userID + "&min_price=10&max_price=50&limit=20"
}

func listTarget(s server) func(context.Context, *environment) (result, error) {
	return func(ctx context.Context, e *environment) (result, error) {
		if e.o.rows == 0 {
			return result{}, fmt.Errorf("the list targets need -rows > 0")
		}
		return withServer(ctx, e, s, func(p *proc, base string) (result, error) {
			lines := make([]string, len(e.users))
			for i, u := range e.users {
				lines[i] = u.key + "\t" + listPath(u.id)
			}
			return e.measure(ctx, load{base: base, method: "GET", lines: lines}, nil, p, e.postgres, e.redisP)
		})
	}
}
