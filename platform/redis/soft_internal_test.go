package redis

import (
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	l := newLogLimiter(10 * time.Second)
	t0 := time.Unix(1_000_000, 0)
	steps := []struct {
		kind           string
		at             time.Duration
		wantOK         bool
		wantSuppressed int
	}{
		{"read", 0, true, 0},
		{"read", time.Second, false, 0},
		{"write", time.Second, true, 0}, // kinds are limited separately
		{"read", 9 * time.Second, false, 0},
		{"read", 10 * time.Second, true, 2},
		{"read", 11 * time.Second, false, 0},
		{"read", 30 * time.Second, true, 1},
	}
	for i, s := range steps {
		ok, suppressed := l.allow(s.kind, t0.Add(s.at))
		if ok != s.wantOK || suppressed != s.wantSuppressed {
			t.Errorf("step %d: allow(%q, +%v) = %v, %d; want %v, %d", i, s.kind, s.at, ok, suppressed,
				s.wantOK, s.wantSuppressed)
		}
	}
}

func TestRetryQueue(t *testing.T) {
	q := newRetryQueue(2)
	a, b, c := newEntry("a"), newEntry("b"), newEntry("c")
	if !q.add(a) || !q.add(b) {
		t.Fatal("add() to a queue with room = false")
	}
	if q.add(c) {
		t.Error("add() to a full queue = true, want false")
	}
	if !q.add(a) {
		t.Error("add() of an entry already queued to a full queue = false, want true")
	}
	batch := q.batch(10)
	q.add(b) // failed again after the batch was taken: its retry may be too early
	q.done(batch)
	if q.has(a) || !q.has(b) || q.len() != 1 {
		t.Errorf("after done: has(a) = %v, has(b) = %v, len = %d; want false, true, 1", q.has(a), q.has(b), q.len())
	}
}

func TestJittered(t *testing.T) {
	const ttl = 30 * time.Minute
	lo, hi := ttl*9/10, ttl*11/10
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := jittered(ttl, 0.1)
		if d < lo || d > hi {
			t.Fatalf("jittered(30m, 0.1) = %v, want within %v..%v", d, lo, hi)
		}
		seen[d] = true
	}
	if len(seen) < 900 {
		t.Errorf("1000 jittered TTLs have %d distinct values, want spread", len(seen))
	}
	if d := jittered(ttl, 0); d != ttl {
		t.Errorf("jittered(30m, 0) = %v, want 30m", d)
	}
}
