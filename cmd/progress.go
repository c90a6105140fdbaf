package cmd

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// newProgress returns the progress bar of a long CLI operation: what it is
// doing, done/total units and their rate, on w (stderr, so that output
// stays parseable), at most ten redraws a second.
func newProgress(w io.Writer, total int, doing, units string) *progressbar.ProgressBar {
	return progressbar.NewOptions(total, progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(doing), progressbar.OptionShowCount(),
		progressbar.OptionShowIts(), progressbar.OptionSetItsString(units),
		progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
}

// progressOf returns a progress callback (done of total) that draws
// newProgress on w, made at the first call, once the total is known.
func progressOf(w io.Writer, doing, units string) func(done, total int) {
	var bar *progressbar.ProgressBar
	return func(done, total int) {
		if bar == nil {
			bar = newProgress(w, total, doing, units)
		}
		_ = bar.Set(done)
	}
}
