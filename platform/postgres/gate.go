package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// writeGate admits at most n product writes to PostgreSQL at a time, in
// the order they came, and holds the rest in the process. Past a few
// active backends per core a server gets no more done, only more in
// progress: sixteen writes at once on one core each took longer, in
// whatever order the scheduler chose, so some took far longer. Queued
// here instead, they wait their turn, and the tail shortens at about the
// same rate (BENCHMARKS.md, "POST's tail").
type writeGate struct {
	slots chan struct{} // nil: no limit
	waits prometheus.Histogram
}

func newWriteGate(n int) *writeGate {
	g := &writeGate{waits: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pms_postgres_write_queue_seconds",
		Help:    "How long product writes waited for one of postgres.max_concurrent_writes.",
		Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	})}
	if n > 0 {
		g.slots = make(chan struct{}, n)
	}
	return g
}

// admit waits for a slot, in turn, or until ctx ends; release gives it
// back. A channel's blocked senders are served first come, first served.
func (g *writeGate) admit(ctx context.Context) (release func(), err error) {
	if g.slots == nil {
		return func() {}, nil
	}
	select {
	case g.slots <- struct{}{}: // a free slot: no clock, no wait to count
		g.waits.Observe(0)
		return g.release, nil
	default:
	}
	start := time.Now()
	select {
	case g.slots <- struct{}{}:
		g.waits.Observe(time.Since(start).Seconds())
		return g.release, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a write slot: %w", ctx.Err())
	}
}

func (g *writeGate) release() { <-g.slots }

// Describe implements prometheus.Collector: the write queue's waits.
func (d *DB) Describe(ch chan<- *prometheus.Desc) { d.writes.waits.Describe(ch) }

// Collect implements prometheus.Collector.
func (d *DB) Collect(ch chan<- prometheus.Metric) { d.writes.waits.Collect(ch) }
