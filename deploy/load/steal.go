package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// stealInterval is how often the server core's stolen time is read.
const stealInterval = 100 * time.Millisecond

// steal is the time the hypervisor ran something else instead of the
// server core during a measured run: /proc/stat's steal for that core,
// which a process's own CPU times do not show. A stall of the whole core
// shows here as a peak.
type steal struct {
	share float64       // of the run's wall time
	peak  time.Duration // the most stolen in one stealInterval
}

func (s steal) String() string {
	return fmt.Sprintf("steal %.1f%% (most %d ms in %d ms)", 100*s.share, s.peak.Milliseconds(), stealInterval.Milliseconds())
}

// startSteal reads the steal time of core every stealInterval until its
// stop is called, which returns what it measured.
func startSteal(ctx context.Context, core int) (func() (steal, error), error) {
	first, err := stolen(core)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	began := time.Now()
	var (
		peak time.Duration
		last = first
		serr error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		t := time.NewTicker(stealInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			now, err := stolen(core)
			if err != nil {
				serr = err
				return
			}
			peak, last = max(peak, now-last), now
		}
	}()
	return func() (steal, error) {
		cancel()
		<-done
		if serr != nil {
			return steal{}, serr
		}
		end, err := stolen(core)
		if err != nil {
			return steal{}, err
		}
		return steal{share: float64(end-first) / float64(time.Since(began)), peak: max(peak, end-last)}, nil
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
