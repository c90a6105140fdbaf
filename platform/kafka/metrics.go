package kafka

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
)

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
	ch <- lagDesc
	m.tasks.Describe(ch)
	m.retries.Describe(ch)
	m.inFlight.Describe(ch)
}

func (m *metrics) collect(ch chan<- prometheus.Metric) {
	m.tasks.Collect(ch)
	m.retries.Collect(ch)
	m.inFlight.Collect(ch)
}

var lagDesc = prometheus.NewDesc("pms_kafka_consumer_lag",
	"Messages of a claimed partition not yet finished: its high watermark, as last fetched, minus the next offset to mark.",
	[]string{"topic", "partition"}, nil)

// lags reports the lag of each partition this consumer has claimed now.
type lags struct {
	mu     sync.Mutex
	claims map[sarama.ConsumerGroupClaim]*atomic.Int64
}

// watch reports claim's lag, from marked, until the returned func is called.
func (l *lags) watch(claim sarama.ConsumerGroupClaim, marked *atomic.Int64) func() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.claims == nil {
		l.claims = map[sarama.ConsumerGroupClaim]*atomic.Int64{}
	}
	l.claims[claim] = marked
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.claims, claim)
	}
}

func (l *lags) collect(ch chan<- prometheus.Metric) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for claim, marked := range l.claims {
		lag := max(0, claim.HighWaterMarkOffset()-max(0, marked.Load()))
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(lag),
			claim.Topic(), strconv.FormatInt(int64(claim.Partition()), 10))
	}
}
