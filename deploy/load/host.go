package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// hostInterval is how often the host is probed during a measured run.
const hostInterval = 100 * time.Millisecond

// host is what the machine did to a measured run that no process's CPU
// time shows: the time the hypervisor ran something else instead of the
// server core (/proc/stat's steal; a stall of the whole core is a peak),
// and the slowest flush of the disk PostgreSQL writes its WAL to (every
// commit waits for one).
type host struct {
	steal     float64       // of the run's wall time
	stealPeak time.Duration // the most stolen in one hostInterval
	flushPeak time.Duration // the slowest write and fdatasync of a 4 kB block
}

func (h host) String() string {
	return fmt.Sprintf("host: steal %.1f%% (most %d ms in %d ms), slowest disk flush %.1f ms",
		100*h.steal, h.stealPeak.Milliseconds(), hostInterval.Milliseconds(), ms(h.flushPeak))
}

// probeHost probes the host every hostInterval until its stop is called,
// which returns what it found: the server core, and the disk with a file
// next to PostgreSQL's log (beside its data directory; with no log known,
// in the load's directory).
func (e *environment) probeHost(ctx context.Context) (stop func() (host, error), err error) {
	dir := e.dir
	if e.pgLog != "" {
		dir = filepath.Dir(e.pgLog)
	}
	core := e.o.serverCore
	first, err := stolen(core)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "flush.")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	began := time.Now()
	var (
		h          host
		last       = first
		wg         sync.WaitGroup
		serr, ferr error
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		serr = every(ctx, hostInterval, func() error {
			now, err := stolen(core)
			if err != nil {
				return err
			}
			h.stealPeak, last = max(h.stealPeak, now-last), now
			return nil
		})
	}()
	block := make([]byte, 4096)
	go func() {
		defer wg.Done()
		ferr = every(ctx, hostInterval, func() error {
			t := time.Now()
			// As PostgreSQL flushes WAL: fdatasync, into a block already
			// allocated (after the first write), so the data alone.
			if _, err := f.WriteAt(block, 0); err != nil {
				return err
			}
			if err := syscall.Fdatasync(int(f.Fd())); err != nil {
				return err
			}
			h.flushPeak = max(h.flushPeak, time.Since(t))
			return nil
		})
	}()
	return func() (host, error) {
		cancel()
		wg.Wait()
		f.Close()
		os.Remove(f.Name())
		if serr != nil || ferr != nil {
			return host{}, fmt.Errorf("probing the host: steal: %v, flush in %s: %v", serr, filepath.Dir(f.Name()), ferr)
		}
		end, err := stolen(core)
		if err != nil {
			return host{}, err
		}
		h.steal = float64(end-first) / float64(time.Since(began))
		h.stealPeak = max(h.stealPeak, end-last)
		return h, nil
	}, nil
}

// stolen returns the steal time of core since boot: the eighth value of its
// line in /proc/stat, in clock ticks.
func stolen(core int) (time.Duration, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	prefix := "cpu" + strconv.Itoa(core) + " "
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 8 {
			return 0, fmt.Errorf("/proc/stat: %d values for cpu%d", len(fields), core)
		}
		ticks, err := strconv.ParseInt(fields[7], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: cpu%d steal: %w", core, err)
		}
		return time.Duration(ticks) * time.Second / clockTicks, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/stat has no line for cpu%d", core)
}

// autovacuumWait bounds how long a measured run waits for autovacuum.
const autovacuumWait = 3 * time.Minute

// quiesce vacuums the load's database and waits until no autovacuum
// worker runs, so that a run does not measure the vacuum an earlier
// target's writes left due: on the shared core it took a fifth of the time
// from two GET rounds (the seventeenth and eighteenth runs, BENCHMARKS.md),
// and a worker the launcher starts during the run does the same, which
// waiting alone does not prevent. It says what it waited for; after
// autovacuumWait it lets the run go ahead and says so.
func (e *environment) quiesce(ctx context.Context) error {
	began := time.Now()
	if _, err := e.sql.ExecContext(ctx, "VACUUM (ANALYZE)"); err != nil {
		return fmt.Errorf("vacuum before a run: %w", err)
	}
	var last string
	for {
		var running string
		if err := e.sql.QueryRowContext(ctx, `
			SELECT coalesce(string_agg(query, '; ' ORDER BY query), '')
			FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND state = 'active'`).Scan(&running); err != nil {
			return err
		}
		waited := time.Since(began).Round(time.Second)
		switch {
		case running == "":
			if last != "" {
				progress("waited %s for vacuum (%s)", waited, last)
			} else if waited >= time.Second {
				progress("waited %s for vacuum", waited)
			}
			return nil
		case waited > autovacuumWait:
			progress("autovacuum still runs after %s (%s): measuring anyway", waited, running)
			return nil
		}
		last = running
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
