package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/message"
)

// ProductStore keeps products, their images and their owners, and writes the
// messages their changes produce to the outbox with them. It is a
// product.Store.
type ProductStore struct {
	db   *DB
	idem IdempotencyConfig
}

// NewProductStore validates idem and returns a ProductStore on db that keeps
// idempotency keys as idem says.
func NewProductStore(db *DB, idem IdempotencyConfig) (*ProductStore, error) {
	if err := idem.Validate(); err != nil {
		return nil, err
	}
	return &ProductStore{db: db, idem: idem}, nil
}

var _ product.Store = (*ProductStore)(nil)

// productColumns selects a product with its images, each with its variants,
// as one JSON array, so a page of products is one query. A variant's keys
// are product.Variant's field names: it decodes straight into one.
const productColumns = `
SELECT p.id, p.user_id, p.product_name, p.product_description, p.product_price::text AS product_price,
       p.version, p.created_at, p.updated_at,
       COALESCE((SELECT json_agg(json_build_object(
                    'id', i.id, 'position', i.position, 'source_url', i.source_url, 'status', i.status,
                    'attempts', i.attempts, 'error_code', i.error_code, 'updated_at', i.updated_at,
                    'variants', CASE WHEN json_array_length(i.variants) > 0 THEN i.variants END) ORDER BY i.position)
                 FROM product_images i WHERE i.product_id = p.id), '[]') AS images
FROM products p`

type productRow struct {
	ID          uuid.UUID `db:"id"`
	UserID      uuid.UUID `db:"user_id"`
	Name        string    `db:"product_name"`
	Description string    `db:"product_description"`
	Price       string    `db:"product_price"`
	Version     int       `db:"version"`
	CreatedAt   time.Time `db:"created_at"`
	UpdatedAt   time.Time `db:"updated_at"`
	Images      []byte    `db:"images"`
}

// imageRow is an image as productColumns selects it and as idempotency
// snapshots keep it. A variant's unrecorded sizes (NULL) decode as 0.
type imageRow struct {
	ID        uuid.UUID         `json:"id"`
	Position  int               `json:"position"`
	SourceURL string            `json:"source_url"`
	Status    string            `json:"status"`
	Attempts  int               `json:"attempts"`
	ErrorCode *string           `json:"error_code"`
	Variants  []product.Variant `json:"variants"`
	UpdatedAt time.Time         `json:"updated_at"`
}

func (r productRow) toProduct() (product.Product, error) {
	price, err := product.ParsePrice(r.Price)
	if err != nil {
		return product.Product{}, fmt.Errorf("read price %q of product %s: %w", r.Price, r.ID, err)
	}
	var images []imageRow
	if err := json.Unmarshal(r.Images, &images); err != nil {
		return product.Product{}, fmt.Errorf("read images of product %s: %w", r.ID, err)
	}
	p := product.Product{
		ID: r.ID, UserID: r.UserID, Name: r.Name, Description: r.Description, Price: price,
		Version: r.Version, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		Images: make([]product.Image, len(images)),
	}
	for i, im := range images {
		p.Images[i] = product.Image{
			ID: im.ID, Position: im.Position, SourceURL: im.SourceURL, Status: product.ImageStatus(im.Status),
			Attempts: im.Attempts, ErrorCode: deref(im.ErrorCode), Variants: im.Variants, UpdatedAt: im.UpdatedAt.UTC(),
		}
	}
	return p, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

const selectProduct = productColumns + ` WHERE p.id = $1 AND p.deleted_at IS NULL`

// Get returns the product with the given id, or product.ErrNotFound.
func (s *ProductStore) Get(ctx context.Context, id uuid.UUID) (product.Product, error) {
	return getProduct(ctx, s.db.db, selectProduct, id)
}

func getProduct(ctx context.Context, q sqlx.QueryerContext, query string, id uuid.UUID) (product.Product, error) {
	var row productRow
	if err := sqlx.GetContext(ctx, q, &row, query, id); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return product.Product{}, product.ErrNotFound
		}
		return product.Product{}, translate(fmt.Errorf("select product %s: %w", id, err))
	}
	return row.toProduct()
}

const insertProduct = `
INSERT INTO products (id, user_id, product_name, product_description, product_price, version, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5::numeric, $6, $7, $8)`

// Create stores a new product with its images and writes msgs to the
// outbox; see product.Store.
func (s *ProductStore) Create(ctx context.Context, p product.Product, key product.IdempotencyKey, msgs []message.Message) (product.Product, bool, error) {
	for tries := 1; ; tries++ {
		err := s.insert(ctx, p, key, msgs)
		switch {
		case err == nil:
			return p, false, nil
		case !errors.Is(err, errKeyTaken):
			return product.Product{}, false, translate(err)
		}
		earlier, err := s.replay(ctx, p.UserID, key)
		// A key that expired and was pruned since it was found taken is
		// free now: one more try claims it.
		if errors.Is(err, errKeyGone) && tries < 2 {
			continue
		}
		if err != nil {
			return product.Product{}, false, err
		}
		return earlier, true, nil
	}
}

