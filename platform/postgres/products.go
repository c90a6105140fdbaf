package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
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
// as one JSON array, so a page of products is one query. Each image is a
// JSON array of imageRow's values in the order of imageKeys (names would
// be a quarter of the column, for the decoder to match). A variant's keys
// are product.Variant's field names: it decodes straight into one. The
// product's fixed-size columns come as one row value (see readScalars),
// with the price in cents and the times in microseconds since 1970 (UTC):
// the same values as the columns hold (numeric(12,2), timestamptz), in a
// form that costs less to read than a column each, parsed by lib/pq
// (BENCHMARKS.md, issue 9).
const productColumns = `
SELECT ROW(p.id, p.user_id, (p.product_price * 100)::int8, p.version,
           (extract(epoch FROM p.created_at) * 1000000)::int8,
           (extract(epoch FROM p.updated_at) * 1000000)::int8) AS scalars,
       p.product_name, p.product_description,
       COALESCE((SELECT json_agg(json_build_array(
                    i.id, i.position, i.source_url, i.status, i.attempts, i.error_code, i.updated_at,
                    CASE WHEN json_array_length(i.variants) > 0 THEN i.variants END,
                    i.source) ORDER BY i.position)
                 FROM product_images i WHERE i.product_id = p.id), '[]') AS images
FROM products p`

// imageRow is an image as idempotency snapshots keep it, and, as a list of
// its values, as productColumns selects it; imageDecoder reads both. A variant's
// unrecorded sizes (NULL) decode as 0.
type imageRow struct {
	ID        uuid.UUID         `json:"id"`
	Position  int               `json:"position"`
	SourceURL string            `json:"source_url"`
	Status    string            `json:"status"`
	Attempts  int               `json:"attempts"`
	ErrorCode *string           `json:"error_code"`
	Variants  []product.Variant `json:"variants"`
	// Source's keys are product.SourceFacts' field names in lower case.
	Source    *product.SourceFacts `json:"source"`
	UpdatedAt time.Time            `json:"updated_at"`
}

// productScanner reads the rows of productColumns into products. The
// columns are scanned into plain values, not through sqlx's reflection (a
// list page reads up to a hundred rows, issue 9), and the values and
// buffers are reused from row to row and, through scanners, from query to
// query. The images columns of all rows are kept in one buffer and decoded
// once the rows are read, so that a page's strings share one allocation
// and its images and variants one each.
type productScanner struct {
	scalars, images   sql.RawBytes // valid until the next row: read at once
	name, description string
	dest              []any // pointers to the values above, in productColumns' order
	raw               []byte
	ends              []int // where each row's images column ends in raw
	counts            []int // how many images each row has
	decoder           imageDecoder
}

// scanners holds idle productScanners.
var scanners = sync.Pool{New: func() any {
	s := &productScanner{}
	s.dest = []any{&s.scalars, &s.name, &s.description, &s.images}
	return s
}}

// maxPooledImages is the size of the images buffer above which a scanner is
// left to the garbage collector rather than kept for the next query.
const maxPooledImages = 1 << 20

