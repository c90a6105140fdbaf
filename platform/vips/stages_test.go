package vips

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pms-dev/pms/imaging"
)

var stagesCorpus = flag.String("stagescorpus", "../../testdata", "directory of images for BenchmarkLadderStages")

// BenchmarkLadderStages makes the worker's variants of every image of
// -stagescorpus as Variants does, one image at a time, and reports the time
// per image of each stage: plan (the sizes, from headers), decode (into the
// largest output: shrink-on-load, colour, rotation and the first resize),
// resize (the smaller sizes from memory), encode by format, and sample;
// and for each stage, the minor page faults per image and the most the
// process's resident memory rose during it (MB, over all images).
func BenchmarkLadderStages(b *testing.B) {
	c, err := New(Config{MaxConcurrent: 1, MaxMemory: 512 << 20, FailOn: "warning", Background: "#ffffff"}, imaging.DefaultLimits)
	if err != nil {
		b.Fatal(err)
	}
	presets := append(imaging.DefaultPresets(), imaging.DefaultLadder().Presets()...)
	entries, err := os.ReadDir(*stagesCorpus)
	if err != nil {
		b.Fatal(err)
	}
	var srcs [][]byte
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".jpg", ".png", ".webp", ".gif":
			data, err := os.ReadFile(filepath.Join(*stagesCorpus, e.Name()))
			if err != nil {
				b.Fatal(err)
			}
			srcs = append(srcs, data)
		}
	}
	stages := map[string]time.Duration{}
	faults := map[string]int64{}
	rise := map[string]int64{} // the most resident memory rose in the stage, in KiB
	timed := func(stage string, f func() error) {
		rss, flt := resetPeakRSS(b), minorFaults()
		start := time.Now()
		if err := f(); err != nil {
			b.Fatalf("%s: %v", stage, err)
		}
		stages[stage] += time.Since(start)
		faults[stage] += minorFaults() - flt
		rise[stage] = max(rise[stage], statusKB(b, "VmHWM")-rss)
	}
	b.ResetTimer()
	for range b.N {
		for _, data := range srcs {
			gate, _ := imaging.ReadHeader(data)
			h, err := probe(data, gate.Format, c.failOn)
			if err != nil {
				b.Fatal(err)
			}
			var l ladder
			timed("plan", func() (err error) { l, err = planLadder(data, gate.Format, h, presets, c.failOn); return err })
			var top image
			timed("decode", func() (err error) {
				top, err = thumbnail(context.Background(), data, gate.Format, h, l.box.w, l.box.h, c.failOn)
				return err
			})
			from := top
			for i, s := range l.sizes {
				im := top
				if i > 0 {
					timed("resize", func() (err error) { im, err = resize(context.Background(), top, s.w, s.h); return err })
				}
				done := map[[2]any]bool{}
				for j, p := range presets {
					q, _ := presetQuality(p)
					key := [2]any{outputFormat(p.Format, im.alpha()), q}
					if l.of[j] != i || done[key] {
						continue
					}
					done[key] = true
					timed("encode "+key[0].(string), func() error { _, err := c.encode(im, p, q); return err })
				}
				if im != top && s.holds(l.sample) {
					if from != top {
						from.close()
					}
					from = im
				} else if im != top {
					im.close()
				}
			}
			timed("sample", func() error { _, err := c.sampleFrom(context.Background(), from, l.sample, h); return err })
			if from != top {
				from.close()
			}
			top.close()
		}
	}
	b.StopTimer()
	n := float64(b.N * len(srcs))
	for stage, d := range stages {
		name := strings.ReplaceAll(stage, " ", "-")
		b.ReportMetric(float64(d.Nanoseconds())/n, "ns/image-"+name)
		b.ReportMetric(float64(faults[stage])/n, "faults/image-"+name)
		b.ReportMetric(float64(rise[stage])/1024, "peakMB-"+name)
	}
}

// resetPeakRSS resets the process's peak resident memory (VmHWM) to what
// it holds now, and returns that, in KiB: the peak read after a stage is
// then the stage's own.
func resetPeakRSS(tb testing.TB) int64 {
	tb.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		tb.Fatalf("reset peak RSS: %v", err)
	}
	return statusKB(tb, "VmRSS")
}

// statusKB returns a field of /proc/self/status, in KiB.
func statusKB(tb testing.TB, field string) int64 {
	tb.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tb.Fatalf("parse %q: %v", line, err)
			}
			return kb
		}
	}
	tb.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// minorFaults returns the minor page faults the process has taken: each is
// a page it touched for the first time since it was mapped.
func minorFaults() int64 {
	var u syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &u)
	return u.Minflt
}
