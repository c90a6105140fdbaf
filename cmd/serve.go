package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pms-dev/pms/platform/httpapi"
	"github.com/pms-dev/pms/platform/kafka"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/redis"
)

func newServeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use: "serve", Example: "  pms serve --config /etc/pms/config.yaml\n  PMS_HTTP_ADDR=:9090 PMS_OPS_ADDR=127.0.0.1:9091 pms serve",
		Short: "Run the HTTP API and the outbox relay",
		Long: "Run the HTTP API on http.addr, the relay that publishes the outbox's messages to Kafka and the\n" +
			"pruner of expired idempotency keys, until SIGINT or SIGTERM; then finish requests in flight and\n" +
			"exit. Serves /health, /ready and /metrics on ops.addr. Refuses a database whose schema is behind.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runServe(cmd.Context()) },
	}
}

// runServe opens PostgreSQL, Redis and the Kafka producer (openServices),
// builds the API on them and runs it with its operator listener.
func (a *app) runServe(ctx context.Context) error {
	db, cache, producer, err := a.openServices(ctx)
	if err != nil {
		return err
	}
	server, background, checks, err := a.api(db, cache, producer)
	if err != nil {
		return err
	}
	a.warnUnsealed(ctx, db)
	ops, err := a.ops(checks)
	if err != nil {
		return err
	}
	return run(ctx, server, background, ops)
}

// api builds the HTTP server and its background parts (the outbox relay and
// the pruner of expired idempotency keys) on the stores and the producer,
// and returns the readiness checks of what they depend on.
func (a *app) api(db *postgres.DB, cache *redis.Client, producer *kafka.Producer) (*httpapi.Server, runner, []httpapi.Check, error) {
	products, cached, err := a.products(db, cache)
	if err != nil {
		return nil, nil, nil, err
	}
	limiter, failures, err := a.rateLimiters(cache)
	if err != nil {
		return nil, nil, nil, err
	}
	relay, err := postgres.NewRelay(a.cfg.Relay, db, producer, a.component("relay"))
	if err != nil {
		return nil, nil, nil, err
	}
	if err := a.metrics().Register(relay); err != nil {
		return nil, nil, nil, fmt.Errorf("register outbox metrics: %w", err)
	}
	pruner, err := postgres.NewPruner(a.cfg.Idempotency, db, a.component("pruner"))
	if err != nil {
		return nil, nil, nil, err
	}
	checks, err := storeChecks(db, cache, false)
	if err != nil {
		return nil, nil, nil, err
	}
	checks = append(checks, httpapi.Check{Name: "kafka", Critical: true, Run: producer.Check})
	hooks, err := a.webhooks(db)
	if err != nil {
		return nil, nil, nil, err
	}
	api := httpapi.API{Products: products, Auth: a.accounts(db, cache), Limiter: limiter, Failures: failures, Changes: cached, Webhooks: hooks}
	server, err := httpapi.New(a.cfg.HTTP, api, a.metrics(), a.component("http"))
	if err != nil {
		return nil, nil, nil, err
	}
	return server, parts{relay, pruner}, checks, nil
}
