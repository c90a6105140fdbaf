-- +goose Up
-- The API key epoch: a one-row counter that moves, in the transaction of
-- the change, whenever what a key lookup returns may have changed, last
-- use aside: a key revoked (or otherwise edited, or deleted), or its user
-- edited. Each process reads it about once a second and keeps using the key
-- lookups it cached only while it has not moved (platform/redis KeyCache),
-- so a revocation reaches every process within about a second even when
-- the cache invalidation is lost. Triggers move it, so that every writer
-- does: pms (RevokeKey), the processes of the last release during a
-- rollout, and an operator's SQL.
CREATE TABLE api_key_epoch (
    id    boolean PRIMARY KEY DEFAULT true CHECK (id),
    epoch bigint NOT NULL CHECK (epoch > 0)
);
INSERT INTO api_key_epoch (epoch) VALUES (1);

-- +goose StatementBegin
CREATE FUNCTION move_api_key_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE api_key_epoch SET epoch = epoch + 1;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- Once per statement, and only for the columns a lookup returns: touching
-- last_used_at, which pms does about once a minute per key in use, does not
-- move it.
CREATE TRIGGER api_keys_move_epoch
    AFTER UPDATE OF id, user_id, prefix, hash, created_at, revoked_at OR DELETE OR TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION move_api_key_epoch();
CREATE TRIGGER users_move_api_key_epoch
    AFTER UPDATE OF id, email, name, is_admin, created_at OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION move_api_key_epoch();

-- +goose Down
DROP TRIGGER users_move_api_key_epoch ON users;
DROP TRIGGER api_keys_move_epoch ON api_keys;
DROP FUNCTION move_api_key_epoch();
DROP TABLE api_key_epoch;
