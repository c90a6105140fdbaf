package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// report prints the medians of every target as a Markdown table, with the
// host's worst moments in any of its rounds, and the ratios
// BENCHMARKS.md quotes, of the medians and of each round.
func report(w io.Writer, o options, targets []target, results map[string][]result) {
	fmt.Fprintf(w, "\n%d rounds of %s per target, wrk -t1 -c%d on core %d, servers on core %d; medians.\n\n",
		o.rounds, o.duration, o.conns, o.clientCore, o.serverCore)
	fmt.Fprintln(w, "| target | what | req/s | mean ms | p99 ms | p99 in pms's log | CPU µs per request, per process | all server CPU µs/req | host: steal % (most ms per 100 ms) · slowest flush ms |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---|---:|---|")
	rps := map[string]float64{}
	for _, t := range targets {
		rs := results[t.name]
		if len(rs) == 0 {
			continue
		}
		rps[t.name] = median(rs, func(r result) float64 { return r.rps })
		mean := median(rs, func(r result) float64 { return ms(r.mean) })
		p99 := median(rs, func(r result) float64 { return ms(r.p99) })
		logged := "–"
		if rs[0].serverP99 > 0 {
			logged = fmt.Sprintf("%.2f", median(rs, func(r result) float64 { return ms(r.serverP99) }))
		}
		var parts []string
		var total float64
		for _, n := range rs[0].order {
			v := median(rs, func(r result) float64 { return float64(r.cpu[n]) / float64(time.Microsecond) })
			total += v
			parts = append(parts, fmt.Sprintf("%s %.0f", n, v))
		}
		stole := median(rs, func(r result) float64 { return 100 * r.host.steal })
		peak := slices.MaxFunc(rs, func(a, b result) int { return cmp.Compare(a.host.stealPeak, b.host.stealPeak) }).host.stealPeak
		flush := slices.MaxFunc(rs, func(a, b result) int { return cmp.Compare(a.host.flushPeak, b.host.flushPeak) }).host.flushPeak
		fmt.Fprintf(w, "| %s | %s | %.0f | %.2f | %.2f | %s | %s | %.0f | %.1f (%d) · %.0f |\n", t.name, t.what, rps[t.name], mean, p99, logged,
			strings.Join(parts, " · "), total, stole, peak.Milliseconds(), ms(flush))
	}
	fmt.Fprintln(w)
	for _, q := range [][2]string{{"get", "get-echo"}, {"get-nonear", "get-echo"}, {"post", "post-baseline"}, {"post", "post-pgbench"},
		{"get", "get-baseline"}, {"list", "list-baseline"}, {"list", "list-pgbench"}} {
		a, b := results[q[0]], results[q[1]]
		if len(a) == 0 || len(b) == 0 {
			continue
		}
		// Each round's ratio too: within a round the two ran close together.
		var rounds []string
		for i := range min(len(a), len(b)) {
			rounds = append(rounds, fmt.Sprintf("%.2f", a[i].rps/b[i].rps))
		}
		fmt.Fprintf(w, "- %s / %s: %.2f× (per round %s)\n", q[0], q[1], rps[q[0]]/rps[q[1]], strings.Join(rounds, " / "))
	}
}

// median returns the median of f over rs.
func median(rs []result, f func(result) float64) float64 {
	vs := make([]float64, len(rs))
	for i, r := range rs {
		vs[i] = f(r)
	}
	slices.Sort(vs)
	if n := len(vs); n%2 == 0 {
		return (vs[n/2-1] + vs[n/2]) / 2
	}
	return vs[len(vs)/2]
}
