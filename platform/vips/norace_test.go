//go:build !race

package vips_test

const raceEnabled = false
