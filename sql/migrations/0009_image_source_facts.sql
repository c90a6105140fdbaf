-- +goose Up
-- What a page needs before an image loads, as the worker found it in the
-- decoded source: {width, height (upright), format, bytes, thumbhash (a
-- base64 ThumbHash), color (the dominant colour, #rrggbb)}. Written with
-- the variants, in the statement that makes the image ready; NULL until
-- then, and for images made before it was recorded.
ALTER TABLE product_images ADD COLUMN source json
    CHECK (source IS NULL OR json_typeof(source) = 'object');

-- +goose Down
ALTER TABLE product_images DROP COLUMN source;
