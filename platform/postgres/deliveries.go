package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/webhook"
)

const deliveryColumns = `
SELECT d.id, d.seq, d.webhook_id, d.event_id, d.event_type, d.product_id, d.payload, d.status, d.attempts,
       COALESCE(d.response_code, 0) AS response_code, d.last_error, COALESCE(d.latency_ms, 0) AS latency_ms,
       d.created_at, d.queued_at, d.next_attempt_at, d.finished_at`

type deliveryRow struct {
	ID            uuid.UUID    `db:"id"`
	Seq           int64        `db:"seq"`
	WebhookID     uuid.UUID    `db:"webhook_id"`
	EventID       uuid.UUID    `db:"event_id"`
	EventType     string       `db:"event_type"`
	ProductID     uuid.UUID    `db:"product_id"`
	Payload       []byte       `db:"payload"`
	Status        string       `db:"status"`
	Attempts      int          `db:"attempts"`
	ResponseCode  int          `db:"response_code"`
	LastError     string       `db:"last_error"`
	LatencyMS     float64      `db:"latency_ms"`
	CreatedAt     time.Time    `db:"created_at"`
	QueuedAt      time.Time    `db:"queued_at"`
	NextAttemptAt time.Time    `db:"next_attempt_at"`
	FinishedAt    sql.NullTime `db:"finished_at"`
}

func (r deliveryRow) toDelivery() webhook.Delivery {
	return webhook.Delivery{
		ID: r.ID, Seq: r.Seq, WebhookID: r.WebhookID, EventID: r.EventID, EventType: r.EventType, ProductID: r.ProductID,
		Payload: r.Payload, Status: r.Status, Attempts: r.Attempts, ResponseCode: r.ResponseCode, LastError: r.LastError,
		Latency: time.Duration(r.LatencyMS * float64(time.Millisecond)), CreatedAt: r.CreatedAt.UTC(), QueuedAt: r.QueuedAt.UTC(),
		NextAttemptAt: r.NextAttemptAt.UTC(), FinishedAt: r.FinishedAt.Time.UTC(),
	}
}

// Deliveries returns a page of the subscription's deliveries, newest first;
// see webhook.Store.
func (s *WebhookStore) Deliveries(ctx context.Context, webhookID uuid.UUID, limit int, before int64) ([]webhook.Delivery, error) {
	const q = deliveryColumns + ` FROM webhook_deliveries d
WHERE d.webhook_id = $1 AND ($2 = 0 OR d.seq < $2) ORDER BY d.seq DESC LIMIT $3`
	var rows []deliveryRow
	if err := s.db.db.SelectContext(ctx, &rows, q, webhookID, before, limit); err != nil {
		return nil, translate(fmt.Errorf("list deliveries of webhook %s: %w", webhookID, err))
	}
	out := make([]webhook.Delivery, len(rows))
	for i, r := range rows {
		out[i] = r.toDelivery()
	}
	return out, nil
}

// requeue makes a delivery pending again, due now, with no attempts; the
// caller gives it a new seq, which makes it the newest of its product's
// queue.
const requeue = `
SET status = 'pending', attempts = 0, queued_at = now(), next_attempt_at = now(), leased_until = NULL, finished_at = NULL`

// Retry queues the delivery again; see webhook.Store.
func (s *WebhookStore) Retry(ctx context.Context, webhookID, deliveryID uuid.UUID) (webhook.Delivery, error) {
	q := `WITH d AS (UPDATE webhook_deliveries` + requeue + `, seq = nextval(pg_get_serial_sequence('webhook_deliveries', 'seq'))
    WHERE id = $1 AND webhook_id = $2 RETURNING *)` +
		deliveryColumns + ` FROM d`
	var row deliveryRow
	if err := s.db.db.GetContext(ctx, &row, q, deliveryID, webhookID); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return webhook.Delivery{}, webhook.ErrNotFound
		}
		return webhook.Delivery{}, translate(fmt.Errorf("retry delivery %s: %w", deliveryID, err))
	}
	return row.toDelivery(), nil
}

