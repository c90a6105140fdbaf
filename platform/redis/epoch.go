package redis

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// Reading the key epoch (see KeyCache). One read a second is one tiny
// prepared query per process, however many keys are in use. A read vouches
// for the epoch for epochTrust after it started: that is the bound on how
// long a revocation takes to stop a cached key in every process when its
// invalidation is lost, even if reads fail meanwhile; after that, keys are
// fresh by time alone until a read succeeds again.
//
// Polling, not LISTEN/NOTIFY: a notification would arrive sooner, but the
// invalidation on revoke already does that when nothing is lost, and a poll
// is what bounds the wait when something is; a listener would need its own
// connection, reconnects and a poll behind it anyway.
const (
	epochEvery   = time.Second
	epochTrust   = 2 * time.Second
	epochTimeout = time.Second
)

// Results of an epoch read in pms_cache_epoch_reads_total.
const (
	epochSame  = "unchanged"
	epochMoved = "moved" // or first read: near copies dropped
	epochError = "error" // keys fresh by time alone once the last read is older than epochTrust
)

// epochRead is the key epoch as this process last read it, and when that
// read started.
type epochRead struct {
	n  int64
	at time.Time
}

// currentEpoch returns the key epoch, if a read that started within
// epochTrust returned it. A store read that failed or was slow meanwhile
// changes nothing: no key can be revoked without the store either, and
// under load such reads are common enough that falling back to time alone
// on each would read every key again.
func (kc *KeyCache) currentEpoch(now time.Time) (int64, bool) {
	r := kc.epoch.Load()
	if r == nil || now.Sub(r.at) >= epochTrust {
		return 0, false
	}
	return r.n, true
}

// lastEpoch returns the key epoch last read, however long ago, or 0 before
// the first read.
func (kc *KeyCache) lastEpoch() int64 {
	if r := kc.epoch.Load(); r != nil {
		return r.n
	}
	return 0
}

// watchEpoch reads the key epoch now and every epochEvery until Close,
// which also ends a read in flight.
func (kc *KeyCache) watchEpoch() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-kc.c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	kc.readEpoch(ctx)
	kc.c.every(epochEvery, func() { kc.readEpoch(ctx) })
}

// readEpoch reads the key epoch once. When it moved, every near copy of a
// key goes; cached keys of an older epoch are no longer fresh anyway. A
// failure is logged at a limited rate.
func (kc *KeyCache) readEpoch(ctx context.Context) {
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, epochTimeout)
	n, err := kc.epochs.KeyEpoch(rctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return // closing
		}
		kc.c.countEpoch(epochError)
		kc.epochFailing.Store(true)
		kc.c.note(zerolog.WarnLevel, "api key epoch read failed", err, func(e *zerolog.Event) {
			e.Dur("keys_fresh_for", kc.c.cfg.KeyFallbackTTL/2)
		})
		return
	}
	prev := kc.epoch.Swap(&epochRead{n: n, at: start})
	if prev == nil || prev.n != n {
		kc.c.countEpoch(epochMoved)
		if kc.near != nil {
			kc.near.drop("")
		}
	} else {
		kc.c.countEpoch(epochSame)
	}
	if kc.epochFailing.Swap(false) {
		kc.c.log.Info().Int64("epoch", n).Msg("api key epoch read again")
	}
}
