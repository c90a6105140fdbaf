-- +goose Up
-- The deliveries leased to a sender, by subscription: the dispatcher's
-- claim counts them to cap each subscription's deliveries in flight.
CREATE INDEX webhook_deliveries_leased_idx ON webhook_deliveries (webhook_id) WHERE status = 'pending' AND leased_until IS NOT NULL;

-- +goose Down
DROP INDEX webhook_deliveries_leased_idx;
