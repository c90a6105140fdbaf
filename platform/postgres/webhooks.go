package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/pms-dev/pms/webhook"
)

// WebhookStore keeps webhook subscriptions and their deliveries, which are
// both the delivery log and the queue the dispatchers claim from. It is a
// webhook.Store and a webhook.DeliveryStore.
type WebhookStore struct {
	db *DB
}

// NewWebhookStore returns a WebhookStore on db.
func NewWebhookStore(db *DB) *WebhookStore { return &WebhookStore{db: db} }

var (
	_ webhook.Store         = (*WebhookStore)(nil)
	_ webhook.DeliveryStore = (*WebhookStore)(nil)
)

const webhookColumns = `
SELECT id, user_id, url, event_types, enabled, secret, previous_secret, previous_secret_until,
       disabled_reason, failing_since, created_at, updated_at
FROM webhooks`

type webhookRow struct {
	ID                  uuid.UUID      `db:"id"`
	UserID              uuid.UUID      `db:"user_id"`
	URL                 string         `db:"url"`
	EventTypes          pq.StringArray `db:"event_types"`
	Enabled             bool           `db:"enabled"`
	Secret              string         `db:"secret"`
	PreviousSecret      string         `db:"previous_secret"`
	PreviousSecretUntil sql.NullTime   `db:"previous_secret_until"`
	DisabledReason      string         `db:"disabled_reason"`
	FailingSince        sql.NullTime   `db:"failing_since"`
	CreatedAt           time.Time      `db:"created_at"`
	UpdatedAt           time.Time      `db:"updated_at"`
}

func (r webhookRow) toSubscription() webhook.Subscription {
	return webhook.Subscription{
		ID: r.ID, UserID: r.UserID, URL: r.URL, EventTypes: r.EventTypes, Enabled: r.Enabled,
		DisabledReason: r.DisabledReason, FailingSince: r.FailingSince.Time.UTC(),
		Secret: r.Secret, PreviousSecret: r.PreviousSecret, PreviousSecretUntil: r.PreviousSecretUntil.Time.UTC(),
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}

// nullTime is t for a nullable column: NULL when zero.
func nullTime(t time.Time) sql.NullTime { return sql.NullTime{Time: t, Valid: !t.IsZero()} }

const insertWebhook = `
INSERT INTO webhooks (id, user_id, url, event_types, enabled, secret, previous_secret, previous_secret_until,
                      disabled_reason, failing_since, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`

// Create stores a new subscription; see webhook.Store.
func (s *WebhookStore) Create(ctx context.Context, w webhook.Subscription) error {
	_, err := s.db.db.ExecContext(ctx, insertWebhook, w.ID, w.UserID, w.URL, pq.Array(w.EventTypes), w.Enabled, w.Secret,
		w.PreviousSecret, nullTime(w.PreviousSecretUntil), w.DisabledReason, nullTime(w.FailingSince), w.CreatedAt, w.UpdatedAt)
	if err != nil {
		return translate(fmt.Errorf("insert webhook: %w", err))
	}
	return nil
}

// Get returns the subscription, or webhook.ErrNotFound.
func (s *WebhookStore) Get(ctx context.Context, id uuid.UUID) (webhook.Subscription, error) {
	var row webhookRow
	if err := s.db.db.GetContext(ctx, &row, webhookColumns+` WHERE id = $1`, id); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return webhook.Subscription{}, webhook.ErrNotFound
		}
		return webhook.Subscription{}, translate(fmt.Errorf("select webhook %s: %w", id, err))
	}
	return row.toSubscription(), nil
}

// List returns the user's subscriptions, oldest first.
func (s *WebhookStore) List(ctx context.Context, userID uuid.UUID) ([]webhook.Subscription, error) {
	var rows []webhookRow
	if err := s.db.db.SelectContext(ctx, &rows, webhookColumns+` WHERE user_id = $1 ORDER BY created_at, id`, userID); err != nil {
		return nil, translate(fmt.Errorf("list webhooks: %w", err))
	}
	out := make([]webhook.Subscription, len(rows))
	for i, r := range rows {
		out[i] = r.toSubscription()
	}
	return out, nil
}

const updateWebhook = `
UPDATE webhooks SET url = $2, event_types = $3, enabled = $4, secret = $5, previous_secret = $6,
       previous_secret_until = $7, disabled_reason = $8, failing_since = $9, updated_at = $10
WHERE id = $1`

// Update changes a subscription under a row lock; see webhook.Store.
func (s *WebhookStore) Update(ctx context.Context, id uuid.UUID, change func(*webhook.Subscription) error) (webhook.Subscription, error) {
	var w webhook.Subscription
	err := s.db.withTx(ctx, func(tx *txn) error {
		var row webhookRow
		if err := tx.GetContext(ctx, &row, webhookColumns+` WHERE id = $1 FOR UPDATE`, id); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return webhook.ErrNotFound
			}
			return fmt.Errorf("select webhook %s: %w", id, err)
		}
		w = row.toSubscription()
		if err := change(&w); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, updateWebhook, w.ID, w.URL, pq.Array(w.EventTypes), w.Enabled, w.Secret, w.PreviousSecret,
			nullTime(w.PreviousSecretUntil), w.DisabledReason, nullTime(w.FailingSince), w.UpdatedAt)
		if err != nil {
			return fmt.Errorf("update webhook %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return webhook.Subscription{}, translate(err)
	}
	return w, nil
}

// Delete removes the subscription and its deliveries.
func (s *WebhookStore) Delete(ctx context.Context, id uuid.UUID) error {
	res, err := s.db.db.ExecContext(ctx, `DELETE FROM webhooks WHERE id = $1`, id)
	if err != nil {
		return translate(fmt.Errorf("delete webhook %s: %w", id, err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return webhook.ErrNotFound
	}
	return nil
}