// readProducts returns the products in rows, which select productColumns,
// reading them to the end; capacity is how many rows are expected.
func readProducts(rows *sql.Rows, capacity int) ([]product.Product, error) {
	s := scanners.Get().(*productScanner)
	defer s.release()
	out := make([]product.Product, 0, capacity)
	for rows.Next() {
		p, err := s.scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := s.decodeImages(out); err != nil {
		return nil, err
	}
	return out, nil
}

// scan returns the product in the row that rows is on, without its images,
// whose column it keeps for decodeImages.
func (s *productScanner) scan(rows *sql.Rows) (product.Product, error) {
	if err := rows.Scan(s.dest...); err != nil {
		return product.Product{}, fmt.Errorf("scan product: %w", err)
	}
	p, err := readScalars(s.scalars)
	if err != nil {
		return product.Product{}, err
	}
	p.Name, p.Description = s.name, s.description
	s.raw = append(s.raw, s.images...)
	s.ends = append(s.ends, len(s.raw))
	return p, nil
}

// readScalars returns a product with the fixed-size columns of
// productColumns, which PostgreSQL writes as a row value:
// (id,user_id,price in cents,version,created_at µs,updated_at µs). None of
// them is ever quoted: only values with quotes, commas, parentheses,
// backslashes or white space are, and empty ones.
func readScalars(row []byte) (product.Product, error) {
	var p product.Product
	if len(row) < 2 || row[0] != '(' || row[len(row)-1] != ')' {
		return p, fmt.Errorf("read product %q: not a row value", row)
	}
	fields := row[1 : len(row)-1]
	var f [6][]byte
	for i := range f {
		var more bool
		f[i], fields, more = bytes.Cut(fields, []byte(","))
		if more != (i < len(f)-1) {
			return p, fmt.Errorf("read product %q: want %d fields", row, len(f))
		}
	}
	var err error
	if p.ID, err = uuid.ParseBytes(f[0]); err != nil {
		return p, fmt.Errorf("read id %q of a product: %w", f[0], err)
	}
	if p.UserID, err = uuid.ParseBytes(f[1]); err != nil {
		return p, fmt.Errorf("read user_id %q of product %s: %w", f[1], p.ID, err)
	}
	var n [4]int64
	for i := range n {
		var ok bool
		if n[i], ok = parseInt(f[2+i]); !ok {
			return p, fmt.Errorf("read product %q: field %d is not a whole number", row, 3+i)
		}
	}
	p.Price, p.Version = product.Price(n[0]), int(n[1])
	if p.Price < 0 || p.Price > product.MaxPrice {
		return p, fmt.Errorf("read price %d of product %s: out of range", n[0], p.ID)
	}
	p.CreatedAt, p.UpdatedAt = time.UnixMicro(n[2]).UTC(), time.UnixMicro(n[3]).UTC()
	return p, nil
}

// parseInt parses a decimal int64 as PostgreSQL writes one, without the
// string strconv would need.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 { // 18 digits cannot overflow
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// decodeImages gives each of products, the rows scanned since the last
// release in their order, the images of its row.
func (s *productScanner) decodeImages(products []product.Product) error {
	all := string(s.raw)
	start := 0
	for i := range products {
		n, err := s.decoder.add(all[start:s.ends[i]])
		if err != nil {
			return fmt.Errorf("read images of product %s: %w", products[i].ID, err)
		}
		s.counts, start = append(s.counts, n), s.ends[i]
	}
	images := s.decoder.take()
	for i, n := range s.counts {
		products[i].Images, images = images[:n:n], images[n:]
		if n == 0 {
			products[i].Images = noImages
		}
	}
	return nil
}

// release empties the scanner and puts it back in scanners.
func (s *productScanner) release() {
	if cap(s.raw) > maxPooledImages {
		return
	}
	s.raw, s.ends, s.counts = s.raw[:0], s.ends[:0], s.counts[:0]
	s.decoder.reset()
	scanners.Put(s)
}

// complete gives p, read from a snapshot, the price and images stored with
// it, and puts its times in UTC.
func (d *imageDecoder) complete(p *product.Product, price, images string) error {
	var err error
	if p.Price, err = product.ParsePrice(price); err != nil {
		return fmt.Errorf("read price %q of product %s: %w", price, p.ID, err)
	}
	if p.Images, err = d.decode(images); err != nil {
		return fmt.Errorf("read images of product %s: %w", p.ID, err)
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return nil
}

const selectProduct = productColumns + ` WHERE p.id = $1 AND p.deleted_at IS NULL`

// Get returns the product with the given id, or product.ErrNotFound.
func (s *ProductStore) Get(ctx context.Context, id uuid.UUID) (product.Product, error) {
	return getProduct(ctx, s.db.db, selectProduct, id)
}

// getProduct returns the product that query selects with productColumns
// for id, or product.ErrNotFound.
func getProduct(ctx context.Context, q sqlx.QueryerContext, query string, id uuid.UUID) (product.Product, error) {
	rows, err := q.QueryContext(ctx, query, id)
	if err != nil {
		return product.Product{}, translate(fmt.Errorf("select product %s: %w", id, err))
	}
	defer rows.Close()
	ps, err := readProducts(rows, 1)
	switch {
	case err != nil:
		return product.Product{}, translate(fmt.Errorf("select product %s: %w", id, err))
	case len(ps) == 0:
		return product.Product{}, product.ErrNotFound
	}
	return ps[0], nil
}

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

// A create is one statement, and so one round trip and its own
// transaction: the product, its images, its outbox messages and, with an
// idempotency key, the claim of the key ($1–$18, then $19–$22). The claim
// comes first and the rest inserts only when it succeeded, so a create whose
// key is taken changes nothing and counts no product. Every insert sees the
// same snapshot; the foreign keys are checked at the end of the statement,
// when the product is there.
const (
	createClaim = `
claimed AS (` + claimIdempotencyKey + `
    RETURNING 1),`
	createProduct = `
product AS (
    INSERT INTO products (id, user_id, product_name, product_description, product_price, version, created_at, updated_at)
    SELECT $1, $2, $3, $4, $5::numeric, $6, $7, $8`
	createProductClaimed = `
    WHERE EXISTS (SELECT FROM claimed)`
	createRest = `
    RETURNING id),
images AS (%s),
messages AS (
    INSERT INTO outbox (id, topic, key, payload, headers, created_at)
    SELECT m.id, m.topic, m.key, m.payload, m.headers, now()
    FROM product, unnest($14::uuid[], $15::text[], $16::text[], $17::bytea[], $18::jsonb[]) AS m (id, topic, key, payload, headers))`
	createCount       = `SELECT count(*) FROM product`
	createCountNotify = `SELECT count(*) FROM product, LATERAL (SELECT pg_notify('` + outboxChannel + `', '')) AS n`
)

// createStatement is the create of one product, claiming its idempotency
// key or not, and sending a NOTIFY or not.
func createStatement(claim, notify bool) string {
	q := "WITH"
	if claim {
		q += createClaim
	}
	q += createProduct
	if claim {
		q += createProductClaimed
	}
	q += fmt.Sprintf(createRest, insertImagesSQL(9)) + "\n"
	if notify {
		return q + createCountNotify
	}
	return q + createCount
}

// createStatements holds createStatement(claim, notify) by {claim, notify}.
var createStatements = map[[2]bool]string{
	{false, false}: createStatement(false, false), {false, true}: createStatement(false, true),
	{true, false}: createStatement(true, false), {true, true}: createStatement(true, true),
}

// insert stores p with its images and msgs, and claims key for it, in one
// statement; it returns errKeyTaken when the key is not free.
func (s *ProductStore) insert(ctx context.Context, p product.Product, key product.IdempotencyKey, msgs []message.Message) error {
	args := []any{p.ID, p.UserID, p.Name, p.Description, p.Price.String(), p.Version, p.CreatedAt, p.UpdatedAt}
	args = append(args, imageArgs(p.Images)...)
	out, err := outboxArgs(ctx, msgs)
	if err != nil {
		return err
	}
	args = append(args, out...)
	claim := key.Key != ""
	if claim {
		response, err := json.Marshal(snapshotOf(p))
		if err != nil {
			return fmt.Errorf("encode idempotent response: %w", err)
		}
		args = append(args, key.Key, key.RequestHash, string(response), p.CreatedAt.Add(s.idem.TTL)) // jsonb: text, see withDriverDefaults
	}
	// A relay of this process is rung after the commit; others need a NOTIFY.
	local := s.db.bell.here()
	notify := len(msgs) > 0 && !local
	stmt, err := s.db.prepared(ctx, createStatements[[2]bool{claim, notify}])
	if err != nil {
		return fmt.Errorf("prepare the create of a product: %w", err)
	}
	release, err := s.db.writes.admit(ctx)
	if err != nil {
		return err
	}
	var created int
	err = stmt.QueryRowContext(ctx, args...).Scan(&created)
	release()
	if err != nil {
		return fmt.Errorf("insert product: %w", err)
	}
	if created == 0 {
		return errKeyTaken
	}
	if len(msgs) > 0 && local {
		s.db.bell.wake()
	}
	return nil
}

// insertImagesSQL adds the images passed as the five arrays of imageArgs,
// from parameter $first on, to the product the query names "product".
func insertImagesSQL(first int) string {
	return fmt.Sprintf(`
    INSERT INTO product_images (id, product_id, position, source_url, status, updated_at)
    SELECT i.id, product.id, i.position, i.source_url, i.status, i.updated_at
    FROM product, unnest($%d::uuid[], $%d::smallint[], $%d::text[], $%d::text[], $%d::timestamptz[])
        AS i (id, position, source_url, status, updated_at)`, first, first+1, first+2, first+3, first+4)
}

// insertImages adds images to the product $1.
var insertImages = `WITH product AS (SELECT $1::uuid AS id)` + insertImagesSQL(2)

// imageArgs are images as the five arrays of insertImagesSQL.
func imageArgs(images []product.Image) []any {
	ids := make([]uuid.UUID, len(images))
	positions := make([]int64, len(images))
	urls, statuses, times := make([]string, len(images)), make([]string, len(images)), make([]string, len(images))
	for i, im := range images {
		ids[i], positions[i], urls[i], statuses[i] = im.ID, int64(im.Position), im.SourceURL, string(im.Status)
		times[i] = im.UpdatedAt.Format(time.RFC3339Nano)
	}
	return []any{uuidArray(ids), pq.Array(positions), pq.Array(urls), pq.Array(statuses), pq.Array(times)}
}

const (
	selectProductForUpdate = selectProduct + ` FOR UPDATE OF p`
	updateProduct          = `
UPDATE products
SET product_name = $2, product_description = $3, product_price = $4::numeric, version = $5, updated_at = $6
WHERE id = $1`
	// deleteOtherImages deletes the images of product $1 but $2, and their
	// uses of objects: they are unreferenced from now.
	deleteOtherImages = `
WITH images AS (
    DELETE FROM product_images WHERE product_id = $1 AND NOT (id = ANY($2::uuid[])) RETURNING id),
gone AS (
    DELETE FROM image_objects WHERE image_id IN (SELECT id FROM images) RETURNING key)
` + unreferenceGone
	moveImage = `UPDATE product_images SET position = $2 WHERE id = $1 AND position <> $2`
)

// Update changes a product under a row lock and writes the messages the
// change returns to the outbox; see product.Store.
func (s *ProductStore) Update(ctx context.Context, id uuid.UUID, change func(*product.Product) ([]message.Message, error)) (product.Product, error) {
	release, err := s.db.writes.admit(ctx)
	if err != nil {
		return product.Product{}, translate(err)
	}
	defer release()
	var p product.Product
	err = s.db.withTx(ctx, func(tx *txn) error {
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
func replaceImages(ctx context.Context, tx *txn, p product.Product, old map[uuid.UUID]bool) error {
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
	if len(added) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, insertImages, append([]any{p.ID}, imageArgs(added)...)...); err != nil {
		return fmt.Errorf("insert %d images: %w", len(added), err)
	}
	return nil
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
	// deleteProduct deletes the product $1 (at version $2, unless 0), and
	// the uses of objects by its images: they are unreferenced from now.
	deleteProduct = `
WITH deleted AS (
    UPDATE products SET deleted_at = now(), version = version + 1
    WHERE id = $1 AND deleted_at IS NULL AND ($2 = 0 OR version = $2)
    RETURNING id),
gone AS (
    DELETE FROM image_objects o USING product_images i, deleted d
    WHERE o.image_id = i.id AND i.product_id = d.id
    RETURNING o.key),
unused AS (` + unreferenceGone + `)`
	// deleteProductAnnounced deletes and writes the outbox messages $3–$7
	// only if it deleted.
	deleteProductAnnounced = deleteProduct + `,
messages AS (
    INSERT INTO outbox (id, topic, key, payload, headers, created_at)
    SELECT m.id, m.topic, m.key, m.payload, m.headers, clock_timestamp()
    FROM deleted, unnest($3::uuid[], $4::text[], $5::text[], $6::bytea[], $7::jsonb[]) AS m (id, topic, key, payload, headers))
SELECT count(*) FROM deleted`
	productExists = `SELECT EXISTS (SELECT 1 FROM products WHERE id = $1 AND deleted_at IS NULL)`
)

// Delete marks a product deleted and writes msgs to the outbox with it, in
// one statement; see product.Store.
func (s *ProductStore) Delete(ctx context.Context, id uuid.UUID, version int, msgs []message.Message) error {
	n, err := s.delete(ctx, id, version, msgs)
	if err != nil {
		return translate(fmt.Errorf("delete product %s: %w", id, err))
	}
	if n == 1 {
		if len(msgs) > 0 {
			s.db.wake(ctx)
		}
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

// delete runs the delete and returns how many products it deleted.
func (s *ProductStore) delete(ctx context.Context, id uuid.UUID, version int, msgs []message.Message) (int64, error) {
	release, err := s.db.writes.admit(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
	var n int64
	if len(msgs) == 0 {
		err := s.db.db.GetContext(ctx, &n, deleteProduct+`
SELECT count(*) FROM deleted`, id, version)
		return n, err
	}
	args, err := outboxArgs(ctx, msgs)
	if err != nil {
		return 0, err
	}
	err = s.db.db.GetContext(ctx, &n, deleteProductAnnounced, append([]any{id, version}, args...)...)
	return n, err
}
