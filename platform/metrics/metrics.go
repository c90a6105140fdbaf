// Package metrics turns what the image pipeline reports (imaging.Observer)
// into Prometheus metrics. The other parts of pms register their own
// metrics in their packages; this one exists because package imaging
// depends on no metrics library.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pms-dev/pms/imaging"
)

// Images is an imaging.Observer and a prometheus.Collector of
// pms_image_tasks_total{result,code}, pms_image_stage_duration_seconds{stage}
// and pms_image_bytes_total{direction}.
type Images struct {
	tasks  *prometheus.CounterVec
	stages *prometheus.HistogramVec
	bytes  *prometheus.CounterVec
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
			Help: "Time spent per stage of an image task: queue (request to first attempt), download, compress (libvips, per variant), upload (per variant), database.",
			// From a millisecond (a database write) to minutes (a queue backlog).
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
		}, []string{"stage"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pms_image_bytes_total",
			Help: "Bytes of fetched sources (in) and uploaded variants (out).",
		}, []string{"direction"}),
	}
	for _, s := range []string{imaging.StageQueue, imaging.StageDownload, imaging.StageCompress, imaging.StageUpload, imaging.StageDatabase} {
		m.stages.WithLabelValues(s)
	}
	for _, d := range []string{imaging.DirectionIn, imaging.DirectionOut} {
		m.bytes.WithLabelValues(d)
	}
	m.tasks.WithLabelValues(imaging.ResultReady, "")
	return m
}

// Stage observes a stage's duration.
func (m *Images) Stage(stage string, d time.Duration) {
	m.stages.WithLabelValues(stage).Observe(d.Seconds())
}

// Outcome counts a result.
func (m *Images) Outcome(result, code string) { m.tasks.WithLabelValues(result, code).Inc() }

// Bytes counts bytes in or out.
func (m *Images) Bytes(direction string, n int64) { m.bytes.WithLabelValues(direction).Add(float64(n)) }

// Describe implements prometheus.Collector.
func (m *Images) Describe(ch chan<- *prometheus.Desc) {
	m.tasks.Describe(ch)
	m.stages.Describe(ch)
	m.bytes.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Images) Collect(ch chan<- prometheus.Metric) {
	m.tasks.Collect(ch)
	m.stages.Collect(ch)
	m.bytes.Collect(ch)
}
