package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/product/message"
)

const (
	// requeueImage makes a failed image pending again, with no attempts
	// used, and bumps its product's version (the image's status is part of
	// the product); nothing when the image is no longer failed, was
	// replaced or its product deleted.
	requeueImage = `
WITH img AS (
    UPDATE product_images i
    SET status = 'pending', attempts = 0, error_code = NULL, updated_at = $3
    WHERE i.id = $1 AND i.source_url = $2 AND i.status = 'failed' AND ` + lockLiveProduct + `
    RETURNING i.product_id)
UPDATE products SET version = version + 1, updated_at = $3
WHERE id IN (SELECT product_id FROM img)
RETURNING id`
	failedImages = `
SELECT i.id FROM product_images i JOIN products p ON p.id = i.product_id
WHERE i.id = ANY($1) AND i.status = 'failed' AND p.deleted_at IS NULL`
)

// Requeue gives a failed image a new round of attempts: in one transaction
// it makes the image pending and writes m, the task asking for it, to the
// outbox, from where the relay publishes it. It reports false, and writes
// nothing, when the image is not failed any more (it has since succeeded,
// or is being processed), was replaced by another source URL, or its
// product was deleted: requeueing such an image is a no-op.
func (r *ImageResults) Requeue(ctx context.Context, t imaging.Task, m message.Message) (bool, error) {
	requeued := false
	err := r.db.withTx(ctx, func(tx *txn) error {
		var id uuid.UUID
		err := tx.GetContext(ctx, &id, requeueImage, t.ImageID, t.SourceURL, now())
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("requeue image %s: %w", t.ImageID, err)
		}
		requeued = true
		return writeOutbox(ctx, tx, []message.Message{m})
	})
	if err != nil {
		return false, translate(err)
	}
	return requeued, nil
}

// FailedNow returns which of the images are failed now (of live products).
func (r *ImageResults) FailedNow(ctx context.Context, images []uuid.UUID) (map[uuid.UUID]bool, error) {
	var ids []uuid.UUID
	if err := r.db.db.SelectContext(ctx, &ids, failedImages, uuidArray(images)); err != nil {
		return nil, translate(fmt.Errorf("look up failed images: %w", err))
	}
	out := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}
