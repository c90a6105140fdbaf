package cmd

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/pms-dev/pms/platform/telemetry"
)

// TestTraceFromPostToResult installs an in-memory span exporter, runs
// `pms all`, creates a product with a traceparent of the test's own and
// finds one trace from the POST to the worker's result: the HTTP span, the
// relay's publish of the outbox row (child of the request), the worker's
// handling of the Kafka message (child of the publish, through the
// message's traceparent header), and under it the PostgreSQL, fetch,
// libvips and S3 steps. The request's and the task's log lines carry the
// trace id.
func TestTraceFromPostToResult(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs pms all")
	}
	exporter := tracetest.NewInMemoryExporter()
	shutdown, err := telemetry.Setup(telemetry.DefaultConfig(), "pms-test", "test", exporter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = shutdown(context.Background())
		otel.SetTracerProvider(noop.NewTracerProvider())
	})
	src := serveFiles(t, map[string][]byte{"lamp.png": noisyPNG(t, 33)})
	s, _ := startAll(t, nil)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	body := `{"product_name":"Traced lamp","product_price":12.50,"product_images":["` + src + `/lamp.png"]}`
	req, _ := http.NewRequest(http.MethodPost, s.base+"/api/v1/products", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var p e2eProduct
	err = json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || err != nil {
		t.Fatalf("POST = %d (%v)", resp.StatusCode, err)
	}
	if got := waitSettled(t, s, p.ID, 30*time.Second); got.Images[0].Status != "ready" {
		t.Fatalf("image = %+v, want ready", got.Images[0])
	}

	// spans of the trace by name; the last result's span may end a moment
	// after the API shows the image ready.
	var byName map[string][]tracetest.SpanStub
	waitUntil(t, 10*time.Second, "the worker's result in the trace", func() bool {
		byName = map[string][]tracetest.SpanStub{}
		for _, sp := range exporter.GetSpans() {
			if sp.SpanContext.TraceID().String() == traceID {
				byName[sp.Name] = append(byName[sp.Name], sp)
			}
		}
		return len(byName["image.database"]) >= 2 // Begin and Ready
	})
	one := func(name string) tracetest.SpanStub {
		t.Helper()
		if len(byName[name]) != 1 {
			t.Fatalf("trace %s has %d spans named %q, want 1; it has %v", traceID, len(byName[name]), name, names(byName))
		}
		return byName[name][0]
	}
	post := one("POST /api/v1/products")
	publish := one("publish pms.image-tasks")
	process := one("process pms.image-tasks")
	if post.Parent.SpanID().String() != "00f067aa0ba902b7" || post.SpanKind != trace.SpanKindServer {
		t.Errorf("the POST span's parent is %s (kind %v), want the caller's 00f067aa0ba902b7", post.Parent.SpanID(), post.SpanKind)
	}
	if publish.Parent.SpanID() != post.SpanContext.SpanID() {
		t.Errorf("the publish span's parent is %s, want the POST span %s (through the outbox row)", publish.Parent.SpanID(), post.SpanContext.SpanID())
	}
	if process.Parent.SpanID() != publish.SpanContext.SpanID() {
		t.Errorf("the worker's span's parent is %s, want the publish span %s (through the Kafka message)", process.Parent.SpanID(), publish.SpanContext.SpanID())
	}
	for _, stage := range []string{"image.database", "image.download", "image.compress", "image.upload"} {
		if len(byName[stage]) == 0 {
			t.Errorf("the trace has no %s span; it has %v", stage, names(byName))
		}
		for _, sp := range byName[stage] {
			if sp.Parent.SpanID() != process.SpanContext.SpanID() {
				t.Errorf("%s's parent is %s, want the worker's span %s", stage, sp.Parent.SpanID(), process.SpanContext.SpanID())
			}
		}
	}
	quoted := `"` + traceID + `"`
	if len(logLines(t, s, map[string]string{"message": `"request"`, "trace_id": quoted, "route": `"/api/v1/products"`})) != 1 {
		t.Errorf("no request log line with trace_id %s", traceID)
	}
	if len(waitLogLines(t, s, map[string]string{"message": `"image ready"`, "trace_id": quoted}, 1, 10*time.Second)) != 1 {
		t.Errorf("no worker log line 'image ready' with trace_id %s", traceID)
	}
}

func names(byName map[string][]tracetest.SpanStub) []string {
	var out []string
	for n := range byName {
		out = append(out, n)
	}
	return out
}
