package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/pms-dev/pms/imaging"
)

// The stored objects and their uses (migration 0015): a row of
// stored_objects is written before its object is uploaded, and locked by
// whoever records an image with it or removes it.
const (
	// storingObjects marks the objects $1 stored and unused as of now, so
	// the collector looks at them a grace period from now, if no image has
	// used them by then.
	storingObjects = `
INSERT INTO stored_objects (key, unreferenced_since)
SELECT k, now() FROM unnest($1::text[]) AS k ORDER BY k
ON CONFLICT (key) DO UPDATE SET unreferenced_since = now()`
	// lockObjects locks the rows of the objects $1 (sorted) and counts them.
	lockObjects = `
SELECT count(*) FROM (SELECT key FROM stored_objects WHERE key = ANY($1) ORDER BY key FOR UPDATE) AS held`
	// useObjectsOnly makes the image $1 use the objects $2, and only those:
	// the objects it used before and does not now are unreferenced from now.
	useObjectsOnly = `
WITH gone AS (
    DELETE FROM image_objects WHERE image_id = $1 AND NOT (key = ANY($2)) RETURNING key),
unused AS (` + unreferenceGone + `),
used AS (
    UPDATE stored_objects SET unreferenced_since = NULL WHERE key = ANY($2) AND unreferenced_since IS NOT NULL)
INSERT INTO image_objects (key, image_id) SELECT k, $1 FROM unnest($2::text[]) AS k
ON CONFLICT DO NOTHING`
	// unreferenceGone marks the objects of the CTE gone (a column key)
	// unreferenced from now.
	unreferenceGone = `
    UPDATE stored_objects SET unreferenced_since = now() WHERE key IN (SELECT key FROM gone)`
)

// Storing records that objects are about to be stored at keys; see
// imaging.ResultStore.
func (r *ImageResults) Storing(ctx context.Context, keys []string) error {
	if _, err := r.db.db.ExecContext(ctx, storingObjects, pq.Array(keys)); err != nil {
		return translate(fmt.Errorf("record %d objects being stored: %w", len(keys), err))
	}
	return nil
}

// useObjects records, in tx, that the image uses the objects at keys
// (sorted, no repeats) and no others. It fails with
// imaging.CodeObjectRemoved when one of them is not recorded as stored:
// the collector removed it after the attempt's Storing.
func useObjects(ctx context.Context, tx *txn, imageID uuid.UUID, keys []string) error {
	var held int
	if err := tx.GetContext(ctx, &held, lockObjects, pq.Array(keys)); err != nil {
		return fmt.Errorf("lock the objects of image %s: %w", imageID, err)
	}
	if held != len(keys) {
		return imaging.Transient(imaging.CodeObjectRemoved,
			fmt.Errorf("%d of the %d objects of image %s were removed after they were stored", len(keys)-held, len(keys), imageID))
	}
	if _, err := tx.ExecContext(ctx, useObjectsOnly, imageID, pq.Array(keys)); err != nil {
		return fmt.Errorf("record the objects of image %s: %w", imageID, err)
	}
	return nil
}

// StoredObjects is the ledger of the objects the worker stored, an
// imaging.ObjectStore.
type StoredObjects struct{ db *DB }

// NewStoredObjects returns the StoredObjects of db.
func NewStoredObjects(db *DB) *StoredObjects { return &StoredObjects{db: db} }

var _ imaging.ObjectStore = (*StoredObjects)(nil)

const (
	// dueObjects locks up to $2 objects unreferenced for $1 seconds, the
	// longest first, skipping those another collector or a result holds.
	dueObjects = `
SELECT key FROM stored_objects
WHERE unreferenced_since <= now() - make_interval(secs => $1)
ORDER BY unreferenced_since
LIMIT $2
FOR UPDATE SKIP LOCKED`
	usedObjects   = `SELECT DISTINCT key FROM image_objects WHERE key = ANY($1)`
	keepObjects   = `UPDATE stored_objects SET unreferenced_since = NULL WHERE key = ANY($1)`
	forgetObjects = `DELETE FROM stored_objects WHERE key = ANY($1)`
	// retryObjects makes the objects $1, whose removal failed, due again
	// in a minute, behind those due before.
	retryObjects = `
UPDATE stored_objects SET unreferenced_since = now() - make_interval(secs => $2) + interval '1 minute'
WHERE key = ANY($1)`
)

// Collect removes objects that no image has used for grace; see
// imaging.ObjectStore. The objects' rows stay locked while they are
// removed, so no result can start to use one meanwhile.
func (o *StoredObjects) Collect(ctx context.Context, grace time.Duration, limit int, remove func(ctx context.Context, key string) error) (imaging.CollectStats, error) {
	var s imaging.CollectStats
	err := o.db.withTx(ctx, func(tx *txn) error {
		s = imaging.CollectStats{}
		var due, used []string
		if err := tx.SelectContext(ctx, &due, dueObjects, grace.Seconds(), limit); err != nil {
			return fmt.Errorf("find unused objects: %w", err)
		}
		if len(due) == 0 {
			return nil
		}
		if err := tx.SelectContext(ctx, &used, usedObjects, pq.Array(due)); err != nil {
			return fmt.Errorf("find uses of %d objects: %w", len(due), err)
		}
		var removed, failed []string
		for _, key := range due {
			if slices.Contains(used, key) {
				continue
			}
			if err := remove(ctx, key); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				failed = append(failed, key)
				continue
			}
			removed = append(removed, key)
		}
		if len(used) > 0 {
			if _, err := tx.ExecContext(ctx, keepObjects, pq.Array(used)); err != nil {
				return fmt.Errorf("keep %d used objects: %w", len(used), err)
			}
		}
		if len(removed) > 0 {
			if _, err := tx.ExecContext(ctx, forgetObjects, pq.Array(removed)); err != nil {
				return fmt.Errorf("forget %d removed objects: %w", len(removed), err)
			}
		}
		if len(failed) > 0 {
			if _, err := tx.ExecContext(ctx, retryObjects, pq.Array(failed), grace.Seconds()); err != nil {
				return fmt.Errorf("put off %d objects: %w", len(failed), err)
			}
		}
		s.Removed, s.Kept, s.Failed = len(removed), len(used), len(failed)
		return nil
	})
	if err != nil {
		return imaging.CollectStats{}, translate(err)
	}
	return s, nil
}
