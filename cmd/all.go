package cmd

import (
	"context"

	"github.com/spf13/cobra"
)

func newAllCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "all",
		Short: "Run the API, relay and worker in one process (for development)",
		Long: "Run the HTTP API, the outbox relay and the image worker in one process sharing one PostgreSQL\n" +
			"pool and one Kafka client. With no kafka.brokers configured it starts an embedded Kafka-protocol\n" +
			"broker, and with no s3.endpoint an embedded S3 server, both on loopback with their data under\n" +
			"dev.state_dir: development stand-ins, never used by serve or worker. One operator listener on\n" +
			"ops.addr serves /health, /ready and /metrics for all parts. One failing part stops all.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runAll(cmd.Context()) },
	}
}

// runAll starts the development stand-ins where nothing is configured, opens
// PostgreSQL, Redis and the Kafka producer once, builds the worker and the
// API on them and runs both with one operator listener, until ctx ends or
// one part fails.
func (a *app) runAll(ctx context.Context) error {
	if err := a.standIns(); err != nil {
		return err
	}
	db, cache, producer, err := a.openServices(ctx)
	if err != nil {
		return err
	}
	consumer, workerChecks, err := a.worker(ctx, db, cache, producer)
	if err != nil {
		return err
	}
	server, background, apiChecks, err := a.api(db, cache, producer)
	if err != nil {
		return err
	}
	ops, err := a.ops(append(apiChecks, workerChecks...))
	if err != nil {
		return err
	}
	return run(ctx, server, background, consumer, ops)
}
