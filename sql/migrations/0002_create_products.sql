-- +goose Up
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE products (
    id                  uuid PRIMARY KEY,
    user_id             uuid NOT NULL REFERENCES users (id),
    product_name        text NOT NULL CHECK (char_length(product_name) BETWEEN 1 AND 255),
    product_description text NOT NULL DEFAULT '',
    product_price       numeric(12, 2) NOT NULL CHECK (product_price >= 0),
    version             integer NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    deleted_at          timestamptz
);

-- Every list query filters on deleted_at IS NULL and pages by (sort key, id),
-- so each index is partial and ends with id.
CREATE INDEX products_user_created_idx ON products (user_id, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX products_user_price_idx ON products (user_id, product_price, id) WHERE deleted_at IS NULL;
CREATE INDEX products_created_idx ON products (created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX products_price_idx ON products (product_price, id) WHERE deleted_at IS NULL;
CREATE INDEX products_name_idx ON products (product_name COLLATE "C", id) WHERE deleted_at IS NULL;
CREATE INDEX products_name_trgm_idx ON products USING gin (product_name gin_trgm_ops) WHERE deleted_at IS NULL;

CREATE TABLE product_images (
    id             uuid PRIMARY KEY,
    product_id     uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    position       smallint NOT NULL CHECK (position >= 0),
    source_url     text NOT NULL CHECK (length(source_url) <= 2048),
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
    attempts       smallint NOT NULL DEFAULT 0,
    error_code     text,
    compressed_url text,
    width          integer,
    height         integer,
    bytes          bigint,
    format         text,
    updated_at     timestamptz NOT NULL,
    UNIQUE (product_id, position) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE idempotency_keys (
    user_id      uuid NOT NULL REFERENCES users (id),
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash text NOT NULL,
    product_id   uuid NOT NULL REFERENCES products (id),
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE product_images;
DROP TABLE products;
