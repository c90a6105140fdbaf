package cmd

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// BenchmarkCachedGetVsCeiling loads GET /api/v1/products/:id of pms (API
// key check, rate limit and product all answered from Redis) and, in the
// same run, a bare Echo handler that returns the same bytes: the ceiling
// for this machine. wrk drives both in turns, on the same cores. It reports
// requests/s and p99 of each and their ratio; b.N is ignored.
func BenchmarkCachedGetVsCeiling(b *testing.B) {
	if testing.Short() {
		b.Skip("load benchmark: runs pms all and wrk")
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Fatal("wrk is not installed (apt-get install wrk)")
	}
	s, _ := startAll(b, map[string]string{
		"PMS_LOG_LEVEL":             "info", // one line per request, as in production
		"PMS_RATE_LIMIT_READ_RATE":  "1000000",
		"PMS_RATE_LIMIT_READ_BURST": "1000000",
	})
	id := createEmptyTB(b, s)
	path := "/api/v1/products/" + id
	body := get(b, s.base+path, s.key)
	ceiling := bareEcho(b, body)

	const rounds, seconds = 3, 5
	var pmsRPS, ceilRPS, pmsP99, ceilP99 float64
	for range rounds {
		rps, p99 := runWrk(b, wrk, s.base+path, s.key, seconds)
		pmsRPS, pmsP99 = pmsRPS+rps/rounds, max(pmsP99, p99)
		rps, p99 = runWrk(b, wrk, ceiling+path, s.key, seconds)
		ceilRPS, ceilP99 = ceilRPS+rps/rounds, max(ceilP99, p99)
	}
	b.ReportMetric(pmsRPS, "pms-req/s")
	b.ReportMetric(ceilRPS, "ceiling-req/s")
	b.ReportMetric(pmsRPS/ceilRPS, "ratio")
	b.ReportMetric(pmsP99, "pms-p99-ms")
	b.ReportMetric(ceilP99, "ceiling-p99-ms")
	b.Logf("response of %d bytes; pms %.0f req/s p99 %.2f ms; bare Echo %.0f req/s p99 %.2f ms; ratio %.2f",
		len(body), pmsRPS, pmsP99, ceilRPS, ceilP99, pmsRPS/ceilRPS)
}

func createEmptyTB(b *testing.B, s *stack) string {
	var p e2eProduct
	if code := s.do(b, http.MethodPost, "/api/v1/products", `{"product_name":"Cached lamp","product_price":5}`, "", &p); code != http.StatusCreated {
		b.Fatalf("POST = %d, want 201", code)
	}
	return p.ID
}

func get(b *testing.B, url, key string) []byte {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		b.Fatalf("GET %s = %d", url, res.StatusCode)
	}
	return data
}

// bareEcho serves body as JSON on every product path: no auth, no cache,
// no middleware.
func bareEcho(b *testing.B, body []byte) string {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/api/v1/products/:id", func(c echo.Context) error { return c.JSONBlob(http.StatusOK, body) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkP99     = regexp.MustCompile(`\s99%\s+([0-9.]+)(us|ms|s)`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkUnitsMS = map[string]float64{"us": 0.001, "ms": 1, "s": 1000}
)

// runWrk loads url for seconds with 2 threads and 32 connections and returns
// requests/s and the p99 latency in ms.
func runWrk(b *testing.B, wrk, url, key string, seconds int) (rps, p99 float64) {
	out, err := exec.Command(wrk, "-t2", "-c32", fmt.Sprintf("-d%ds", seconds), "--latency",
		"-H", "Authorization: Bearer "+key, url).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk: %v\n%s", err, out)
	}
	if m := wrkNon2xx.FindSubmatch(out); m != nil {
		b.Fatalf("wrk saw %s non-2xx responses from %s:\n%s", m[1], url, out)
	}
	m1, m2 := wrkRPS.FindSubmatch(out), wrkP99.FindSubmatch(out)
	if m1 == nil || m2 == nil {
		b.Fatalf("cannot read wrk's output:\n%s", out)
	}
	rps, _ = strconv.ParseFloat(string(m1[1]), 64)
	p99, _ = strconv.ParseFloat(string(m2[1]), 64)
	return rps, p99 * wrkUnitsMS[string(m2[2])]
}
