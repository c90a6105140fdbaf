// Command load measures pms under load as separate processes, the way
// BENCHMARKS.md reports it: every server process (pms serve, PostgreSQL,
// Redis, the Kafka-protocol broker, a bare Echo handler) pinned to one core,
// wrk with one thread on the other, the targets interleaved round by round,
// and the CPU each server process spent per request read from /proc. Each
// measured run also probes the host (see host): the time stolen from the
// server core, and the slowest of ten disk flushes a second.
//
// make load runs it with PostgreSQL (production settings) and Redis started
// by deploy/services.sh:
//
//	deploy/services.sh load go run ./deploy/load -pms bin/pms [-baseline OLD_PMS] [-duration 10s] [-rounds 3]
//
// pms runs with its production settings: rate limits on (each request
// carries one of -users API keys in turn, so no key passes its limit), one
// JSON log line per request written to a file, PostgreSQL durable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	pms, baseline          string
	duration, warmup       time.Duration
	rounds, conns, users   int
	rows                   int
	targets                string
	serverCore, clientCore int
	perf                   string // directory for perf profiles of the measured runs, or ""
	keep                   bool   // keep the servers' logs even when the run succeeds
	waits                  bool   // sample what PostgreSQL's backends wait for during measured runs
	pmsEnv                 envList
}

// envList is a repeated flag of KEY=VALUE settings.
type envList []string

func (l *envList) String() string { return strings.Join(*l, " ") }

func (l *envList) Set(v string) error {
	if !strings.Contains(v, "=") {
		return errors.New("want KEY=VALUE")
	}
	*l = append(*l, v)
	return nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bare" {
		// The bare Echo handler, run by this command as its own process.
		if err := serveBare(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bare:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.pms, "pms", "bin/pms", "the pms binary under test")
	flag.StringVar(&o.baseline, "baseline", "", "an older pms binary to measure side by side (optional)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured run")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each run")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every target once, and the median is reported")
	flag.IntVar(&o.conns, "c", 16, "wrk connections")
	flag.IntVar(&o.users, "users", 2000, "users, each with an API key; requests take the keys in turn")
	flag.IntVar(&o.rows, "rows", 1_000_000, "products seeded for the list targets")
	flag.StringVar(&o.targets, "targets", "", "comma-separated target names to run (default all; see -list)")
	flag.IntVar(&o.serverCore, "server-core", 0, "core of every server process")
	flag.IntVar(&o.clientCore, "client-core", 1, "core of wrk and pgbench")
	flag.Var(&o.pmsEnv, "pms-env", "KEY=VALUE added to the environment of every pms under test, after its own settings (repeatable; for experiments: say so next to figures)")
	flag.StringVar(&o.perf, "perf", "", "record each measured run of every server process with perf record -g into this directory")
	flag.BoolVar(&o.keep, "keep", false, "keep the servers' logs (one JSON line per request) even when the run succeeds, and print their directory")
	flag.BoolVar(&o.waits, "waits", false, "sample pg_stat_activity every 50ms during each measured run and print what the active backends waited for (adds a little PostgreSQL CPU)")
	list := flag.Bool("list", false, "print the target names and exit")
	flag.Parse()
	if *list {
		for _, t := range allTargets(o) {
			fmt.Println(t.name)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (err error) {
	targets, err := pickTargets(o)
	if err != nil {
		return err
	}
	if o.perf != "" {
		if err := os.MkdirAll(o.perf, 0o755); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "pms-load.")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil || o.keep { // the servers' logs tell why
			progress("kept the servers' logs in %s", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	env, err := newEnvironment(ctx, o, dir)
	if err != nil {
		return err
	}
	defer env.close()

	results := map[string][]result{}
	for r := 1; r <= o.rounds; r++ {
		for _, t := range targets {
			if err := ctx.Err(); err != nil {
				return err
			}
			env.run = fmt.Sprintf("%s-%d", t.name, r)
			res, err := t.run(ctx, env)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r, t.name, err)
			}
			results[t.name] = append(results[t.name], res)
			progress("round %d/%d  %-32s %s", r, o.rounds, t.name, res.summary())
		}
	}
	report(os.Stdout, o, targets, results)
	if o.keep {
		env.copyPostgresLog()
	}
	return nil
}

// pickTargets returns the targets -targets names, in the order of allTargets.
func pickTargets(o options) ([]target, error) {
	all := allTargets(o)
	if o.targets == "" {
		return all, nil
	}
	want := strings.Split(o.targets, ",")
	var picked []target
	for _, t := range all {
		if slices.Contains(want, t.name) {
			picked = append(picked, t)
		}
	}
	if len(picked) != len(want) {
		return nil, errors.New("-targets names a target that does not exist (see -list)")
	}
	return picked, nil
}

// progress prints one line of what the command is doing to stderr.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s load: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// absPath resolves a binary given relative to the working directory.
func absPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	a, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(a); err != nil {
		return "", err
	}
	return a, nil
}
