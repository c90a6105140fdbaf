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

-- Image tasks of the old outbox become the messages pms writes for them now
-- (imaging.Task.Message), on the image task topic: the default kafka.topic,
-- or the one in the session setting pms.image_task_topic
-- (PGOPTIONS='-c pms.image_task_topic=…' pms migrate up), kept as the
-- default of a topic column.
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('ALTER TABLE image_task_outbox ADD COLUMN topic text NOT NULL DEFAULT %L',
                   COALESCE(NULLIF(current_setting('pms.image_task_topic', true), ''), 'pms.image-tasks'));
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION image_task_to_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (id, topic, key, payload, headers, created_at)
    VALUES (NEW.id, NEW.topic, NEW.product_id::text,
            convert_to(json_build_object('task_id', NEW.id, 'product_id', NEW.product_id, 'image_id', NEW.image_id,
                                         'source_url', NEW.source_url, 'requested_at', NEW.created_at)::text, 'UTF8'),
            jsonb_build_object('task_id', NEW.id::text)
                || CASE WHEN NEW.request_id <> '' THEN jsonb_build_object('request_id', NEW.request_id) ELSE '{}' END,
            NEW.created_at);
    PERFORM pg_notify('pms_outbox', '');
    RETURN NULL; -- the task lives on in the outbox alone
END
$$;
-- +goose StatementEnd

-- Tasks still pending move over; tasks that processes of the last release
-- write while they are replaced follow through the trigger, so none waits
-- in a table no relay reads any more. A later migration drops the old table.
CREATE TRIGGER image_task_to_outbox BEFORE INSERT ON image_task_outbox
    FOR EACH ROW EXECUTE FUNCTION image_task_to_outbox();
WITH pending AS (DELETE FROM image_task_outbox WHERE published_at IS NULL RETURNING *)
INSERT INTO image_task_outbox SELECT * FROM pending;

-- +goose Down
DROP TRIGGER image_task_to_outbox ON image_task_outbox;
DROP FUNCTION image_task_to_outbox();
ALTER TABLE image_task_outbox DROP COLUMN topic;

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
