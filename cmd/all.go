package cmd

import (
	"context"
	"io"

	"github.com/spf13/cobra"
)

func newAllCmd(a *app) *cobra.Command {
	var welcome bool
	cmd := &cobra.Command{
		Use: "all", Example: "  make run                      # what a newcomer runs: pms all --welcome on the dev services\n  pms all --config config.yaml\n  PMS_KAFKA_BROKERS=127.0.0.1:9092 pms all",
		Short: "Run the API, relay and worker in one process (for development)",
		Long: "Run the HTTP API, the outbox relay and the image worker in one process sharing one PostgreSQL\n" +
			"pool and one Kafka client. With no kafka.brokers configured it starts an embedded Kafka-protocol\n" +
			"broker, and with no s3.endpoint an embedded S3 server, both on loopback with their data under\n" +
			"dev.state_dir: development stand-ins, never used by serve or worker. One operator listener on\n" +
			"ops.addr serves /health, /ready and /metrics for all parts. One failing part stops all.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out io.Writer
			if welcome {
				out = cmd.OutOrStdout()
			}
			return a.runAll(cmd.Context(), out)
		},
	}
	cmd.Flags().BoolVar(&welcome, "welcome", false, "once listening, print the URLs, a development API key (made once, kept in\n"+
		"dev.state_dir/"+devKeyFile+") and a first request to paste (make run does)")
	return cmd
}

// runAll starts the development stand-ins where nothing is configured, opens
// PostgreSQL, Redis and the Kafka producer once, builds the worker and the
// API on them and runs both with one operator listener, until ctx ends or
// one part fails. With a welcome writer, it prints there what a newcomer
// needs once the listeners are bound (see welcome).
func (a *app) runAll(ctx context.Context, welcomeTo io.Writer) error {
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
	a.warnUnsealed(ctx, db)
	ops, err := a.ops(append(apiChecks, workerChecks...))
	if err != nil {
		return err
	}
	if welcomeTo == nil {
		return run(ctx, server, background, consumer, ops)
	}
	w, err := a.welcome(ctx, welcomeTo, db, cache, server, ops)
	if err != nil {
		return err
	}
	return run(ctx, server, background, consumer, ops, w)
}
