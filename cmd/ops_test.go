package cmd

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// getBody returns the status and body of GET url.
func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return res.StatusCode, string(b)
}

// TestOpsListenerApartFromAPI: `pms all` serves /ready and /metrics on
// ops.addr only, for the API and the worker together; the API listener
// keeps /health for load balancers.
func TestOpsListenerApartFromAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs pms all")
	}
	t.Parallel()
	s, _ := startAll(t, nil)
	for _, path := range []string{"/ready", "/metrics"} {
		if code, body := getBody(t, s.base+path); code != http.StatusNotFound {
			t.Errorf("GET %s on the API listener = %d %s, want 404", path, code, body)
		}
	}
	for _, base := range []string{s.base, s.ops} {
		if code, body := getBody(t, base+"/health"); code != http.StatusOK {
			t.Errorf("GET %s/health = %d %s, want 200", base, code, body)
		}
	}

	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	// A check may time out once on a busy machine (Redis has 50 ms): /ready
	// answers from checks at most a second old, so ask again for a while.
	var code int
	var body string
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, body = getBody(t, s.ops+"/ready")
		err = json.Unmarshal([]byte(body), &ready)
		if err == nil && code == http.StatusOK && ready.Status == "ok" || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || code != http.StatusOK || ready.Status != "ok" {
		t.Fatalf("GET %s/ready = %d %s (%v), want 200 ok within 10s", s.ops, code, body, err)
	}
	for _, check := range []string{"postgres", "schema", "redis", "kafka", "kafka_consumer", "s3"} {
		if ready.Checks[check] != "ok" {
			t.Errorf("/ready checks = %v, want %s ok: one listener for the API and the worker", ready.Checks, check)
		}
	}
	code, body = getBody(t, s.ops+"/metrics")
	for _, metric := range []string{`pms_http_requests_total{method="GET",route="/health",status="200"}`, "pms_kafka_tasks_in_flight"} {
		if code != http.StatusOK || !strings.Contains(body, metric) {
			t.Errorf("GET %s/metrics = %d, want 200 with %s (the API's and the worker's metrics)", s.ops, code, metric)
		}
	}
}
