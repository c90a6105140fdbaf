-- +goose Up
-- An idempotency key keeps what its create answered (response: the product
-- as created, so a replay answers the same after the product changed or was
-- deleted) and when it expires: from expires_at on the key is free again,
-- and the pruner deletes it. Keys made before this migration have no
-- response and expire 24 hours after they were made.
ALTER TABLE idempotency_keys ADD COLUMN response jsonb, ADD COLUMN expires_at timestamptz;
UPDATE idempotency_keys SET expires_at = created_at + interval '24 hours';
ALTER TABLE idempotency_keys ALTER COLUMN expires_at SET NOT NULL;
DROP INDEX idempotency_keys_created_idx;
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

-- +goose Down
DROP INDEX idempotency_keys_expires_idx;
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
ALTER TABLE idempotency_keys DROP COLUMN expires_at, DROP COLUMN response;
