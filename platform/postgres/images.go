package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/message"
)

// ImageResults records what the worker made of each image. It is an
// imaging.ResultStore. Every write names the image and the source URL the
// task was for, so a task for an image that was replaced changes nothing,
// and none changes an image of a deleted product.
type ImageResults struct {
	db     *DB
	events product.Events
}

// UseEvents makes every result announce itself with an event from e (and
// the last image of a product to settle with product.images_ready),
// written with the result.
func (r *ImageResults) UseEvents(e product.Events) { r.events = e }

// NewImageResults returns an ImageResults on db.
func NewImageResults(db *DB) *ImageResults { return &ImageResults{db: db} }

var _ imaging.ResultStore = (*ImageResults)(nil)

// An image that is pending or failed starts a new round of attempts; one
// that is processing counts another, unless it has had them all. Its
// status and attempts are part of the product's representation, so Begin
// and Abandon bump the product's version (its ETag) as a result does (see
// lockLiveProduct, below).
const (
	beginImage = `
WITH img AS (
    UPDATE product_images i
    SET status = 'processing', error_code = NULL, updated_at = $4,
        attempts = CASE WHEN i.status IN ('pending', 'failed') THEN 1 ELSE i.attempts + 1 END
    WHERE i.id = $1 AND i.source_url = $2
      AND (i.status IN ('pending', 'failed') OR (i.status = 'processing' AND i.attempts < $3))
      AND ` + lockLiveProduct + `
    RETURNING i.product_id, i.attempts),
bump AS (
    UPDATE products SET version = version + 1, updated_at = $4
    WHERE id IN (SELECT product_id FROM img))
SELECT attempts FROM img`
	usedAttempts = `
SELECT i.attempts
FROM product_images i JOIN products p ON p.id = i.product_id
WHERE i.id = $1 AND i.source_url = $2 AND p.deleted_at IS NULL
  AND i.status = 'processing' AND i.attempts >= $3`
)

// Begin counts an attempt and marks the image processing; see
// imaging.ResultStore.
func (r *ImageResults) Begin(ctx context.Context, t imaging.Task) (int, error) {
	var attempt int
	err := r.db.db.GetContext(ctx, &attempt, beginImage, t.ImageID, t.SourceURL, imaging.MaxAttempts, now())
	if err == nil {
		return attempt, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, translate(fmt.Errorf("begin image %s: %w", t.ImageID, err))
	}
	// Nothing begun: the task is stale, or its attempts are used up.
	var used int
	if err := r.db.db.GetContext(ctx, &used, usedAttempts, t.ImageID, t.SourceURL, imaging.MaxAttempts); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, imaging.ErrStale
		}
		return 0, translate(fmt.Errorf("look up attempts of image %s: %w", t.ImageID, err))
	}
	return used, imaging.ErrAttemptsUsed
}

const abandonImage = `
WITH img AS (
    UPDATE product_images i
    SET attempts = i.attempts - 1, updated_at = $4,
        status = CASE WHEN i.attempts = 1 THEN 'pending' ELSE 'processing' END
    WHERE i.id = $1 AND i.source_url = $2 AND i.status = 'processing' AND i.attempts = $3
      AND ` + lockLiveProduct + `
    RETURNING i.product_id)
UPDATE products SET version = version + 1, updated_at = $4
WHERE id IN (SELECT product_id FROM img)`

// Abandon takes back an attempt; see imaging.ResultStore.
func (r *ImageResults) Abandon(ctx context.Context, t imaging.Task, attempt int) error {
	if t.Reprocess {
		if _, err := r.db.db.ExecContext(ctx, abandonReprocess, t.ImageID, t.SourceURL, attempt); err != nil {
			return translate(fmt.Errorf("give back reprocess attempt %d at image %s: %w", attempt, t.ImageID, err))
		}
		return nil
	}
	if _, err := r.db.db.ExecContext(ctx, abandonImage, t.ImageID, t.SourceURL, attempt, now()); err != nil {
		return translate(fmt.Errorf("give back attempt %d at image %s: %w", attempt, t.ImageID, err))
	}
	return nil
}

// A result changes the product's representation, so it bumps the product's
// version (and so its ETag) in the same statement. It first locks the
// product, as Delete and Update do: a delete that commits first leaves the
// image as it was, and one that comes later waits for the result.
const (
	lockLiveProduct = `
EXISTS (SELECT 1 FROM products p WHERE p.id = i.product_id AND p.deleted_at IS NULL FOR NO KEY UPDATE)`
	// readyImage marks the image ready with the variants given ($4, a JSON
	// list in preset order), the source's facts ($5) and the preset set
	// that made them ($6): a repeated result
	// overwrites them, and variants of presets no longer configured go.
	readyImage = `
WITH img AS (
    UPDATE product_images i
    SET status = 'ready', error_code = NULL, variants = $4, source = $5, preset_set = NULLIF($6, ''), updated_at = $3
    WHERE i.id = $1 AND i.source_url = $2 AND ` + lockLiveProduct + `
    RETURNING i.product_id)
UPDATE products SET version = version + 1, updated_at = $3
WHERE id IN (SELECT product_id FROM img)`
	failImage = `
WITH img AS (
    UPDATE product_images i
    SET status = 'failed', attempts = GREATEST(i.attempts, $3), error_code = $4, updated_at = $5
    WHERE i.id = $1 AND i.source_url = $2 AND i.status <> 'ready' AND ` + lockLiveProduct + `
    RETURNING i.product_id)
UPDATE products SET version = version + 1, updated_at = $5
WHERE id IN (SELECT product_id FROM img)`
)

