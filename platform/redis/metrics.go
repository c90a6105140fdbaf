package redis

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// Results of a cache read in pms_cache_requests_total.
const (
	resultHit     = "hit"      // Redis had it
	resultNearHit = "near_hit" // this process's near copy had it: no round trip
	resultMiss    = "miss"     // read from the store
	resultError   = "error"    // Redis failed or its breaker is open: read from the store
)

// lookups counts cache reads in pms_cache_requests_total. Its counters
// are resolved once: a read that a near copy answers costs about as much as
// looking its labels up would.
type lookups struct {
	vec      *prometheus.CounterVec
	counters map[[2]string]prometheus.Counter // by cache name as aside.what, and result
}

func newLookups() lookups {
	l := lookups{vec: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pms_cache_requests_total",
		Help: "Cache reads by cache (product, api_key) and result (hit, near_hit, miss, error).",
	}, []string{"cache", "result"}), counters: map[[2]string]prometheus.Counter{}}
	for _, what := range []string{"product", "api key"} {
		for _, r := range []string{resultHit, resultNearHit, resultMiss, resultError} {
			l.counters[[2]string{what, r}] = l.vec.WithLabelValues(strings.ReplaceAll(what, " ", "_"), r)
		}
	}
	return l
}

func newEpochReads() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pms_cache_epoch_reads_total",
		Help: "Reads of the epoch that keeps cached entries fresh, by cache (api_key) and result (unchanged, moved, error).",
	}, []string{"cache", "result"})
	for _, r := range []string{epochSame, epochMoved, epochError} {
		v.WithLabelValues("api_key", r)
	}
	return v
}

// countEpoch counts a read of the key epoch in pms_cache_epoch_reads_total.
func (c *Client) countEpoch(result string) {
	c.epochReads.WithLabelValues("api_key", result).Inc()
}

// count counts a read of the cache named what ("product", "api key").
func (c *Client) count(what, result string) {
	if ctr, ok := c.lookups.counters[[2]string{what, result}]; ok {
		ctr.Inc()
		return
	}
	c.lookups.vec.WithLabelValues(strings.ReplaceAll(what, " ", "_"), result).Inc()
}

var breakerDesc = prometheus.NewDesc("pms_redis_breaker_open",
	"1 while the Redis circuit breaker is open (calls skipped), else 0.", nil, nil)

// Describe implements prometheus.Collector: the cache reads, the epoch
// reads and the breaker's state.
func (c *Client) Describe(ch chan<- *prometheus.Desc) {
	c.lookups.vec.Describe(ch)
	c.epochReads.Describe(ch)
	ch <- breakerDesc
}

// Collect implements prometheus.Collector.
func (c *Client) Collect(ch chan<- prometheus.Metric) {
	c.lookups.vec.Collect(ch)
	c.epochReads.Collect(ch)
	open := 0.0
	if c.breaker.State() == gobreaker.StateOpen {
		open = 1
	}
	ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, open)
}
