// Package sysmon keeps the Go runtime's system monitor (sysmon) at its
// settled period when the process goes idle, which saves a serving
// process most of its thread switches.
//
// By default sysmon sleeps deeply whenever every P is idle, and the first
// system call after that wakes it and restarts it at a 20 µs period. On a
// server whose one P goes idle and busy once or twice per request, that is
// a futex wake-up and dozens of 20 µs sleeps per request, and with one P
// each system call that outlasts a tick hands the P to another thread.
// Measured under `make load` (BENCHMARKS.md), a POST cost `pms serve` 5
// thread switches instead of 1, and a quarter more CPU.
//
// The runtime skips the deep sleep only while GODEBUG's schedtrace is set,
// and reads GODEBUG only at start, so [Steady] starts the binary again with
// schedtrace at its largest period. The trade: after an idle spell sysmon
// keeps a period of up to 10 ms, so a system call that blocks the only P
// (a stalled write to stderr, a long cgo call) is handed off after up to
// about 20 ms instead of 40 µs. Goroutines waiting on the network are not
// affected: they do not hold a P.
package sysmon

import (
	"os"
	"slices"
	"strings"
	"syscall"
)

// Setting is the GODEBUG setting that keeps sysmon from sleeping deeply:
// schedtrace's largest period in milliseconds, so that the runtime's
// scheduler trace it also enables is printed to stderr once every 24.8
// days: first when the host has been up that long (at start, on a host
// up longer).
const Setting = "schedtrace=2147483647"

// Env returns env with [Setting] added to its GODEBUG, and whether it
// added it. An env whose GODEBUG names schedtrace already is returned as
// it is: GODEBUG=schedtrace=0 is how an operator keeps the runtime's
// default.
func Env(env []string) ([]string, bool) {
	for i, kv := range env {
		v, ok := strings.CutPrefix(kv, "GODEBUG=")
		if !ok {
			continue
		}
		// The runtime reads the first GODEBUG only.
		for field := range strings.SplitSeq(v, ",") {
			if strings.HasPrefix(field, "schedtrace=") {
				return env, false
			}
		}
		out := slices.Clone(env)
		out[i] = "GODEBUG=" + strings.TrimPrefix(v+","+Setting, ",")
		return out, true
	}
	return append(slices.Clip(env), "GODEBUG="+Setting), true
}

// Steady starts the running binary again, in this process and with its
// arguments, with [Setting] in its environment, unless GODEBUG names
// schedtrace already. It returns only if it did not: nil when there was
// nothing to do, or the error of the exec. Call it first thing, before
// the process opens anything.
func Steady() error {
	env, changed := Env(os.Environ())
	if !changed {
		return nil
	}
	// /proc/self/exe is this process's binary even if its path has been
	// replaced since it started; os.Executable would give the new one.
	exe := "/proc/self/exe"
	if _, err := os.Stat(exe); err != nil {
		if exe, err = os.Executable(); err != nil {
			return err
		}
	}
	return syscall.Exec(exe, os.Args, env)
}
