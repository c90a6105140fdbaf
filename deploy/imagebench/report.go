package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// key names one tool at one concurrency.
type key struct {
	tool string
	conc int
}

// report prints one Markdown row per tool and concurrency: medians over
// the rounds, and output sizes and mismatches from the last round.
func report(w io.Writer, all []result, images int) {
	var keys []key
	runs := map[key][]result{}
	ref := map[int][]output{} // pms's outputs per concurrency
	for _, r := range all {
		k := key{r.Tool, r.Conc}
		if _, ok := runs[k]; !ok {
			keys = append(keys, k)
		}
		runs[k] = append(runs[k], r)
		if r.Tool == "pms" {
			ref[r.Conc] = r.Outputs
		}
	}
	fmt.Fprintf(w, "| tool | conc | images/s | images/s per core | CPU ms/image | ms/variant (wall) | peak RSS MB | KB/image out | size mismatches |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, k := range keys {
		rs := runs[k]
		secs := median(rs, func(r result) float64 { return r.Seconds })
		cpu := median(rs, func(r result) float64 { return r.CPU })
		peak := median(rs, func(r result) float64 { return float64(r.PeakKB) })
		last := rs[len(rs)-1]
		var bytes int
		for _, o := range last.Outputs {
			bytes += o.Bytes
		}
		ips := float64(images) / secs
		fmt.Fprintf(w, "| %s | %d | %.2f | %.2f | %.0f | %.1f | %.0f | %.0f | %d of %d |\n", k.tool, k.conc, ips,
			float64(images)/cpu, cpu/float64(images)*1000, secs/float64(len(last.Outputs))*1e3, peak/1024,
			float64(bytes)/float64(images)/1000, mismatches(last.Outputs, ref[k.conc]), len(last.Outputs))
	}
	fmt.Fprintf(w, "\nOutput bytes per variant, median over images (last round, conc 1):\n\n| preset | %s |\n", toolNames(keys))
	n := 0
	for _, k := range keys {
		if k.conc == keys[0].conc {
			n++
		}
	}
	fmt.Fprintf(w, "|---|%s\n", strings.Repeat("---:|", n))
	presetBytes(w, keys, runs)
}

func toolNames(keys []key) string {
	s := ""
	for _, k := range keys {
		if k.conc == keys[0].conc {
			if s != "" {
				s += " | "
			}
			s += k.tool
		}
	}
	return s
}

func presetBytes(w io.Writer, keys []key, runs map[key][]result) {
	for _, p := range presets() {
		fmt.Fprintf(w, "| %s |", p.Name)
		for _, k := range keys {
			if k.conc != keys[0].conc {
				continue
			}
			rs := runs[k]
			var b []int
			for _, o := range rs[len(rs)-1].Outputs {
				if o.Preset == p.Name {
					b = append(b, o.Bytes)
				}
			}
			sort.Ints(b)
			fmt.Fprintf(w, " %d |", b[len(b)/2])
		}
		fmt.Fprintln(w)
	}
}

// mismatches counts outputs whose pixel size or format differs from ref's.
func mismatches(outs, ref []output) int {
	n := 0
	for i, o := range outs {
		if i >= len(ref) || o.Width != ref[i].Width || o.Height != ref[i].Height || o.Format != ref[i].Format {
			n++
		}
	}
	return n
}

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}
