package vips

import (
	"context"

	"github.com/pms-dev/pms/imaging"
)

// WithoutLoader makes Compress behave as if libvips could not decode
// format, until the returned function is called. Tests that use it must
// not run in parallel.
func WithoutLoader(format string) func() {
	was := canLoad
	canLoad = func(f string) bool { return f != format && was(f) }
	return func() { canLoad = was }
}

// ProcStatusKB exposes statusKB (stages_test.go) to the external tests.
var ProcStatusKB = statusKB

// StripWebPMetadata exposes stripWebPMetadata to the external tests.
var StripWebPMetadata = stripWebPMetadata

// HoldSlot takes a libvips slot, as a running Compress would, and returns
// the function that gives it back.
func (c *Compressor) HoldSlot(ctx context.Context) (func(), error) {
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	return c.release, nil
}

// EstimateCost returns what Compress would reserve from the memory budget
// to make p from src, or 0 when it would refuse src before that.
func EstimateCost(src []byte, p imaging.Preset) int64 {
	gate, err := imaging.ReadHeader(src)
	if err != nil {
		return 0
	}
	h, err := probe(src, gate.Format, "warning")
	if err != nil {
		return 0
	}
	return decodeCost(gate.Format, h, p.MaxWidth, p.MaxHeight)
}

// EstimateVariantsCost returns what Variants would reserve from the memory
// budget to make presets from src, or 0 when it would refuse src before
// that.
func EstimateVariantsCost(src []byte, presets []imaging.Preset) int64 {
	gate, err := imaging.ReadHeader(src)
	if err != nil {
		return 0
	}
	h, err := probe(src, gate.Format, "warning")
	if err != nil {
		return 0
	}
	l, err := planLadder(src, gate.Format, h, presets, "warning")
	if err != nil {
		return 0
	}
	return l.cost(gate.Format, h)
}