// insert stores p with its images and msgs, and claims key for it, in one
// transaction; it returns errKeyTaken when the key is not free.
func (s *ProductStore) insert(ctx context.Context, p product.Product, key product.IdempotencyKey, msgs []message.Message) error {
	return s.db.withTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, insertProduct, p.ID, p.UserID, p.Name, p.Description,
			p.Price.String(), p.Version, p.CreatedAt, p.UpdatedAt); err != nil {
			return fmt.Errorf("insert product: %w", err)
		}
		if err := insertImages(ctx, tx, p.ID, p.Images); err != nil {
			return err
		}
		if err := writeOutbox(ctx, tx, msgs); err != nil {
			return err
		}
		if key.Key == "" {
			return nil
		}
		return s.claimKey(ctx, tx, p, key)
	})
}

const insertImage = `
INSERT INTO product_images (id, product_id, position, source_url, status, updated_at)
VALUES ($1, $2, $3, $4, $5, $6)`

// insertImages adds new images.
func insertImages(ctx context.Context, tx *sqlx.Tx, productID uuid.UUID, images []product.Image) error {
	for _, im := range images {
		if _, err := tx.ExecContext(ctx, insertImage, im.ID, productID, im.Position, im.SourceURL, im.Status, im.UpdatedAt); err != nil {
			return fmt.Errorf("insert image %d: %w", im.Position, err)
		}
	}
	return nil
}

const (
	selectProductForUpdate = selectProduct + ` FOR UPDATE OF p`
	updateProduct          = `
UPDATE products
SET product_name = $2, product_description = $3, product_price = $4::numeric, version = $5, updated_at = $6
WHERE id = $1`
	deleteOtherImages = `DELETE FROM product_images WHERE product_id = $1 AND NOT (id = ANY($2::uuid[]))`
	moveImage         = `UPDATE product_images SET position = $2 WHERE id = $1 AND position <> $2`
)

// Update changes a product under a row lock and writes the messages the
// change returns to the outbox; see product.Store.
func (s *ProductStore) Update(ctx context.Context, id uuid.UUID, change func(*product.Product) ([]message.Message, error)) (product.Product, error) {
	var p product.Product
	err := s.db.withTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		if p, err = getProduct(ctx, tx, selectProductForUpdate, id); err != nil {
			return err
		}
		before := p.Version
		old := make(map[uuid.UUID]bool, len(p.Images))
		for _, im := range p.Images {
			old[im.ID] = true
		}
		msgs, err := change(&p)
		if err != nil || p.Version == before {
			return err
		}
		if _, err := tx.ExecContext(ctx, updateProduct, p.ID, p.Name, p.Description, p.Price.String(), p.Version, p.UpdatedAt); err != nil {
			return fmt.Errorf("update product: %w", err)
		}
		if err := replaceImages(ctx, tx, p, old); err != nil {
			return err
		}
		return writeOutbox(ctx, tx, msgs)
	})
	if err != nil {
		return product.Product{}, translate(err)
	}
	return p, nil
}

// replaceImages makes the stored images of p match p.Images: images that
// went are deleted, kept ones move to their new position, new ones are added.
func replaceImages(ctx context.Context, tx *sqlx.Tx, p product.Product, old map[uuid.UUID]bool) error {
	kept := make([]uuid.UUID, 0, len(p.Images))
	var added []product.Image
	for _, im := range p.Images {
		if old[im.ID] {
			kept = append(kept, im.ID)
		} else {
			added = append(added, im)
		}
	}
	if _, err := tx.ExecContext(ctx, deleteOtherImages, p.ID, uuidArray(kept)); err != nil {
		return fmt.Errorf("delete replaced images: %w", err)
	}
	for _, im := range p.Images {
		if !old[im.ID] {
			continue
		}
		if _, err := tx.ExecContext(ctx, moveImage, im.ID, im.Position); err != nil {
			return fmt.Errorf("move image %s: %w", im.ID, err)
		}
	}
	return insertImages(ctx, tx, p.ID, added)
}

// uuidArray passes ids as a PostgreSQL uuid[].
func uuidArray(ids []uuid.UUID) any {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return pq.Array(s)
}

const (
	deleteProduct = `
UPDATE products SET deleted_at = now(), version = version + 1
WHERE id = $1 AND deleted_at IS NULL AND ($2 = 0 OR version = $2)`
	productExists = `SELECT EXISTS (SELECT 1 FROM products WHERE id = $1 AND deleted_at IS NULL)`
)

// Delete marks a product deleted; see product.Store.
func (s *ProductStore) Delete(ctx context.Context, id uuid.UUID, version int) error {
	res, err := s.db.db.ExecContext(ctx, deleteProduct, id, version)
	if err != nil {
		return translate(fmt.Errorf("delete product %s: %w", id, err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return translate(fmt.Errorf("delete product %s: %w", id, err))
	} else if n == 1 {
		return nil
	}
	var exists bool
	if err := s.db.db.GetContext(ctx, &exists, productExists, id); err != nil {
		return translate(fmt.Errorf("look up product %s: %w", id, err))
	}
	if exists {
		return product.ErrVersionMismatch
	}
	return product.ErrNotFound
}
