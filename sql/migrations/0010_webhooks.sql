-- +goose Up
-- Webhook subscriptions: a user's URL and the event types it wants. The
-- secret signs deliveries (Standard Webhooks); during a rotation the
-- previous one signs too, until previous_secret_until. pms disables a
-- subscription itself when its receiver answers 410 or a delivery fails
-- for the whole retry span: enabled goes false and disabled_reason says why
-- ('' when the owner disabled it).
CREATE TABLE webhooks (
    id                    uuid PRIMARY KEY,
    user_id               uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url                   text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    event_types           text[] NOT NULL CHECK (cardinality(event_types) > 0),
    enabled               boolean NOT NULL,
    secret                text NOT NULL,
    previous_secret       text NOT NULL DEFAULT '',
    previous_secret_until timestamptz,
    disabled_reason       text NOT NULL DEFAULT '',
    failing_since         timestamptz,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL
);
CREATE INDEX webhooks_user_idx ON webhooks (user_id, created_at, id);
CREATE INDEX webhooks_enabled_idx ON webhooks USING gin (event_types) WHERE enabled;

-- One row per event and subscription: the delivery log and the queue.
-- seq orders one subscription's deliveries of one product: only the
-- oldest pending one of each (webhook_id, product_id) is sent, so they
-- arrive in order. A sender leases a delivery until leased_until.
CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,
    seq             bigserial NOT NULL,
    webhook_id      uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    product_id      uuid NOT NULL,
    payload         bytea NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    response_code   integer,
    last_error      text NOT NULL DEFAULT '',
    latency_ms      double precision,
    created_at      timestamptz NOT NULL,
    queued_at       timestamptz NOT NULL, -- when last queued (a retry or replay queues again): the retry span runs from it
    next_attempt_at timestamptz NOT NULL,
    leased_until    timestamptz,
    finished_at     timestamptz,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_queue_idx ON webhook_deliveries (webhook_id, product_id, seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (webhook_id, seq);
CREATE INDEX webhook_deliveries_created_idx ON webhook_deliveries (created_at);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
