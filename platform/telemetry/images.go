// Package telemetry sets up OpenTelemetry tracing (tracing.go) and turns
// what the image pipeline reports (imaging.Observer) into Prometheus
// metrics and trace spans: package imaging depends on neither library. The
// other parts of pms register their own metrics and start their own spans.
package telemetry

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pms-dev/pms/imaging"
)

// Images is an imaging.Observer and a prometheus.Collector of
// pms_image_tasks_total{result,code}, pms_image_stage_duration_seconds{stage}
// pms_image_bytes_total{direction} and pms_stored_objects_collected_total{outcome};
// each stage is also a span (image.download, image.compress, image.upload,
// image.database).
type Images struct {
	tasks     *prometheus.CounterVec
	stages    *prometheus.HistogramVec
	bytes     *prometheus.CounterVec
	collected *prometheus.CounterVec
}

var _ imaging.Observer = (*Images)(nil)

// NewImages returns the image metrics, every stage and direction at zero.
func NewImages() *Images {
	m := &Images{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pms_image_tasks_total",
			Help: "Image attempts and tasks by result (ready, stale, attempt_failed, failed) and failure code.",
		}, []string{"result", "code"}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pms_image_stage_duration_seconds",
			Help: "Time spent per stage of an image task: queue (request to first attempt), download, compress (libvips, every variant at once), upload (per distinct output), database.",
			// From a millisecond (a database write) to minutes (a queue backlog).
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
		}, []string{"stage"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pms_image_bytes_total",
			Help: "Bytes of fetched sources (in) and uploaded variants (out).",
		}, []string{"direction"}),
		collected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pms_stored_objects_collected_total",
			Help: "Stored objects whose grace period was up, by outcome: removed (no image used them), kept (one did), failed (the removal failed; tried again later).",
		}, []string{"outcome"}),
	}
	for _, s := range []string{imaging.StageQueue, imaging.StageDownload, imaging.StageCompress, imaging.StageUpload, imaging.StageDatabase} {
		m.stages.WithLabelValues(s)
	}
	for _, d := range []string{imaging.DirectionIn, imaging.DirectionOut} {
		m.bytes.WithLabelValues(d)
	}
	m.tasks.WithLabelValues(imaging.ResultReady, "")
	for _, o := range []string{"removed", "kept", "failed"} {
		m.collected.WithLabelValues(o)
	}
	return m
}

// stageSpans names the span of each stage, with what it talks to.
var stageSpans = map[string][]attribute.KeyValue{
	imaging.StageDownload: {attribute.String("pms.stage", imaging.StageDownload)},
	imaging.StageCompress: {attribute.String("pms.stage", imaging.StageCompress), attribute.String("pms.library", "libvips")},
	imaging.StageUpload:   {attribute.String("pms.stage", imaging.StageUpload), attribute.String("rpc.system", "aws-api"), attribute.String("rpc.service", "S3")},
	imaging.StageDatabase: {attribute.String("pms.stage", imaging.StageDatabase), attribute.String("db.system", "postgresql")},
}

// tracer starts the spans of the image stages.
var tracer = otel.Tracer("github.com/pms-dev/pms/platform/telemetry")

// Start times a stage and starts its span; end records both.
func (m *Images) Start(ctx context.Context, stage string) (context.Context, func(error)) {
	start := time.Now()
	ctx, span := tracer.Start(ctx, "image."+stage, trace.WithAttributes(stageSpans[stage]...))
	return ctx, func(err error) {
		m.stages.WithLabelValues(stage).Observe(time.Since(start).Seconds())
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, imaging.FailureCode(err))
		}
		span.End()
	}
}

// Waited observes a task's time in the queue.
func (m *Images) Waited(d time.Duration) {
	m.stages.WithLabelValues(imaging.StageQueue).Observe(d.Seconds())
}

// Outcome counts a result.
func (m *Images) Outcome(result, code string) { m.tasks.WithLabelValues(result, code).Inc() }

// Bytes counts bytes in or out.
func (m *Images) Bytes(direction string, n int64) { m.bytes.WithLabelValues(direction).Add(float64(n)) }

// Collected counts what a look of the imaging.Collector did.
func (m *Images) Collected(s imaging.CollectStats) {
	m.collected.WithLabelValues("removed").Add(float64(s.Removed))
	m.collected.WithLabelValues("kept").Add(float64(s.Kept))
	m.collected.WithLabelValues("failed").Add(float64(s.Failed))
}

// Describe implements prometheus.Collector.
func (m *Images) Describe(ch chan<- *prometheus.Desc) {
	m.tasks.Describe(ch)
	m.stages.Describe(ch)
	m.bytes.Describe(ch)
	m.collected.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Images) Collect(ch chan<- prometheus.Metric) {
	m.tasks.Collect(ch)
	m.stages.Collect(ch)
	m.bytes.Collect(ch)
	m.collected.Collect(ch)
}
