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
	markReprocessQueued = `UPDATE product_images SET reprocess_queued = $1, reprocess_attempts = 0 WHERE id = ANY($2::uuid[])`
	// reprocessable image $1 with source $2 for preset set $3: ready, of a
	// live product, made with another set.
	reprocessImage = `
i.id = $1 AND i.source_url = $2 AND i.status = 'ready' AND i.preset_set IS DISTINCT FROM $3
  AND EXISTS (SELECT 1 FROM products p WHERE p.id = i.product_id AND p.deleted_at IS NULL)`
	// beginReprocess counts an attempt, unless $4 have begun.
	beginReprocess = `
UPDATE product_images i SET reprocess_attempts = i.reprocess_attempts + 1
WHERE ` + reprocessImage + ` AND i.reprocess_attempts < $4
RETURNING i.reprocess_attempts`
	usedReprocessAttempts = `SELECT i.reprocess_attempts FROM product_images i WHERE ` + reprocessImage
	// giveUpReprocess leaves the image ready with its variants and makes
	// it new to pms reprocess again, with no attempts: a replay of the
	// dead-lettered task, or the next run, gets all of them.
	giveUpReprocess = `
UPDATE product_images SET reprocess_attempts = 0, reprocess_queued = NULL
WHERE id = $1 AND source_url = $2 AND status = 'ready'`
	abandonReprocess = `
UPDATE product_images SET reprocess_attempts = reprocess_attempts - 1
WHERE id = $1 AND source_url = $2 AND status = 'ready' AND reprocess_attempts = $3`
)

// BeginReprocess counts an attempt at re-making the task's ready image
// with presetSet, and returns its number; see imaging.ResultStore.
func (r *ImageResults) BeginReprocess(ctx context.Context, t imaging.Task, presetSet string) (int, error) {
	var attempt int
	err := r.db.db.GetContext(ctx, &attempt, beginReprocess, t.ImageID, t.SourceURL, presetSet, imaging.MaxAttempts)
	if err == nil {
		return attempt, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, translate(fmt.Errorf("begin reprocessing image %s: %w", t.ImageID, err))
	}
	// Nothing begun: the task is stale, or its attempts are used up.
	var used int
	if err := r.db.db.GetContext(ctx, &used, usedReprocessAttempts, t.ImageID, t.SourceURL, presetSet); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, imaging.ErrStale
		}
		return 0, translate(fmt.Errorf("look up reprocess attempts of image %s: %w", t.ImageID, err))
	}
	return used, imaging.ErrAttemptsUsed
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
