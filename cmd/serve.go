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
		Long: "Run the HTTP API on http.addr, the relay that publishes the outbox (image tasks) to Kafka and the\n" +
			"pruner of expired idempotency keys, until SIGINT or SIGTERM; then finish requests in flight and\n" +
			"exit. Serves /health, /ready and /metrics on ops.addr. Refuses a database whose schema is behind.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := a.require(serveSections...); err != nil {
				return err
			}
			server, background, checks, err := a.api(ctx)
			if err != nil {
				return err
			}
			ops, err := a.ops(checks)
			if err != nil {
				return err
			}
			return run(ctx, server, background, ops)
		},
	}
}

// api builds the HTTP server and its background parts (the outbox relay and
// the pruner of expired idempotency keys) after checking the schema, and
// returns the readiness checks of what they depend on.
func (a *app) api(ctx context.Context) (*httpapi.Server, runner, []httpapi.Check, error) {
	if err := a.requireSchema(ctx); err != nil {
		return nil, nil, nil, err
	}
	svc, err := a.productService()
	if err != nil {
		return nil, nil, nil, err
	}
	auth, err := a.authService()
	if err != nil {
		return nil, nil, nil, err
	}
	limiter, failures, err := a.rateLimiters()
	if err != nil {
		return nil, nil, nil, err
	}
	relay, err := a.relay()
	if err != nil {
		return nil, nil, nil, err
	}
	pruner, err := postgres.NewPruner(a.cfg.Idempotency, a.db, a.log.With().Str("component", "pruner").Logger())
	if err != nil {
		return nil, nil, nil, err
	}
	checks, err := a.storeChecks(false)
	if err != nil {
		return nil, nil, nil, err
	}
	checks = append(checks, httpapi.Check{Name: "kafka", Critical: true, Run: a.kafkaProducer.Check})
	api := httpapi.API{Products: svc, Auth: auth, Limiter: limiter, Failures: failures}
	server, err := httpapi.New(a.cfg.HTTP, api, a.metrics(), a.log.With().Str("component", "http").Logger())
	if err != nil {
		return nil, nil, nil, err
	}
	return server, parts{relay, pruner}, checks, nil
}

// ops builds the operator listener on ops.addr, with the HTTP timeouts,
// serving /ready from checks. A process has one, whatever parts it runs.
func (a *app) ops(checks []httpapi.Check) (*httpapi.Server, error) {
	cfg := a.cfg.HTTP
	cfg.Addr = a.cfg.Ops.Addr
	return httpapi.NewOps(cfg, checks, a.metrics(), a.log.With().Str("component", "ops").Logger())
}
