package main

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// waitsInterval is how often -waits samples pg_stat_activity.
const waitsInterval = 50 * time.Millisecond

// waitSampler counts what the load database's active backends wait for
// during a measured run (-waits): "CPU" when they wait for nothing, which
// on the shared core includes waiting to be scheduled. A backend woken
// from a lock shows the lock until it runs again, so a lock's count also
// holds the time its waiters spend runnable on a busy core.
type waitSampler struct {
	stop    context.CancelFunc
	done    chan struct{}
	samples int
	counts  map[string]int // wait event and the start of the query -> backends seen
	err     error
}

// startWaits starts sampling when -waits is set; its stop returns a
// summary line per wait, busiest first, or "" without -waits.
func (e *environment) startWaits(ctx context.Context) func() string {
	if !e.o.waits {
		return func() string { return "" }
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &waitSampler{stop: cancel, done: make(chan struct{}), counts: map[string]int{}}
	go w.run(ctx, e.sql)
	return func() string {
		w.stop()
		<-w.done
		return w.summary()
	}
}

func (w *waitSampler) run(ctx context.Context, db *sql.DB) {
	defer close(w.done)
	if err := every(ctx, waitsInterval, func() error { return w.sample(ctx, db) }); err != nil && ctx.Err() == nil {
		w.err = err
	}
}

// every calls probe every interval until ctx ends or probe fails, and
// returns probe's error.
func every(ctx context.Context, interval time.Duration, probe func() error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := probe(); err != nil {
			return err
		}
	}
}

func (w *waitSampler) sample(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `
		SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), left(regexp_replace(query, '\s+', ' ', 'g'), 40)
		FROM pg_stat_activity
		WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var wait, query string
		if err := rows.Scan(&wait, &query); err != nil {
			return err
		}
		w.counts[wait+"  "+strings.TrimSpace(query)]++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	w.samples++
	return nil
}

// summary returns the average number of active backends per wait and
// query, busiest first.
func (w *waitSampler) summary() string {
	if w.err != nil {
		return "\n    waits: " + w.err.Error()
	}
	if w.samples == 0 {
		return ""
	}
	keys := make([]string, 0, len(w.counts))
	for k := range w.counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Compare(w.counts[b], w.counts[a]) })
	var b strings.Builder
	fmt.Fprintf(&b, "\n    active backends, average of %d samples:", w.samples)
	for _, k := range keys[:min(len(keys), 6)] {
		fmt.Fprintf(&b, "\n    %5.2f  %s", float64(w.counts[k])/float64(w.samples), k)
	}
	return b.String()
}
