package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/pms-dev/pms/platform/seal"
	"github.com/pms-dev/pms/webhook"
)

// WebhookStore keeps webhook subscriptions and their deliveries, which are
// both the delivery log and the queue the dispatchers claim from. It is a
// webhook.Store and a webhook.DeliveryStore.
//
// The signing secrets are sealed under keys (webhooks.secret_keys), each
// bound to its subscription's id, so that a copy of the database does not
// give them away; with no keys they are stored in clear, as before. A
// secret stored in clear still opens, and is sealed the next time its
// subscription is written (or by Reseal).
type WebhookStore struct {
	db   *DB
	keys *seal.Keys
}

// NewWebhookStore returns a WebhookStore on db that seals secrets under
// keys (nil or none: in clear).
func NewWebhookStore(db *DB, keys *seal.Keys) *WebhookStore { return &WebhookStore{db: db, keys: keys} }

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

// subscription is r with its secrets opened.
func (s *WebhookStore) subscription(r webhookRow) (webhook.Subscription, error) {
	secret, previous, err := s.opened(r.ID, r.Secret, r.PreviousSecret)
	if err != nil {
		return webhook.Subscription{}, err
	}
	return webhook.Subscription{
		ID: r.ID, UserID: r.UserID, URL: r.URL, EventTypes: r.EventTypes, Enabled: r.Enabled,
		DisabledReason: r.DisabledReason, FailingSince: r.FailingSince.Time.UTC(),
		Secret: secret, PreviousSecret: previous, PreviousSecretUntil: r.PreviousSecretUntil.Time.UTC(),
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}, nil
}

// opened returns the secrets of subscription id as stored, opened.
func (s *WebhookStore) opened(id uuid.UUID, secret, previous string) (string, string, error) {
	secret, err := s.keys.Open(secret, id.String())
	if err != nil {
		return "", "", fmt.Errorf("secret of webhook %s: %w", id, err)
	}
	if previous, err = s.keys.Open(previous, id.String()); err != nil {
		return "", "", fmt.Errorf("previous secret of webhook %s: %w", id, err)
	}
	return secret, previous, nil
}

// sealed returns w's secrets as they are stored.
func (s *WebhookStore) sealed(w webhook.Subscription) (secret, previous string, err error) {
	if secret, err = s.keys.Seal(w.Secret, w.ID.String()); err != nil {
		return "", "", err
	}
	if previous, err = s.keys.Seal(w.PreviousSecret, w.ID.String()); err != nil {
		return "", "", err
	}
	return secret, previous, nil
}

// nullTime is t for a nullable column: NULL when zero.
func nullTime(t time.Time) sql.NullTime { return sql.NullTime{Time: t, Valid: !t.IsZero()} }

const insertWebhook = `
INSERT INTO webhooks (id, user_id, url, event_types, enabled, secret, previous_secret, previous_secret_until,
                      disabled_reason, failing_since, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`

// Create stores a new subscription; see webhook.Store.
func (s *WebhookStore) Create(ctx context.Context, w webhook.Subscription) error {
	secret, previous, err := s.sealed(w)
	if err != nil {
		return err
	}
	_, err = s.db.db.ExecContext(ctx, insertWebhook, w.ID, w.UserID, w.URL, pq.Array(w.EventTypes), w.Enabled, secret,
		previous, nullTime(w.PreviousSecretUntil), w.DisabledReason, nullTime(w.FailingSince), w.CreatedAt, w.UpdatedAt)
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
	return s.subscription(row)
}

// List returns the user's subscriptions, oldest first.
func (s *WebhookStore) List(ctx context.Context, userID uuid.UUID) ([]webhook.Subscription, error) {
	var rows []webhookRow
	if err := s.db.db.SelectContext(ctx, &rows, webhookColumns+` WHERE user_id = $1 ORDER BY created_at, id`, userID); err != nil {
		return nil, translate(fmt.Errorf("list webhooks: %w", err))
	}
	out := make([]webhook.Subscription, len(rows))
	for i, r := range rows {
		var err error
		if out[i], err = s.subscription(r); err != nil {
			return nil, err
		}
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
		var err error
		if w, err = s.subscription(row); err != nil {
			return err
		}
		if err := change(&w); err != nil {
			return err
		}
		secret, previous, err := s.sealed(w)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, updateWebhook, w.ID, w.URL, pq.Array(w.EventTypes), w.Enabled, secret, previous,
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

// resealBatch is how many subscriptions Reseal writes in one transaction.
const resealBatch = 100

// Reseal writes again every secret that is not stored as the store would
// store it now (see seal.Keys.Current): after a key is added in front, so
// the old one can go, or when keys are first given, so the secrets stored
// in clear are sealed. It calls progress after each batch with the
// subscriptions looked at and their total, and returns how many it wrote.
func (s *WebhookStore) Reseal(ctx context.Context, progress func(done, total int)) (int, error) {
	var total int
	if err := s.db.db.GetContext(ctx, &total, `SELECT count(*) FROM webhooks`); err != nil {
		return 0, translate(fmt.Errorf("count webhooks: %w", err))
	}
	var after uuid.UUID
	done, written := 0, 0
	for {
		var rows []webhookRow
		batch := 0
		err := s.db.withTx(ctx, func(tx *txn) error {
			rows, batch = nil, 0
			if err := tx.SelectContext(ctx, &rows, webhookColumns+` WHERE id > $1 ORDER BY id LIMIT $2 FOR UPDATE`, after, resealBatch); err != nil {
				return fmt.Errorf("select webhooks: %w", err)
			}
			for _, r := range rows {
				if s.keys.Current(r.Secret) && s.keys.Current(r.PreviousSecret) {
					continue
				}
				w, err := s.subscription(r)
				if err != nil {
					return err
				}
				secret, previous, err := s.sealed(w)
				if err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `UPDATE webhooks SET secret = $2, previous_secret = $3 WHERE id = $1`, r.ID, secret, previous); err != nil {
					return fmt.Errorf("reseal webhook %s: %w", r.ID, err)
				}
				batch++
			}
			return nil
		})
		if err != nil {
			return written, translate(err)
		}
		written += batch
		if len(rows) == 0 {
			return written, nil
		}
		after, done = rows[len(rows)-1].ID, done+len(rows)
		progress(min(done, total), total)
	}
}

// Stale counts the subscriptions whose secrets Reseal would write again:
// stored in clear while there are keys, sealed under a key that is no
// longer first, or sealed while there are no keys.
func (s *WebhookStore) Stale(ctx context.Context) (int, error) {
	var rows []struct {
		Secret         string `db:"secret"`
		PreviousSecret string `db:"previous_secret"`
	}
	if err := s.db.db.SelectContext(ctx, &rows, `SELECT secret, previous_secret FROM webhooks`); err != nil {
		return 0, translate(fmt.Errorf("select webhook secrets: %w", err))
	}
	n := 0
	for _, r := range rows {
		if !s.keys.Current(r.Secret) || !s.keys.Current(r.PreviousSecret) {
			n++
		}
	}
	return n, nil
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
