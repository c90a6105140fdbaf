package vips

import (
	"github.com/h2non/bimg"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	memoryDesc = prometheus.NewDesc("pms_vips_memory_bytes",
		"Memory libvips has allocated now (vips_tracked_get_mem).", nil, nil)
	highwaterDesc = prometheus.NewDesc("pms_vips_memory_highwater_bytes",
		"The most memory libvips has had allocated at once since the process started.", nil, nil)
	allocationsDesc = prometheus.NewDesc("pms_vips_allocations",
		"Allocations libvips holds now.", nil, nil)
	reservedDesc = prometheus.NewDesc("pms_vips_reserved_bytes",
		"Estimated decode memory of the images being compressed now, against vips.max_memory.", nil, nil)
	budgetDesc = prometheus.NewDesc("pms_vips_memory_budget_bytes",
		"vips.max_memory: the estimated decode memory allowed in flight.", nil, nil)
	busyDesc = prometheus.NewDesc("pms_vips_busy_slots",
		"libvips runs in progress, against vips.max_concurrent.", nil, nil)
)

// Describe implements prometheus.Collector: libvips' own memory counters
// and the compressor's budget and slots.
func (c *Compressor) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{memoryDesc, highwaterDesc, allocationsDesc, reservedDesc, budgetDesc, busyDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Compressor) Collect(ch chan<- prometheus.Metric) {
	m := bimg.VipsMemory()
	ch <- prometheus.MustNewConstMetric(memoryDesc, prometheus.GaugeValue, float64(m.Memory))
	ch <- prometheus.MustNewConstMetric(highwaterDesc, prometheus.GaugeValue, float64(m.MemoryHighwater))
	ch <- prometheus.MustNewConstMetric(allocationsDesc, prometheus.GaugeValue, float64(m.Allocations))
	ch <- prometheus.MustNewConstMetric(reservedDesc, prometheus.GaugeValue, float64(c.reserved.Load()))
	ch <- prometheus.MustNewConstMetric(budgetDesc, prometheus.GaugeValue, float64(c.maxMemory))
	ch <- prometheus.MustNewConstMetric(busyDesc, prometheus.GaugeValue, float64(len(c.slots)))
}