// ReplaySince queues again, oldest first and in batches, every delivery
// queued at or after since (of one subscription, unless webhookID is
// uuid.Nil) that is not pending, calling progress after each batch with
// the number done and the total. It returns how many it queued.
func (s *WebhookStore) ReplaySince(ctx context.Context, since time.Time, webhookID uuid.UUID, progress func(done, total int)) (int, error) {
	const pick = ` FROM webhook_deliveries WHERE created_at >= $1 AND ($2::uuid IS NULL OR webhook_id = $2) AND status <> 'pending'`
	var wid any
	if webhookID != uuid.Nil {
		wid = webhookID
	}
	var ids []uuid.UUID
	if err := s.db.db.SelectContext(ctx, &ids, `SELECT id`+pick+` ORDER BY seq`, since, wid); err != nil {
		return 0, translate(fmt.Errorf("find deliveries to replay: %w", err))
	}
	const batch = 500
	for done := 0; done < len(ids); done += batch {
		part := ids[done:min(done+batch, len(ids))]
		// One statement per batch, rows in seq order so each product's
		// queue keeps the order the deliveries had.
		q := `
WITH picked AS (
    SELECT id FROM webhook_deliveries WHERE id = ANY($1::uuid[]) AND status <> 'pending' ORDER BY seq FOR UPDATE),
renumbered AS (
    SELECT id, nextval(pg_get_serial_sequence('webhook_deliveries', 'seq')) AS seq FROM picked)
UPDATE webhook_deliveries d` + requeue + `, seq = r.seq FROM renumbered r WHERE d.id = r.id`
		if _, err := s.db.db.ExecContext(ctx, q, uuidArray(part)); err != nil {
			return done, translate(fmt.Errorf("replay deliveries: %w", err))
		}
		progress(done+len(part), len(ids))
	}
	return len(ids), nil
}

// enqueueEvent adds a delivery for each enabled subscription that wants
// the event's type ($2) and whose owner may read the product of owner $4
// ($7: anyone may).
const enqueueEvent = `
INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, product_id, payload, status, created_at, queued_at, next_attempt_at)
SELECT gen_random_uuid(), w.id, $1, $2, $3, $5, 'pending', $6, $6, $6
FROM webhooks w JOIN users u ON u.id = w.user_id
WHERE w.enabled AND w.event_types @> ARRAY[$2::text] AND (w.user_id = $4 OR u.is_admin OR $7)
ORDER BY w.id
ON CONFLICT (webhook_id, event_id) DO NOTHING`

