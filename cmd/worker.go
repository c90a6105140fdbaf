package cmd

import (
	"github.com/spf13/cobra"
)

func newWorkerCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Process image tasks from Kafka",
		Long: "Consume image tasks from Kafka: fetch each image, compress it with libvips, upload it to S3 and\n" +
			"record it in PostgreSQL. Serves /health, /ready and /metrics on ops.addr.\n" +
			"On SIGINT or SIGTERM, tasks in flight finish or are left for redelivery.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := a.require(workerSections...); err != nil {
				return err
			}
			if err := a.requireSchema(ctx); err != nil {
				return err
			}
			consumer, checks, err := a.consumer(ctx)
			if err != nil {
				return err
			}
			pgChecks, err := a.storeChecks(true)
			if err != nil {
				return err
			}
			ops, err := a.ops(append(pgChecks, checks...))
			if err != nil {
				return err
			}
			return run(ctx, ops, consumer)
		},
	}
}
