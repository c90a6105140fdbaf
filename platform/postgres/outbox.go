package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/pms-dev/pms/product/message"
)

// The outbox holds messages of any kind until the relay has published
// them. A store writes the messages a change produced in the transaction of
// that change (writeOutbox), so there is never a change without its
// messages or the other way round; the Relay publishes them.

// outboxChannel is the NOTIFY channel that wakes relays when messages are
// added.
const outboxChannel = "pms_outbox"

const (
	insertMessages = `
INSERT INTO outbox (id, topic, key, payload, headers, created_at)
SELECT id, topic, key, payload, headers, now()
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::jsonb[]) AS m (id, topic, key, payload, headers)`
	notifyOutbox = `SELECT pg_notify('` + outboxChannel + `', '')`
)

// writeOutbox adds msgs to the outbox in tx, in order, and wakes the
// relays when tx commits.
func writeOutbox(ctx context.Context, tx *sqlx.Tx, msgs []message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, len(msgs))
	topics, keys, headers := make([]string, len(msgs)), make([]string, len(msgs)), make([]string, len(msgs))
	payloads := make([][]byte, len(msgs))
	for i, m := range msgs {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("make outbox message id: %w", err)
		}
		h := []byte("{}")
		if len(m.Headers) > 0 {
			if h, err = json.Marshal(m.Headers); err != nil {
				return fmt.Errorf("encode headers of a %s message: %w", m.Topic, err)
			}
		}
		ids[i], topics[i], keys[i], payloads[i], headers[i] = id, m.Topic, m.Key, m.Payload, string(h)
	}
	if _, err := tx.ExecContext(ctx, insertMessages, uuidArray(ids), pq.Array(topics), pq.Array(keys),
		pq.Array(payloads), pq.Array(headers)); err != nil {
		return fmt.Errorf("write %d messages to the outbox: %w", len(msgs), err)
	}
	// Delivered at commit: wakes the relays at once instead of at their next poll.
	if _, err := tx.ExecContext(ctx, notifyOutbox); err != nil {
		return fmt.Errorf("notify relays: %w", err)
	}
	return nil
}

const (
	claimMessages = `
SELECT id, topic, key, payload, headers
FROM outbox
WHERE published_at IS NULL
ORDER BY created_at, id
LIMIT $1
FOR UPDATE SKIP LOCKED`
	markPublished  = `UPDATE outbox SET published_at = now() WHERE id = ANY($1::uuid[])`
	prunePublished = `DELETE FROM outbox WHERE published_at < $1`
)

type outboxRow struct {
	ID      uuid.UUID `db:"id"`
	Topic   string    `db:"topic"`
	Key     string    `db:"key"`
	Payload []byte    `db:"payload"`
	Headers []byte    `db:"headers"`
}

func (r outboxRow) toMessage() (message.Message, error) {
	m := message.Message{Topic: r.Topic, Key: r.Key, Payload: r.Payload}
	if err := json.Unmarshal(r.Headers, &m.Headers); err != nil {
		return message.Message{}, fmt.Errorf("read headers of outbox message %s: %w", r.ID, err)
	}
	return m, nil
}
