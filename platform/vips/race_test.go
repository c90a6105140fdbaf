//go:build race

package vips_test

// raceEnabled: the race detector slows the inputs' making tenfold and adds
// nothing to a memory measurement, so TestPeakRSSHostile runs without it.
const raceEnabled = true
