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

func newLookups() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pms_cache_requests_total",
		Help: "Cache reads by cache (product, api_key) and result (hit, near_hit, miss, error).",
	}, []string{"cache", "result"})
	for _, c := range []string{"product", "api_key"} {
		for _, r := range []string{resultHit, resultNearHit, resultMiss, resultError} {
			v.WithLabelValues(c, r)
		}
	}
	return v
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
	c.lookups.WithLabelValues(strings.ReplaceAll(what, " ", "_"), result).Inc()
}

var breakerDesc = prometheus.NewDesc("pms_redis_breaker_open",
	"1 while the Redis circuit breaker is open (calls skipped), else 0.", nil, nil)

// Describe implements prometheus.Collector: the cache reads, the epoch
// reads and the breaker's state.
func (c *Client) Describe(ch chan<- *prometheus.Desc) {
	c.lookups.Describe(ch)
	c.epochReads.Describe(ch)
	ch <- breakerDesc
}

// Collect implements prometheus.Collector.
func (c *Client) Collect(ch chan<- prometheus.Metric) {
	c.lookups.Collect(ch)
	c.epochReads.Collect(ch)
	open := 0.0
	if c.breaker.State() == gobreaker.StateOpen {
		open = 1
	}
	ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, open)
}
