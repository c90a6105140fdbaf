-- +goose Up
-- An image's compressed copies become a list, one per imaging preset they
-- were made with, in preset order: the first is the main copy, the one
-- compressed_product_images shows. They live on the image row, as JSON
-- ({name, url, width, height, bytes, format}), because they are only ever
-- written in the statement that makes the image ready and read with it: a
-- table of their own cost every product read one more lookup per image. They
-- replace the columns that held the main copy and the thumbnail's URL.
ALTER TABLE product_images ADD COLUMN variants json NOT NULL DEFAULT '[]'
    CHECK (json_typeof(variants) = 'array');

-- The main copy was the preset named main, and the thumbnail had the main
-- copy's format (both followed the same alpha rule) but no recorded size.
UPDATE product_images
SET variants = (jsonb_build_array(jsonb_build_object('name', 'main', 'url', compressed_url, 'width', width,
                   'height', height, 'bytes', bytes, 'format', format))
               || CASE WHEN thumbnail_url IS NULL THEN '[]'::jsonb
                       ELSE jsonb_build_array(jsonb_build_object('name', 'thumbnail', 'url', thumbnail_url, 'format', format)) END)::json
WHERE compressed_url IS NOT NULL AND format IS NOT NULL;

ALTER TABLE product_images
    DROP COLUMN compressed_url, DROP COLUMN width, DROP COLUMN height, DROP COLUMN bytes,
    DROP COLUMN format, DROP COLUMN thumbnail_url;

-- +goose Down
ALTER TABLE product_images
    ADD COLUMN compressed_url text, ADD COLUMN width integer, ADD COLUMN height integer,
    ADD COLUMN bytes bigint, ADD COLUMN format text, ADD COLUMN thumbnail_url text;
UPDATE product_images
SET compressed_url = variants->0->>'url', width = (variants->0->>'width')::integer,
    height = (variants->0->>'height')::integer, bytes = (variants->0->>'bytes')::bigint,
    format = variants->0->>'format',
    thumbnail_url = (SELECT v->>'url' FROM json_array_elements(variants) WITH ORDINALITY AS e (v, n)
                     WHERE v->>'name' = 'thumbnail' AND n > 1 LIMIT 1)
WHERE json_array_length(variants) > 0;
ALTER TABLE product_images DROP COLUMN variants;
