package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/product"
)

// IdempotencyConfig says how long an idempotency key is kept and how often
// expired keys are deleted.
type IdempotencyConfig struct {
	// TTL is how long a create's key replays its first response. After
	// that the key is free and the next create with it is a new one.
	TTL time.Duration `mapstructure:"ttl"`
	// PruneInterval is how often the Pruner deletes expired keys.
	PruneInterval time.Duration `mapstructure:"prune_interval"`
}

// DefaultIdempotencyConfig returns the defaults: keys are kept for 24 hours
// and pruned every hour.
func DefaultIdempotencyConfig() IdempotencyConfig {
	return IdempotencyConfig{TTL: 24 * time.Hour, PruneInterval: time.Hour}
}

// Validate reports every problem with the config.
func (c IdempotencyConfig) Validate() error {
	var errs []error
	if c.TTL < time.Second {
		errs = append(errs, errors.New("idempotency.ttl: must be at least 1s"))
	}
	if c.PruneInterval < time.Second {
		errs = append(errs, errors.New("idempotency.prune_interval: must be at least 1s"))
	}
	return errors.Join(errs...)
}

// A create claims its key in the statement that inserts the product (see
// createStatement), with the product as the response it answers. A key
// that has expired is taken over as new; one that has not is left alone,
// and nothing is inserted. A concurrent create with the same key waits for
// the first to commit or roll back.
const (
	claimIdempotencyKey = `
    INSERT INTO idempotency_keys AS k (user_id, key, request_hash, product_id, response, created_at, expires_at)
    VALUES ($2, $19, $20, $1, $21, $7, $22)
    ON CONFLICT (user_id, key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash, product_id = EXCLUDED.product_id, response = EXCLUDED.response,
        created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
    WHERE k.expires_at <= EXCLUDED.created_at`
	selectIdempotencyKey = `
SELECT request_hash, product_id, response FROM idempotency_keys WHERE user_id = $1 AND key = $2`
	// Keys made before responses were kept replay the product as it is.
	selectAnyProduct = productColumns + ` WHERE p.id = $1`
)

// errKeyTaken is a create that changed nothing because its idempotency key
// was already used.
var errKeyTaken = errors.New("idempotency key taken")

// errKeyGone is returned by replay when the key that was taken has expired
// and been pruned since.
var errKeyGone = errors.New("idempotency key gone")

// replay returns what the first create with the key answered, or
// product.ErrIdempotencyKey when that create was another request.
func (s *ProductStore) replay(ctx context.Context, userID uuid.UUID, key product.IdempotencyKey) (product.Product, error) {
	var earlier struct {
		RequestHash string    `db:"request_hash"`
		ProductID   uuid.UUID `db:"product_id"`
		Response    []byte    `db:"response"`
	}
	if err := s.db.db.GetContext(ctx, &earlier, selectIdempotencyKey, userID, key.Key); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return product.Product{}, errKeyGone
		}
		return product.Product{}, translate(fmt.Errorf("select idempotency key: %w", err))
	}
	if earlier.RequestHash != key.RequestHash {
		return product.Product{}, product.ErrIdempotencyKey
	}
	if earlier.Response == nil {
		return getProduct(ctx, s.db.db, selectAnyProduct, earlier.ProductID)
	}
	var snap snapshot
	if err := json.Unmarshal(earlier.Response, &snap); err != nil {
		return product.Product{}, fmt.Errorf("decode idempotent response of product %s: %w", earlier.ProductID, err)
	}
	return snap.toProduct()
}

// snapshot is a product as a create answered it, kept with its key.
type snapshot struct {
	ID          uuid.UUID       `json:"id"`
	UserID      uuid.UUID       `json:"user_id"`
	Name        string          `json:"product_name"`
	Description string          `json:"product_description"`
	Price       string          `json:"product_price"`
	Version     int             `json:"version"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	Images      json.RawMessage `json:"images"` // []imageRow
}

func snapshotOf(p product.Product) snapshot {
	images := make([]imageRow, len(p.Images))
	for i, im := range p.Images {
		images[i] = imageRow{
			ID: im.ID, Position: im.Position, SourceURL: im.SourceURL, Status: string(im.Status), Attempts: im.Attempts,
			ErrorCode: orNil(im.ErrorCode), Variants: im.Variants, Source: im.Source, UpdatedAt: im.UpdatedAt,
		}
	}
	raw, _ := json.Marshal(images) // plain values: cannot fail
	return snapshot{
		ID: p.ID, UserID: p.UserID, Name: p.Name, Description: p.Description, Price: p.Price.String(),
		Version: p.Version, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, Images: raw,
	}
}

func (s snapshot) toProduct() (product.Product, error) {
	p := product.Product{ID: s.ID, UserID: s.UserID, Name: s.Name, Description: s.Description,
		Version: s.Version, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
	var d imageDecoder
	if err := d.complete(&p, s.Price, string(s.Images)); err != nil {
		return product.Product{}, err
	}
	return p, nil
}

// orNil is nil for the zero value, as a NULL column is.
func orNil[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

// pruneBatch is how many expired keys one statement deletes, so pruning
// never holds many row locks or one long transaction.
const pruneBatch = 1000

// SKIP LOCKED leaves alone a key that a create is taking over right now.
const pruneIdempotencyKeys = `
DELETE FROM idempotency_keys k
USING (SELECT user_id, key FROM idempotency_keys
       WHERE expires_at <= $1
       ORDER BY expires_at
       LIMIT $2
       FOR UPDATE SKIP LOCKED) old
WHERE k.user_id = old.user_id AND k.key = old.key`

// Pruner deletes expired idempotency keys every PruneInterval.
type Pruner struct {
	db  *DB
	cfg IdempotencyConfig
	log zerolog.Logger
}

// NewPruner validates cfg and returns a Pruner of db's expired keys.
func NewPruner(cfg IdempotencyConfig, db *DB, log zerolog.Logger) (*Pruner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Pruner{db: db, cfg: cfg, log: log}, nil
}

// Run prunes at once and then every PruneInterval until ctx ends, and
// returns nil. A failed prune is logged and tried again at the next tick.
func (p *Pruner) Run(ctx context.Context) error {
	tick := time.NewTicker(p.cfg.PruneInterval)
	defer tick.Stop()
	for {
		n, err := p.Prune(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			p.log.Warn().Err(err).Int64("rows", n).Msg("idempotency key prune failed")
		case n > 0:
			p.log.Info().Int64("rows", n).Msg("expired idempotency keys pruned")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Prune deletes every key that has expired, pruneBatch at a time, and
// returns how many it deleted.
func (p *Pruner) Prune(ctx context.Context) (int64, error) {
	var total int64
	for {
		res, err := p.db.db.ExecContext(ctx, pruneIdempotencyKeys, time.Now(), pruneBatch)
		if err != nil {
			return total, translate(fmt.Errorf("delete expired idempotency keys: %w", err))
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, translate(fmt.Errorf("delete expired idempotency keys: %w", err))
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}
