-- +goose Up
-- reprocess_attempts counts the attempts begun at re-making a ready image
-- since pms reprocess last queued it, as attempts does for its first
-- making: a reprocess task whose every attempt ended with its worker's
-- process (out of memory, a crash in libvips) is given up at its next
-- delivery, dead-lettered as worker_crashed, instead of taking down one
-- worker after another without end. The image stays ready meanwhile.
ALTER TABLE product_images ADD COLUMN reprocess_attempts integer NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE product_images DROP COLUMN reprocess_attempts;
