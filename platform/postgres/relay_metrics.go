package postgres

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	// outboxBacklog counts pending messages up to a cap, so that a scrape
	// during a long Kafka outage stays cheap, and finds the oldest by index.
	outboxBacklog = `
SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE published_at IS NULL LIMIT 1000000) b),
       COALESCE((SELECT EXTRACT(EPOCH FROM now() - created_at) FROM outbox
                 WHERE published_at IS NULL ORDER BY created_at LIMIT 1), 0)`
	// backlogTimeout bounds the query a scrape makes.
	backlogTimeout = 2 * time.Second
)

var (
	backlogDesc = prometheus.NewDesc("pms_outbox_backlog",
		"Outbox messages not yet published (counted up to 1000000).", nil, nil)
	oldestDesc = prometheus.NewDesc("pms_outbox_oldest_age_seconds",
		"Age of the oldest outbox message not yet published; 0 when there is none.", nil, nil)
)

// Describe implements prometheus.Collector: messages published, publish
// errors, and the outbox's backlog and the age of its oldest message,
// read from PostgreSQL at each scrape.
func (r *Relay) Describe(ch chan<- *prometheus.Desc) {
	r.published.Describe(ch)
	r.publishErrors.Describe(ch)
	ch <- backlogDesc
	ch <- oldestDesc
}

// Collect implements prometheus.Collector. Without an answer from
// PostgreSQL within backlogTimeout the backlog series are left out of the
// scrape (an alert on their absence sees it).
func (r *Relay) Collect(ch chan<- prometheus.Metric) {
	r.published.Collect(ch)
	r.publishErrors.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
	defer cancel()
	var n int64
	var age float64
	if err := r.db.db.QueryRowContext(ctx, outboxBacklog).Scan(&n, &age); err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age)
}
