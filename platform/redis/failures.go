package redis

import (
	"context"
	"sync"
	"time"
)

// maxBlocked bounds the blocked addresses a process remembers.
const maxBlocked = 100_000

// failureKey is where the failure budget of a client address is kept.
func failureKey(addr string) string { return "pms:rl:f:" + addr }

// ReserveFailure takes one failed authentication from the budget of the
// client address addr before its credentials are checked, and reports
// whether there was one; if not, how long until there is. The budget is
// kept in Redis (GCRA: LimitConfig.AuthFailuresPerMinute, AuthFailureBurst
// at once), so every process shares it, and a reservation is atomic: no
// number of concurrent requests gets more checks than the budget holds.
//
// An address found without budget is blocked in this process until the
// next failure is due; until then ReserveFailure refuses it without asking
// Redis, so a flood from a blocked address costs no round trip.
//
// ReserveFailure fails open: when Redis fails or the breaker is open it
// reports a reservation without one.
func (l *Limiter) ReserveFailure(ctx context.Context, addr string) (time.Duration, bool) {
	if wait, blocked := l.blocked.get(addr, time.Now()); blocked {
		return wait, false
	}
	t, err := l.c.takeTokens(ctx, failureKey(addr), l.failure, 1)
	if err != nil || t.n > 0 {
		return 0, true
	}
	wait := max(t.retryAfter, time.Millisecond)
	l.blocked.add(addr, time.Now().Add(wait))
	return wait, false
}

// RefundFailure gives back a failure ReserveFailure took, once the
// credentials turned out good, so that clients that authenticate never use
// up their address's budget. A refund never raises the budget above its
// burst.
func (l *Limiter) RefundFailure(ctx context.Context, addr string) {
	// GCRA takes a negative cost as a refund: the budget's clock moves
	// back, but not before now, which is a full budget.
	_, _ = l.c.takeTokens(ctx, failureKey(addr), l.failure, -1) // a lost refund costs one failure of budget
}

// blocklist holds addresses until a time.
type blocklist struct {
	mu    sync.Mutex
	until map[string]time.Time
}

func (b *blocklist) add(addr string, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.until[addr]; !ok && len(b.until) >= maxBlocked {
		now := time.Now()
		for a, u := range b.until {
			if !now.Before(u) {
				delete(b.until, a)
			}
		}
		if len(b.until) >= maxBlocked {
			clear(b.until) // rare: it costs a round trip per blocked address
		}
	}
	b.until[addr] = until
}

func (b *blocklist) get(addr string, now time.Time) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	until, ok := b.until[addr]
	if !ok {
		return 0, false
	}
	if !now.Before(until) {
		delete(b.until, addr)
		return 0, false
	}
	return until.Sub(now), true
}
