package cmd

import (
	"bufio"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape reads the operator listener's /metrics into series → value, the
// series as exposed: name{label="value",...}.
func scrape(t *testing.T, s *stack) map[string]float64 {
	t.Helper()
	resp, err := http.Get(s.ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsMove runs `pms all` and checks that what happens moves the
// series an operator watches: a request, cache misses and hits, a
// processed task (its stages and bytes) and a failed one (its code and the
// dead letter); and that the gauges of the outbox, the consumer's lag and
// libvips' memory are served.
func TestMetricsMove(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs pms all")
	}
	t.Parallel()
	img := noisyPNG(t, 21)
	src := serveFiles(t, map[string][]byte{"ok.png": img})
	// Near copies of 500ms, so the test can wait one out.
	s, _ := startAll(t, map[string]string{"PMS_REDIS_LOCAL_TTL": "500ms"})
	before := scrape(t, s)

	good := createProduct(t, s, "metrics-good", src+"/ok.png")
	bad := createProduct(t, s, "metrics-bad", src+"/missing.png")
	p := waitSettled(t, s, good, 30*time.Second)
	if p.Images[0].Status != "ready" {
		t.Fatalf("good image = %+v, want ready", p.Images[0])
	}
	objects := map[string]bool{} // one upload per distinct output of the presets and the ladder's rungs
	for _, v := range p.Images[0].Variants {
		objects[v.URL] = true
	}
	uploads := float64(len(objects))
	if p := waitSettled(t, s, bad, 30*time.Second); p.Images[0].Status != "failed" {
		t.Fatalf("bad image = %+v, want failed", p.Images[0])
	}
	getProduct(t, s, good) // the cached product went with the result: a miss
	getProduct(t, s, good) // within redis.local_ttl: the near copy
	time.Sleep(700 * time.Millisecond)
	getProduct(t, s, good) // the near copy expired: Redis
	var after map[string]float64
	// The dead letter is counted once it is acknowledged, and an offset
	// marked once its task is finished, a moment after the image is marked
	// failed.
	waitUntil(t, 10*time.Second, "the dead letter counted and the lag gone", func() bool {
		after = scrape(t, s)
		for series, v := range after {
			if strings.HasPrefix(series, "pms_kafka_consumer_lag{") && v != 0 {
				return false
			}
		}
		return after[`pms_kafka_tasks_total{outcome="dead_lettered",topic="pms.image-tasks"}`] > before[`pms_kafka_tasks_total{outcome="dead_lettered",topic="pms.image-tasks"}`]
	})
	delta := func(series string) float64 {
		v, ok := after[series]
		if !ok {
			t.Errorf("/metrics has no series %s", series)
		}
		return v - before[series]
	}
	atLeast := func(series string, want float64) {
		t.Helper()
		if d := delta(series); d < want {
			t.Errorf("%s moved by %v, want at least %v", series, d, want)
		}
	}
	exactly := func(series string, want float64) {
		t.Helper()
		if d := delta(series); d != want {
			t.Errorf("%s moved by %v, want %v", series, d, want)
		}
	}
	exactly(`pms_http_requests_total{method="POST",route="/api/v1/products",status="201"}`, 2)
	atLeast(`pms_http_request_duration_seconds_count{method="GET",route="/api/v1/products/:id"}`, 3)
	atLeast(`pms_cache_requests_total{cache="product",result="miss"}`, 1)
	atLeast(`pms_cache_requests_total{cache="product",result="near_hit"}`, 1)
	atLeast(`pms_cache_requests_total{cache="product",result="hit"}`, 1)
	atLeast(`pms_cache_requests_total{cache="api_key",result="near_hit"}`, 1)
	exactly(`pms_image_tasks_total{code="",result="ready"}`, 1)
	exactly(`pms_image_tasks_total{code="source_not_found",result="attempt_failed"}`, 1)
	exactly(`pms_image_tasks_total{code="source_not_found",result="failed"}`, 1)
	exactly(`pms_kafka_tasks_total{outcome="processed",topic="pms.image-tasks"}`, 1)
	exactly(`pms_kafka_tasks_total{outcome="dead_lettered",topic="pms.image-tasks"}`, 1)
	exactly(`pms_image_stage_duration_seconds_count{stage="queue"}`, 2)
	exactly(`pms_image_stage_duration_seconds_count{stage="download"}`, 2)
	exactly(`pms_image_stage_duration_seconds_count{stage="compress"}`, 1) // every variant at once
	exactly(`pms_image_stage_duration_seconds_count{stage="upload"}`, uploads)
	atLeast(`pms_image_stage_duration_seconds_count{stage="database"}`, 5) // two begins, storing, ready, failed
	exactly(`pms_image_bytes_total{direction="in"}`, float64(len(img)))
	atLeast(`pms_image_bytes_total{direction="out"}`, 1)
	atLeast(`pms_outbox_published_total`, 2)
	exactly(`pms_outbox_publish_errors_total`, 0)
	exactly(`pms_rate_limit_refusals_total{limit="write"}`, 0)
	if v, ok := after["pms_outbox_backlog"]; !ok || v != 0 {
		t.Errorf("pms_outbox_backlog = %v (served: %v), want 0 once all is published", v, ok)
	}
	if _, ok := after["pms_outbox_oldest_age_seconds"]; !ok {
		t.Error("/metrics has no pms_outbox_oldest_age_seconds")
	}
	lagSeries := 0
	for series, v := range after {
		if strings.HasPrefix(series, `pms_kafka_consumer_lag{partition="`) {
			lagSeries++
			if v != 0 {
				t.Errorf("%s = %v, want 0 once every task is done", series, v)
			}
		}
	}
	if lagSeries == 0 {
		t.Error("/metrics has no pms_kafka_consumer_lag series, want one per claimed partition")
	}
	for _, series := range []string{"pms_vips_memory_highwater_bytes", "go_goroutines", "process_resident_memory_bytes", "pms_redis_breaker_open"} {
		if _, ok := after[series]; !ok {
			t.Errorf("/metrics has no %s", series)
		}
	}
	if after["pms_ready"] != 1 || after[`pms_ready_check{check="postgres",critical="false"}`] != 1 {
		t.Errorf("pms_ready = %v, pms_ready_check{check=\"postgres\"} = %v; want 1 and 1 for a ready pms all",
			after["pms_ready"], after[`pms_ready_check{check="postgres",critical="false"}`])
	}
	checkDeployedNames(t, after)
	if after["pms_vips_memory_highwater_bytes"] <= 0 {
		t.Errorf("pms_vips_memory_highwater_bytes = %v after compressing an image, want > 0", after["pms_vips_memory_highwater_bytes"])
	}
}

// checkDeployedNames fails for each pms_ metric the alert rules or the
// Grafana dashboard in deploy/ name that pms does not serve.
func checkDeployedNames(t *testing.T, served map[string]float64) {
	t.Helper()
	names := map[string]bool{}
	for series := range served {
		name, _, _ := strings.Cut(series, "{")
		names[name] = true
	}
	metric := regexp.MustCompile(`\bpms_[a-z_]+`)
	for _, file := range []string{"../deploy/prometheus/alerts.yml", "../deploy/grafana/pms-dashboard.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range metric.FindAllString(string(b), -1) {
			if !names[name] && !names[name+"_count"] {
				t.Errorf("%s names %s, which pms does not serve", file, name)
			}
		}
	}
}
