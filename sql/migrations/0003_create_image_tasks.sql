-- +goose Up
-- The transactional outbox: a row per image task, written in the same
-- transaction as the image, published to Kafka by the relay in `pms serve`.
CREATE TABLE image_task_outbox (
    id           uuid PRIMARY KEY,
    product_id   uuid NOT NULL,
    image_id     uuid NOT NULL,
    source_url   text NOT NULL,
    request_id   text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    published_at timestamptz
);
CREATE INDEX image_task_outbox_pending_idx ON image_task_outbox (created_at, id) WHERE published_at IS NULL;
CREATE INDEX image_task_outbox_published_idx ON image_task_outbox (published_at) WHERE published_at IS NOT NULL;

ALTER TABLE product_images ADD COLUMN thumbnail_url text;

-- +goose Down
ALTER TABLE product_images DROP COLUMN thumbnail_url;
DROP TABLE image_task_outbox;
