-- +goose Up
-- An image's compressed copies become rows, one per imaging preset they were
-- made with, in preset order: position 0 is the main copy, the one
-- compressed_product_images shows. They are written in the statement that
-- makes the image ready, and replace the columns that held the main copy and
-- the thumbnail's URL.
CREATE TABLE product_image_variants (
    image_id uuid NOT NULL REFERENCES product_images (id) ON DELETE CASCADE,
    name     text NOT NULL CHECK (length(name) BETWEEN 1 AND 32),
    position smallint NOT NULL CHECK (position >= 0),
    url      text NOT NULL,
    width    integer, -- NULL: not recorded (thumbnails made before this migration)
    height   integer,
    bytes    bigint,
    format   text NOT NULL,
    PRIMARY KEY (image_id, name),
    UNIQUE (image_id, position) DEFERRABLE INITIALLY DEFERRED
);

-- The main copy was the preset named main, and the thumbnail had the main
-- copy's format (both followed the same alpha rule) but no recorded size.
INSERT INTO product_image_variants (image_id, name, position, url, width, height, bytes, format)
SELECT id, 'main', 0, compressed_url, width, height, bytes, format
FROM product_images WHERE compressed_url IS NOT NULL AND format IS NOT NULL;
INSERT INTO product_image_variants (image_id, name, position, url, format)
SELECT id, 'thumbnail', 1, thumbnail_url, format
FROM product_images WHERE compressed_url IS NOT NULL AND format IS NOT NULL AND thumbnail_url IS NOT NULL;

ALTER TABLE product_images
    DROP COLUMN compressed_url, DROP COLUMN width, DROP COLUMN height, DROP COLUMN bytes,
    DROP COLUMN format, DROP COLUMN thumbnail_url;

-- +goose Down
ALTER TABLE product_images
    ADD COLUMN compressed_url text, ADD COLUMN width integer, ADD COLUMN height integer,
    ADD COLUMN bytes bigint, ADD COLUMN format text, ADD COLUMN thumbnail_url text;
UPDATE product_images i
SET compressed_url = v.url, width = v.width, height = v.height, bytes = v.bytes, format = v.format
FROM product_image_variants v WHERE v.image_id = i.id AND v.position = 0;
UPDATE product_images i SET thumbnail_url = v.url
FROM product_image_variants v WHERE v.image_id = i.id AND v.name = 'thumbnail' AND v.position > 0;
DROP TABLE product_image_variants;
