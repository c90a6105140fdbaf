package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pms-dev/pms/product/message"
)

// The outbox holds messages of any kind until the relay has published
// them. A store writes the messages a change produced in the transaction of
// that change (writeOutbox), so there is never a change without its
// messages or the other way round; the Relay publishes them.
//
// A write wakes the relays at once instead of at their next poll. A relay
// in the same process is rung in memory after the commit (relayBell); only
// a process without one sends a NOTIFY, because a NOTIFY holds a lock that
// serialises every notifying commit of the cluster until its WAL is on disk.

// outboxChannel is the NOTIFY channel that wakes relays when messages are
// added.
const outboxChannel = "pms_outbox"

// relayBell wakes the relays running in this process.
type relayBell struct {
	running atomic.Int32
	ring    chan struct{} // capacity 1: rings while a relay is busy coalesce
}

func newRelayBell() *relayBell { return &relayBell{ring: make(chan struct{}, 1)} }

// here reports whether a relay of this process will hear the bell.
func (b *relayBell) here() bool { return b.running.Load() > 0 }

// wake rings the bell without waiting.
func (b *relayBell) wake() {
	select {
	case b.ring <- struct{}{}:
	default:
	}
}

// join makes a relay hear the bell until leave is called.
func (b *relayBell) join() (ring <-chan struct{}, leave func()) {
	b.running.Add(1)
	return b.ring, func() { b.running.Add(-1) }
}

const (
	insertMessages = `
INSERT INTO outbox (id, topic, key, payload, headers, created_at)
SELECT id, topic, key, payload, headers, clock_timestamp()
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::jsonb[]) AS m (id, topic, key, payload, headers)`
	notifyOutbox = `SELECT pg_notify('` + outboxChannel + `', '')`
)

// outboxArgs are msgs as the five arrays insertMessages takes, each with a
// new time-ordered id, and with the trace context of ctx (traceparent) in
// their headers, so the trace of the change goes on where they are handled.
func outboxArgs(ctx context.Context, msgs []message.Message) ([]any, error) {
	ids := make([]uuid.UUID, len(msgs))
	topics, keys, headers := make([]string, len(msgs)), make([]string, len(msgs)), make([]string, len(msgs))
	payloads := make([][]byte, len(msgs))
	for i, m := range msgs {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("make outbox message id: %w", err)
		}
		m.Headers = withTraceContext(ctx, m.Headers)
		h := []byte("{}")
		if len(m.Headers) > 0 {
			if h, err = json.Marshal(m.Headers); err != nil {
				return nil, fmt.Errorf("encode headers of a %s message: %w", m.Topic, err)
			}
		}
		ids[i], topics[i], keys[i], payloads[i], headers[i] = id, m.Topic, m.Key, m.Payload, string(h)
	}
	return []any{uuidArray(ids), pq.Array(topics), pq.Array(keys), pq.Array(payloads), pq.Array(headers)}, nil
}

// writeOutbox adds msgs to the outbox in t, in order; the relays wake when
// t commits.
func writeOutbox(ctx context.Context, t *txn, msgs []message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	args, err := outboxArgs(ctx, msgs)
	if err != nil {
		return err
	}
	if _, err := t.ExecContext(ctx, insertMessages, args...); err != nil {
		return fmt.Errorf("write %d messages to the outbox: %w", len(msgs), err)
	}
	t.wroteOutbox = true
	if t.db.bell.here() {
		return nil // withTx rings after the commit
	}
	// Delivered at commit to the relays of other processes.
	if _, err := t.ExecContext(ctx, notifyOutbox); err != nil {
		return fmt.Errorf("notify relays: %w", err)
	}
	return nil
}

// claimMessages deletes the oldest pending messages created at or after
// $2 and returns them; the relay commits only once they are published, so
// a failure puts them back. Deleting, not marking, keeps the table to what
// is pending: a queue whose published rows stayed would make every claim
// step over them. $2 lets a claim start where the last one ended instead of
// stepping over the index entries of every row deleted since the last
// vacuum.
//
// The batch is picked in an InitPlan (= ANY(ARRAY(...))), which runs once.
// As "id IN (SELECT ...)" the planner was free to run the pick again for
// each row of the outbox (a semi join with the pick inside), which costs
// the square of the backlog: in make load one claim of the prepared
// statement ran for over 30 s on the CPU with 10,000 rows pending, as such
// a plan would (the relay's statement timeout now bounds any claim).
const claimMessages = `
DELETE FROM outbox
WHERE id = ANY(ARRAY(
    SELECT id FROM outbox
    WHERE published_at IS NULL AND created_at >= $2
    ORDER BY created_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED))
RETURNING id, topic, key, payload, headers, created_at`

// deleteMarked deletes rows marked published: relays of earlier releases
// marked rows (published_at) and kept them; this one deletes them. The
// column and its partial indexes stay for them while a rolling upgrade
// runs.
const deleteMarked = `DELETE FROM outbox WHERE published_at IS NOT NULL`

type outboxRow struct {
	ID        uuid.UUID `db:"id"`
	Topic     string    `db:"topic"`
	Key       string    `db:"key"`
	Payload   []byte    `db:"payload"`
	Headers   []byte    `db:"headers"`
	CreatedAt time.Time `db:"created_at"`
}

func (r outboxRow) toMessage() (message.Message, error) {
	m := message.Message{Topic: r.Topic, Key: r.Key, Payload: r.Payload}
	if err := json.Unmarshal(r.Headers, &m.Headers); err != nil {
		return message.Message{}, fmt.Errorf("read headers of outbox message %s: %w", r.ID, err)
	}
	return m, nil
}

// withTraceContext returns headers (a copy, when it adds to them) with the
// trace context of ctx, if it has one.
func withTraceContext(ctx context.Context, headers map[string]string) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return headers
	}
	out := make(map[string]string, len(headers)+2)
	maps.Copy(out, headers)
	otel.GetTextMapPropagator().Inject(ctx, propagation.MapCarrier(out))
	return out
}

// wake wakes the relays after a statement outside withTx committed
// messages: the relay of this process by its bell, others by a NOTIFY of
// their own (the relays' poll covers a NOTIFY that fails).
func (d *DB) wake(ctx context.Context) {
	if d.bell.here() {
		d.bell.wake()
		return
	}
	_, _ = d.db.ExecContext(ctx, notifyOutbox)
}
