package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/pms-dev/pms/imaging"
)

// ImageResults records what the worker made of each image. It is an
// imaging.ResultStore. Every write names the image and the source URL the
// task was for, so a task for an image that was replaced changes nothing.
type ImageResults struct {
	db *DB
}

// NewImageResults returns an ImageResults on db.
func NewImageResults(db *DB) *ImageResults { return &ImageResults{db: db} }

var _ imaging.ResultStore = (*ImageResults)(nil)

const beginImage = `
UPDATE product_images i
SET status = 'processing', attempts = GREATEST(i.attempts, $3), updated_at = $4
FROM products p
WHERE i.id = $1 AND i.source_url = $2 AND i.status <> 'ready'
  AND p.id = i.product_id AND p.deleted_at IS NULL`

// Begin marks the image processing; see imaging.ResultStore.
func (r *ImageResults) Begin(ctx context.Context, t imaging.Task, attempt int) error {
	res, err := r.db.db.ExecContext(ctx, beginImage, t.ImageID, t.SourceURL, attempt, now())
	if err != nil {
		return translate(fmt.Errorf("begin image %s: %w", t.ImageID, err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return translate(fmt.Errorf("begin image %s: %w", t.ImageID, err))
	} else if n == 0 {
		return imaging.ErrStale
	}
	return nil
}

// A result changes the product's representation, so it bumps the product's
// version (and so its ETag) in the same statement.
const (
	readyImage = `
WITH img AS (
    UPDATE product_images
    SET status = 'ready', error_code = NULL, compressed_url = $3, width = $4, height = $5, bytes = $6,
        format = $7, thumbnail_url = NULLIF($8, ''), updated_at = $9
    WHERE id = $1 AND source_url = $2
    RETURNING product_id)
UPDATE products SET version = version + 1, updated_at = $9
WHERE id IN (SELECT product_id FROM img)`
	failImage = `
WITH img AS (
    UPDATE product_images
    SET status = 'failed', attempts = GREATEST(attempts, $3), error_code = $4, updated_at = $5
    WHERE id = $1 AND source_url = $2 AND status <> 'ready'
    RETURNING product_id)
UPDATE products SET version = version + 1, updated_at = $5
WHERE id IN (SELECT product_id FROM img)`
)

// Ready records the compressed copies; see imaging.ResultStore.
func (r *ImageResults) Ready(ctx context.Context, t imaging.Task, res imaging.Result) error {
	if _, err := r.db.db.ExecContext(ctx, readyImage, t.ImageID, t.SourceURL, res.URL, res.Width, res.Height,
		res.Bytes, res.Format, res.ThumbnailURL, now()); err != nil {
		return translate(fmt.Errorf("record image %s ready: %w", t.ImageID, err))
	}
	return nil
}

// Failed records a failure code; see imaging.ResultStore.
func (r *ImageResults) Failed(ctx context.Context, t imaging.Task, attempts int, code string) error {
	if _, err := r.db.db.ExecContext(ctx, failImage, t.ImageID, t.SourceURL, attempts, code, now()); err != nil {
		return translate(fmt.Errorf("record image %s failed: %w", t.ImageID, err))
	}
	return nil
}

// now is the current time at the precision PostgreSQL keeps.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
