package kafka

import "github.com/prometheus/client_golang/prometheus"

// Task outcomes counted in pms_kafka_tasks_total.
const (
	outcomeProcessed    = "processed"     // Handle returned nil
	outcomeDeadLettered = "dead_lettered" // given up and copied to the dead-letter topic
	outcomeBadMessage   = "bad_message"   // unreadable; copied to the dead-letter topic
)

// metrics counts what the consumer does with the messages of each topic.
type metrics struct {
	tasks    *prometheus.CounterVec
	retries  *prometheus.CounterVec
	inFlight prometheus.Gauge
}

func newMetrics() *metrics {
	return &metrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: "kafka", Name: "tasks_total",
			Help: "Messages finished by the consumer, by topic and outcome.",
		}, []string{"topic", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: "kafka", Name: "task_retries_total",
			Help: "Failed attempts at messages that were retried after a backoff, by topic.",
		}, []string{"topic"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "pms", Subsystem: "kafka", Name: "tasks_in_flight",
			Help: "Messages being handled now.",
		}),
	}
}

// route exports zeros for topic from the start.
func (m *metrics) route(topic string) {
	for _, o := range []string{outcomeProcessed, outcomeDeadLettered, outcomeBadMessage} {
		m.tasks.WithLabelValues(topic, o)
	}
	m.retries.WithLabelValues(topic)
}

func (m *metrics) finished(topic, outcome string) { m.tasks.WithLabelValues(topic, outcome).Inc() }

func (m *metrics) retried(topic string) { m.retries.WithLabelValues(topic).Inc() }

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
