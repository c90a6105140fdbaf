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
	// reprocessable is the condition of an image that pms reprocess queues
	// for preset set $1: ready, of a live product, made with another set
	// and not queued for this one yet.
	reprocessable = `
FROM product_images i JOIN products p ON p.id = i.product_id
WHERE i.status = 'ready' AND p.deleted_at IS NULL
  AND i.preset_set IS DISTINCT FROM $1 AND i.reprocess_queued IS DISTINCT FROM $1`
	countReprocessable = `SELECT count(*)` + reprocessable
	// takeReprocessable locks up to $2 of them, by id.
	takeReprocessable = `SELECT i.id, i.product_id, i.source_url` + reprocessable + `
ORDER BY i.id LIMIT $2 FOR UPDATE OF i SKIP LOCKED`
	markReprocessQueued = `UPDATE product_images SET reprocess_queued = $1 WHERE id = ANY($2::uuid[])`
	reprocessImage      = `
SELECT 1 FROM product_images i JOIN products p ON p.id = i.product_id
WHERE i.id = $1 AND i.source_url = $2 AND i.status = 'ready' AND p.deleted_at IS NULL
  AND i.preset_set IS DISTINCT FROM $3`
)

// BeginReprocess checks that the task's ready image still needs re-making
// with presetSet; see imaging.ResultStore. It writes nothing.
func (r *ImageResults) BeginReprocess(ctx context.Context, t imaging.Task, presetSet string) error {
	var one int
	err := r.db.db.GetContext(ctx, &one, reprocessImage, t.ImageID, t.SourceURL, presetSet)
	if errors.Is(err, sql.ErrNoRows) {
		return imaging.ErrStale
	}
	if err != nil {
		return translate(fmt.Errorf("look up image %s to reprocess: %w", t.ImageID, err))
	}
	return nil
}

// ReprocessImage is an image that pms reprocess queues.
type ReprocessImage struct {
	ID        uuid.UUID `db:"id"`
	ProductID uuid.UUID `db:"product_id"`
	SourceURL string    `db:"source_url"`
}

// CountReprocess counts the ready images that were made with another
// preset set than presetSet and are not queued for it yet.
func (r *ImageResults) CountReprocess(ctx context.Context, presetSet string) (int, error) {
	var n int
	if err := r.db.db.GetContext(ctx, &n, countReprocessable, presetSet); err != nil {
		return 0, translate(fmt.Errorf("count images to reprocess: %w", err))
	}
	return n, nil
}

// QueueReprocess queues up to limit of the images CountReprocess counts: in
// one transaction it writes the message task makes for each to the outbox
// and marks them queued for presetSet, so that a later run skips them. It
// returns how many it queued; 0 when none is left.
func (r *ImageResults) QueueReprocess(ctx context.Context, presetSet string, limit int, task func(ReprocessImage) (message.Message, error)) (int, error) {
	var images []ReprocessImage
	err := r.db.withTx(ctx, func(tx *txn) error {
		images = nil
		if err := tx.SelectContext(ctx, &images, takeReprocessable, presetSet, limit); err != nil {
			return fmt.Errorf("find images to reprocess: %w", err)
		}
		if len(images) == 0 {
			return nil
		}
		ids := make([]uuid.UUID, len(images))
		msgs := make([]message.Message, len(images))
		for i, im := range images {
			m, err := task(im)
			if err != nil {
				return err
			}
			ids[i], msgs[i] = im.ID, m
		}
		if _, err := tx.ExecContext(ctx, markReprocessQueued, presetSet, uuidArray(ids)); err != nil {
			return fmt.Errorf("mark %d images queued: %w", len(ids), err)
		}
		return writeOutbox(ctx, tx, msgs)
	})
	if err != nil {
		return 0, translate(err)
	}
	return len(images), nil
}