// variantRow is a variant as product_images.variants keeps it, an element
// of its JSON list; a product read decodes it into a product.Variant.
type variantRow struct {
	Name   string `json:"name"`
	URL    string `json:"url"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Bytes  int64  `json:"bytes"`
	Format string `json:"format"`
}

// sourceRow is the source's facts as product_images.source keeps them; a
// product read decodes them into a product.SourceFacts.
type sourceRow struct {
	Width     int    `json:"width"`
	Height    int    `json:"height"`
	Format    string `json:"format"`
	Bytes     int64  `json:"bytes"`
	ThumbHash string `json:"thumbhash"`
	Color     string `json:"color"`
}

// Ready records the image's variants and the objects they are in; see
// imaging.ResultStore.
func (r *ImageResults) Ready(ctx context.Context, t imaging.Task, res imaging.Result) error {
	variants := make([]variantRow, len(res.Variants))
	keys := make([]string, 0, len(res.Variants))
	for i, v := range res.Variants {
		variants[i] = variantRow{Name: v.Name, URL: v.URL, Width: v.Width, Height: v.Height, Bytes: v.Bytes, Format: v.Format}
		if v.Key != "" && !slices.Contains(keys, v.Key) {
			keys = append(keys, v.Key)
		}
	}
	slices.Sort(keys) // the order the objects' rows are locked in
	data, err := json.Marshal(variants)
	if err != nil {
		return fmt.Errorf("encode variants of image %s: %w", t.ImageID, err)
	}
	var source []byte // NULL when the result describes no source
	if res.Source != (imaging.SourceFacts{}) {
		if source, err = json.Marshal(sourceRow(res.Source)); err != nil {
			return fmt.Errorf("encode source of image %s: %w", t.ImageID, err)
		}
	}
	im := product.Image{ID: t.ImageID, SourceURL: t.SourceURL, Status: product.ImageReady}
	for _, v := range variants {
		im.Variants = append(im.Variants, product.Variant(v))
	}
	uses := func(tx *txn) error { return useObjects(ctx, tx, t.ImageID, keys) }
	if err := r.record(ctx, readyImage, product.EventImageReady, im, uses, t.ImageID, t.SourceURL, now(), data, source, res.PresetSet); err != nil {
		return translate(fmt.Errorf("record image %s ready: %w", t.ImageID, err))
	}
	return nil
}

// record runs the result statement query with args; when it changed the
// image, in the same transaction, also then (when not nil) and, with events,
// the event of type typ about im and, when no image of the product is left
// pending, product.images_ready.
func (r *ImageResults) record(ctx context.Context, query, typ string, im product.Image, then func(*txn) error, args ...any) error {
	if !r.events.On() && then == nil {
		_, err := r.db.db.ExecContext(ctx, query, args...)
		return err
	}
	return r.db.withTx(ctx, func(tx *txn) error {
		var changed struct {
			ID      uuid.UUID `db:"id"`
			UserID  uuid.UUID `db:"user_id"`
			Version int       `db:"version"`
		}
		if err := tx.GetContext(ctx, &changed, query+resultReturning, args...); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil // a stale task changes nothing and says nothing
			}
			return err
		}
		if then != nil {
			if err := then(tx); err != nil {
				return err
			}
		}
		if !r.events.On() {
			return nil
		}
		// The product is locked now, so this sees every result committed
		// before: of two last images settling at once, the second sees the
		// first.
		var after struct {
			Position  int `db:"position"`
			Unsettled int `db:"unsettled"`
		}
		if err := tx.GetContext(ctx, &after, selectSettled, im.ID); err != nil {
			return fmt.Errorf("look up the images of product %s: %w", changed.ID, err)
		}
		im.Position = after.Position
		msgs := make([]message.Message, 0, 2)
		m, err := r.events.ImageEvent(ctx, typ, changed.ID, changed.UserID, changed.Version, im)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
		if after.Unsettled == 0 {
			if m, err = r.events.ImageEvent(ctx, product.EventImagesReady, changed.ID, changed.UserID, changed.Version, im); err != nil {
				return err
			}
			msgs = append(msgs, m)
		}
		return writeOutbox(ctx, tx, msgs)
	})
}

const (
	// resultReturning makes readyImage and failImage say what they changed.
	resultReturning = `
RETURNING id, user_id, version`
	selectSettled = `
SELECT i.position,
       (SELECT count(*) FROM product_images j
        WHERE j.product_id = i.product_id AND j.status IN ('pending', 'processing')) AS unsettled
FROM product_images i WHERE i.id = $1`
)

// Failed records a failure code; see imaging.ResultStore.
func (r *ImageResults) Failed(ctx context.Context, t imaging.Task, attempts int, code string) error {
	if t.Reprocess {
		if _, err := r.db.db.ExecContext(ctx, giveUpReprocess, t.ImageID, t.SourceURL); err != nil {
			return translate(fmt.Errorf("record the reprocess of image %s given up: %w", t.ImageID, err))
		}
		return nil
	}
	im := product.Image{ID: t.ImageID, SourceURL: t.SourceURL, Status: product.ImageFailed, Attempts: attempts, ErrorCode: code}
	if err := r.record(ctx, failImage, product.EventImageFailed, im, nil, t.ImageID, t.SourceURL, attempts, code, now()); err != nil {
		return translate(fmt.Errorf("record image %s failed: %w", t.ImageID, err))
	}
	return nil
}

// now is the current time at the precision PostgreSQL keeps.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