// Enqueue adds the event's deliveries; see webhook.DeliveryStore.
func (s *WebhookStore) Enqueue(ctx context.Context, ev webhook.Event, anyoneReads bool) (int, error) {
	res, err := s.db.db.ExecContext(ctx, enqueueEvent, ev.ID, ev.Type, ev.ProductID, ev.OwnerID, ev.Body, now(), anyoneReads)
	if err != nil {
		return 0, translate(fmt.Errorf("queue deliveries of event %s: %w", ev.ID, err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// claimDeliveries leases up to $1 heads of the queues (the oldest pending
// delivery of each subscription and product) that are due and not leased,
// of enabled subscriptions with fewer than $3 leased, at most $3 of one
// subscription, for $2 ms. Finding the heads reads the queue index of every
// pending delivery (about 5 ms per 10,000 pending here), so the dispatcher
// claims in batches. A head another sender leased meanwhile fails the
// re-check of the UPDATE and is skipped.
const claimDeliveries = `
WITH busy AS (
    SELECT webhook_id, count(*) AS n FROM webhook_deliveries
    WHERE status = 'pending' AND leased_until IS NOT NULL AND leased_until > now()
    GROUP BY webhook_id),
heads AS (
    SELECT DISTINCT ON (webhook_id, product_id) id, webhook_id, next_attempt_at, leased_until
    FROM webhook_deliveries WHERE status = 'pending'
    ORDER BY webhook_id, product_id, seq),
candidates AS (
    SELECT h.id, h.webhook_id, h.next_attempt_at
    FROM heads h JOIN webhooks w ON w.id = h.webhook_id AND w.enabled
    WHERE h.next_attempt_at <= now() AND (h.leased_until IS NULL OR h.leased_until <= now())
      AND h.webhook_id NOT IN (SELECT webhook_id FROM busy WHERE n >= $3)),
ranked AS (
    SELECT c.id, c.next_attempt_at,
           row_number() OVER (PARTITION BY c.webhook_id ORDER BY c.next_attempt_at, c.id) + COALESCE(b.n, 0) AS load
    FROM candidates c LEFT JOIN busy b ON b.webhook_id = c.webhook_id),
picked AS (
    SELECT id FROM ranked WHERE load <= $3 ORDER BY next_attempt_at LIMIT $1),
leased AS (
    UPDATE webhook_deliveries d SET leased_until = now() + $2 * interval '1 millisecond'
    FROM picked
    WHERE d.id = picked.id AND d.status = 'pending' AND (d.leased_until IS NULL OR d.leased_until <= now())
    RETURNING d.*)` + deliveryColumns + `, w.url, w.secret, w.previous_secret, w.previous_secret_until
FROM leased d JOIN webhooks w ON w.id = d.webhook_id`

type claimedRow struct {
	deliveryRow
	URL                 string       `db:"url"`
	Secret              string       `db:"secret"`
	PreviousSecret      string       `db:"previous_secret"`
	PreviousSecretUntil sql.NullTime `db:"previous_secret_until"`
}

// Claim leases due deliveries; see webhook.DeliveryStore.
func (s *WebhookStore) Claim(ctx context.Context, n, perSubscription int, lease time.Duration) ([]webhook.Claimed, error) {
	var rows []claimedRow
	if err := s.db.db.SelectContext(ctx, &rows, claimDeliveries, n, lease.Milliseconds(), perSubscription); err != nil {
		return nil, translate(fmt.Errorf("claim deliveries: %w", err))
	}
	out := make([]webhook.Claimed, len(rows))
	at := time.Now()
	for i, r := range rows {
		out[i] = webhook.Claimed{Delivery: r.toDelivery(), URL: r.URL}
		secret, previous, err := s.opened(r.WebhookID, r.Secret, r.PreviousSecret)
		if err != nil {
			out[i].Err = err // this delivery's attempt fails; the others go
			continue
		}
		sub := webhook.Subscription{Secret: secret, PreviousSecret: previous, PreviousSecretUntil: r.PreviousSecretUntil.Time}
		out[i].Secrets = sub.Secrets(at)
	}
	return out, nil
}

// recordAttempt stores an attempt's outcome and ends the lease; with a
// reason ($9) it disables the subscription too, as failing when $10.
const recordAttempt = `
WITH d AS (
    UPDATE webhook_deliveries
    SET status = $2::text, attempts = attempts + 1, response_code = NULLIF($3::integer, 0), last_error = $4,
        latency_ms = $5, next_attempt_at = COALESCE($6::timestamptz, next_attempt_at), leased_until = NULL,
        finished_at = CASE WHEN $2::text = 'pending' THEN NULL ELSE $7::timestamptz END
    WHERE id = $1 AND seq = $8
    RETURNING webhook_id)
UPDATE webhooks w SET enabled = false, disabled_reason = $9::text, updated_at = $7::timestamptz,
       failing_since = CASE WHEN $10::boolean THEN COALESCE(w.failing_since, $7::timestamptz) END
FROM d WHERE w.id = d.webhook_id AND $9::text <> ''`

// Record stores an attempt's outcome; see webhook.DeliveryStore. An
// attempt at a delivery that was requeued meanwhile (another seq) changes
// nothing.
func (s *WebhookStore) Record(ctx context.Context, c webhook.Claimed, o webhook.Outcome) error {
	_, err := s.db.db.ExecContext(ctx, recordAttempt, c.ID, o.Status, o.ResponseCode, o.Error,
		float64(o.Latency)/float64(time.Millisecond), nullTime(o.NextAttemptAt), o.At, c.Seq, o.Disable, o.Failing)
	if err != nil {
		return translate(fmt.Errorf("record attempt at delivery %s: %w", c.ID, err))
	}
	return nil
}
