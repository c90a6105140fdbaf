package kafka

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// maxPending bounds how many messages of one partition may be received but
// not yet marked, so one slow task cannot pile up unbounded redelivery.
const maxPending = 1024

// groupHandler is the sarama.ConsumerGroupHandler of a Consumer.
type groupHandler struct{ c *Consumer }

// Setup implements sarama.ConsumerGroupHandler.
func (g *groupHandler) Setup(sess sarama.ConsumerGroupSession) error {
	g.c.log.Info().Interface("claims", sess.Claims()).Int32("generation", sess.GenerationID()).Msg("kafka partitions assigned")
	return nil
}

// Cleanup implements sarama.ConsumerGroupHandler.
func (g *groupHandler) Cleanup(sess sarama.ConsumerGroupSession) error {
	g.c.log.Info().Int32("generation", sess.GenerationID()).Msg("kafka partitions released")
	return nil
}

// ConsumeClaim starts a task for each message of one partition, at most
// Config.Concurrency at once across partitions (for an ordered route, one
// at a time per key, see keyChain), and marks offsets in order
// as tasks finish. It returns as soon as the session ends, after waiting for
// tasks in flight (see drain).
func (g *groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	stop := sess.Context()
	// Tasks run under work, which survives the session's end by up to
	// ShutdownGrace so a task in flight can finish its attempt.
	work, cancel := context.WithCancel(context.WithoutCancel(stop))
	defer cancel()
	// marked is the next offset of the partition to mark, for the lag. A
	// group's first claim starts at OffsetOldest, a negative sentinel, until
	// the first message says where the partition starts.
	var marked atomic.Int64
	marked.Store(claim.InitialOffset())
	tr := newTracker(maxPending, func(m *sarama.ConsumerMessage) { sess.MarkMessage(m, ""); marked.Store(m.Offset + 1) })
	defer g.c.lags.watch(claim, &marked)()
	var wg sync.WaitGroup
	defer g.drain(&wg, cancel, claim)
	var keys *keyChain
	if r := g.c.routes[claim.Topic()]; r != nil && r.Ordered {
		keys = newKeyChain()
	}
	for {
		select {
		case <-stop.Done():
			return nil
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			// Waiting for room selects on stop too, so a rebalance never
			// blocks here.
			if !tr.reserve(stop) {
				return nil
			}
			if keys != nil {
				// The task waits for the one before it of its key, and only
				// then for a slot, so waiting holds no slot.
				e := tr.add(msg)
				prev, done := keys.next(string(msg.Key))
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer done()
					if !keys.wait(stop, prev) || !g.acquire(stop) {
						return
					}
					defer g.release()
					if g.c.dispatch(stop, work, msg) {
						tr.finish(e)
					}
				}()
				continue
			}
			if !g.acquire(stop) {
				return nil
			}
			if m := marked.Load(); m < 0 {
				marked.CompareAndSwap(m, msg.Offset)
			}
			e := tr.add(msg)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer g.release()
				if g.c.dispatch(stop, work, msg) {
					tr.finish(e)
				}
			}()
		}
	}
}

// keyChain orders the tasks of an ordered route's partition by key: each
// task waits for the one before it with the same key.
type keyChain struct {
	mu   sync.Mutex
	last map[string]chan struct{} // the newest task's, closed when it ends
}

func newKeyChain() *keyChain { return &keyChain{last: map[string]chan struct{}{}} }

// next registers a task of key: it returns the channel of the task before
// it (nil for none) and the func the task calls when it ends.
func (k *keyChain) next(key string) (prev <-chan struct{}, done func()) {
	mine := make(chan struct{})
	k.mu.Lock()
	prev = k.last[key]
	k.last[key] = mine
	k.mu.Unlock()
	return prev, func() {
		k.mu.Lock()
		if k.last[key] == mine {
			delete(k.last, key)
		}
		k.mu.Unlock()
		close(mine)
	}
}

// wait waits for prev to end and reports whether the task may run: not
// once stop ended, since then prev may have ended unfinished.
func (k *keyChain) wait(stop context.Context, prev <-chan struct{}) bool {
	if prev != nil {
		select {
		case <-prev:
		case <-stop.Done():
			return false
		}
	}
	return stop.Err() == nil
}

func (g *groupHandler) acquire(ctx context.Context) bool {
	select {
	case g.c.sem <- struct{}{}:
		g.c.metrics.inFlight.Inc()
		return true
	case <-ctx.Done():
		return false
	}
}

func (g *groupHandler) release() {
	g.c.metrics.inFlight.Dec()
	<-g.c.sem
}

// drain waits up to ShutdownGrace for the claim's tasks in flight, then
// cancels them and waits for them to return. Cancelled tasks stay unmarked
// and are delivered again to the partition's next owner.
func (g *groupHandler) drain(wg *sync.WaitGroup, cancel context.CancelFunc, claim sarama.ConsumerGroupClaim) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(g.c.cfg.ShutdownGrace)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	g.c.log.Warn().Str("topic", claim.Topic()).Int32("partition", claim.Partition()).
		Dur("grace", g.c.cfg.ShutdownGrace).Msg("cancelling unfinished tasks; they will be redelivered")
	cancel()
	<-done
}

// tracker marks one partition's offsets in the order the messages arrived:
// a message is marked once it and every earlier one are finished. Marking
// the last of a finished run marks its offset + 1, which covers the run.
type tracker struct {
	mu      sync.Mutex
	pending []*entry // received, not yet marked, in arrival order
	room    chan struct{}
	mark    func(*sarama.ConsumerMessage)
}

type entry struct {
	msg  *sarama.ConsumerMessage
	done bool
}

func newTracker(window int, mark func(*sarama.ConsumerMessage)) *tracker {
	return &tracker{room: make(chan struct{}, window), mark: mark}
}

// reserve waits until fewer than window messages are pending, or ctx ends.
func (t *tracker) reserve(ctx context.Context) bool {
	select {
	case t.room <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// add records a message as pending; call reserve first and call add in
// offset order.
func (t *tracker) add(msg *sarama.ConsumerMessage) *entry {
	e := &entry{msg: msg}
	t.mu.Lock()
	t.pending = append(t.pending, e)
	t.mu.Unlock()
	return e
}

// finish records e as done and marks the end of the finished run at the
// front, if any. Marking under the lock keeps marks in order.
func (t *tracker) finish(e *entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e.done = true
	var last *sarama.ConsumerMessage
	for len(t.pending) > 0 && t.pending[0].done {
		last = t.pending[0].msg
		t.pending[0] = nil
		t.pending = t.pending[1:]
		<-t.room
	}
	if last != nil {
		t.mark(last)
	}
}
