package kafka

import "github.com/prometheus/client_golang/prometheus"

// Task outcomes counted in pms_kafka_tasks_total.
const (
	outcomeProcessed    = "processed"     // Process returned nil
	outcomeDeadLettered = "dead_lettered" // given up and copied to the dead-letter topic
	outcomeBadMessage   = "bad_message"   // not a task; copied to the dead-letter topic
)

// metrics counts what the consumer does with tasks.
type metrics struct {
	tasks    *prometheus.CounterVec
	retries  prometheus.Counter
	inFlight prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: "kafka", Name: "tasks_total",
			Help: "Image tasks finished by the consumer, by outcome.",
		}, []string{"outcome"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: "kafka", Name: "task_retries_total",
			Help: "Failed task attempts that were retried after a backoff.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "pms", Subsystem: "kafka", Name: "tasks_in_flight",
			Help: "Image tasks being processed now.",
		}),
	}
	for _, o := range []string{outcomeProcessed, outcomeDeadLettered, outcomeBadMessage} {
		m.tasks.WithLabelValues(o) // export zeros from the start
	}
	return m
}

func (m *metrics) describe(ch chan<- *prometheus.Desc) {
	m.tasks.Describe(ch)
	m.retries.Describe(ch)
	m.inFlight.Describe(ch)
}

func (m *metrics) collect(ch chan<- prometheus.Metric) {
	m.tasks.Collect(ch)
	m.retries.Collect(ch)
	m.inFlight.Collect(ch)
}
