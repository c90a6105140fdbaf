-- +goose Up
-- The transactional outbox for messages of any kind: a row per message,
-- written in the transaction of the change that produced it and published
-- to its topic by the relay in `pms serve`. key is the message key ('' for
-- none), payload its bytes, headers a JSON object of strings.
CREATE TABLE outbox (
    id           uuid PRIMARY KEY,
    topic        text NOT NULL CHECK (length(topic) BETWEEN 1 AND 249),
    key          text NOT NULL DEFAULT '',
    payload      bytea NOT NULL,
    headers      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(headers) = 'object'),
    created_at   timestamptz NOT NULL,
    published_at timestamptz
);
CREATE INDEX outbox_pending_idx ON outbox (created_at, id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Image tasks still pending move over as the messages pms writes for them
-- now (imaging.Task.Message), on the image task topic: the default
-- kafka.topic, or the one in the session setting pms.image_task_topic
-- (PGOPTIONS='-c pms.image_task_topic=…' pms migrate up). Published rows
-- are not kept.
INSERT INTO outbox (id, topic, key, payload, headers, created_at)
SELECT id,
       COALESCE(NULLIF(current_setting('pms.image_task_topic', true), ''), 'pms.image-tasks'),
       product_id::text,
       convert_to(json_build_object('task_id', id, 'product_id', product_id, 'image_id', image_id,
                                    'source_url', source_url, 'requested_at', created_at)::text, 'UTF8'),
       jsonb_build_object('task_id', id::text)
           || CASE WHEN request_id <> '' THEN jsonb_build_object('request_id', request_id) ELSE '{}' END,
       created_at
FROM image_task_outbox
WHERE published_at IS NULL;

DROP TABLE image_task_outbox;

-- +goose Down
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

-- Pending image tasks (the messages with a task_id header) move back;
-- pending messages of other kinds, which the old relay cannot send, are
-- dropped with the table.
INSERT INTO image_task_outbox (id, product_id, image_id, source_url, request_id, created_at)
SELECT (task->>'task_id')::uuid, (task->>'product_id')::uuid, (task->>'image_id')::uuid,
       task->>'source_url', COALESCE(headers->>'request_id', ''), created_at
FROM (SELECT convert_from(payload, 'UTF8')::jsonb AS task, headers, created_at
      FROM outbox
      WHERE published_at IS NULL AND headers ? 'task_id') AS pending;

DROP TABLE outbox;
