-- +goose Up
-- Compressed copies are stored once: an object's key is the hash of its
-- bytes, so identical outputs of any images share one object. These tables
-- say which objects exist and which images use them, so that an object no
-- image uses any more is removed from S3, a grace period after it lost its
-- last use (see imaging.Collector).
--
-- stored_objects has a row for every object a worker stored. Its
-- unreferenced_since is when the object may have lost its last use, or was
-- stored and not yet recorded on an image: the collector looks at it once
-- unreferenced_since is a grace period old, removes the object if no image
-- uses it then, and otherwise clears unreferenced_since. A worker writes the
-- row (unreferenced_since = now) before it uploads, and records the image
-- only if the row is still there, under the row's lock: the collector holds
-- the same lock while it removes, so it can never remove an object that an
-- image it did not see uses.
CREATE TABLE stored_objects (
    key                text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 1024),
    unreferenced_since timestamptz
);
CREATE INDEX stored_objects_unreferenced_idx ON stored_objects (unreferenced_since)
    WHERE unreferenced_since IS NOT NULL;

-- image_objects says which objects each image of a live product uses; a
-- product's deletion and an image's replacement or re-making take the rows
-- out and mark their objects unreferenced, in the same transaction.
CREATE TABLE image_objects (
    key      text NOT NULL REFERENCES stored_objects (key),
    image_id uuid NOT NULL REFERENCES product_images (id) ON DELETE CASCADE,
    PRIMARY KEY (key, image_id)
);
CREATE INDEX image_objects_image_idx ON image_objects (image_id);

-- Objects stored before this migration were keyed under their product
-- (products/<product id>/<sha256>.<ext>), found here from their URLs: those
-- of live products are in use; those of deleted products start their grace
-- period now.
CREATE TEMPORARY TABLE legacy_objects ON COMMIT DROP AS
SELECT DISTINCT substring(v->>'url' FROM '(products/[0-9a-f-]{36}/[0-9a-f]{64}\.[a-z]+)$') AS key,
       i.id AS image_id, p.deleted_at IS NULL AS live
FROM product_images i
JOIN products p ON p.id = i.product_id
CROSS JOIN LATERAL json_array_elements(i.variants) AS v
WHERE i.status = 'ready';
DELETE FROM legacy_objects WHERE key IS NULL;

INSERT INTO stored_objects (key, unreferenced_since)
SELECT key, CASE WHEN bool_or(live) THEN NULL ELSE now() END
FROM legacy_objects GROUP BY key;
INSERT INTO image_objects (key, image_id)
SELECT key, image_id FROM legacy_objects WHERE live;

-- +goose Down
DROP TABLE image_objects;
DROP TABLE stored_objects;
