package cmd

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/pms-dev/pms/platform/httpapi"
	"github.com/pms-dev/pms/platform/postgres"
)

func newServeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP API and the outbox relay",
		Long: "Run the HTTP API, the relay that publishes queued image tasks to Kafka and the pruner of\n" +
			"expired idempotency keys, until SIGINT or SIGTERM; then finish requests in flight and exit.\n" +
			"Refuses a database whose schema is behind.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := a.require(serveSections...); err != nil {
				return err
			}
			server, relay, err := a.api(ctx, nil)
			if err != nil {
				return err
			}
			return run(ctx, server, relay)
		},
	}
}

// api builds the HTTP server and its background parts (the outbox relay and
// the pruner of expired idempotency keys) after checking the schema. extra
// are readiness checks of other parts in the same process.
func (a *app) api(ctx context.Context, extra []httpapi.Check) (*httpapi.Server, runner, error) {
	if err := a.requireSchema(ctx); err != nil {
		return nil, nil, err
	}
	svc, err := a.productService()
	if err != nil {
		return nil, nil, err
	}
	auth, err := a.authService()
	if err != nil {
		return nil, nil, err
	}
	limiter, err := a.rateLimiter()
	if err != nil {
		return nil, nil, err
	}
	relay, err := a.relay()
	if err != nil {
		return nil, nil, err
	}
	pruner, err := postgres.NewPruner(a.cfg.Idempotency, a.db, a.log.With().Str("component", "pruner").Logger())
	if err != nil {
		return nil, nil, err
	}
	checks, err := a.storeChecks()
	if err != nil {
		return nil, nil, err
	}
	checks = append(checks, httpapi.Check{Name: "kafka", Critical: true, Run: a.kafkaProducer.Check})
	server, err := httpapi.New(a.cfg.HTTP, httpapi.API{Products: svc, Auth: auth, Limiter: limiter}, append(checks, extra...), a.metrics(), a.log.With().Str("component", "http").Logger())
	if err != nil {
		return nil, nil, err
	}
	return server, parts{relay, pruner}, nil
}
