package cmd

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pms-dev/pms/platform/kafka"
)

// devWarning opens the help of the dev commands.
const devWarning = "A development and test stand-in, NOT for production: no replication, no authentication, loopback only.\n"

func newDevCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use: "dev", Example: "  pms dev kafka --addr 127.0.0.1:9092\n  pms dev s3 --addr 127.0.0.1:9000 --data /tmp/pms-s3",
		Short: "Run the development stand-ins for Kafka and S3 as their own processes (not for production)",
		Long: devWarning +
			"`pms all` embeds the same stand-ins when no kafka.brokers or s3.endpoint is configured; these\n" +
			"commands run each on its own, for `pms serve` and `pms worker` processes on a development\n" +
			"machine or in tests that kill and restart them.",
	}
	cmd.AddCommand(newDevKafkaCmd(a), newDevS3Cmd(a))
	return cmd
}

func newDevKafkaCmd(a *app) *cobra.Command {
	var addr, dir string
	var partitions int
	cmd := &cobra.Command{
		Use: "kafka [--addr HOST:PORT] [--data DIR] [--partitions N]", Example: "  pms dev kafka\n  pms dev kafka --addr 127.0.0.1:0 --data /tmp/pms-kafka --partitions 6",
		Short: "Run the development Kafka-protocol broker (kfake) until SIGINT or SIGTERM",
		Long: devWarning +
			"Runs a single-node Kafka-protocol broker (kfake) with the kafka.topic, kafka.dead_letter_topic and\n" +
			"kafka.events_topic topics, prints \"kafka broker listening on HOST:PORT\" and serves until SIGINT or SIGTERM.\n" +
			"Messages and committed offsets are written to the data directory as they arrive and are read\n" +
			"back at the next start; after SIGKILL, what the process had written is kept (see RELIABILITY.md).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addr, dir = devDefaults(addr, dir, a.cfg.Dev.KafkaAddr, "kafka", a.cfg.Dev.StateDir)
			b, err := a.localBroker(dir, addr, partitions)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "kafka broker listening on %s (data in %s)\n", strings.Join(b.Addrs(), ","), dir)
			<-cmd.Context().Done()
			return nil // the app closes the broker, which saves its state
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "loopback host:port to listen on; port 0 picks a free one (default dev.kafka_addr)")
	cmd.Flags().StringVar(&dir, "data", "", "directory of the broker's data (default dev.state_dir/kafka)")
	cmd.Flags().IntVar(&partitions, "partitions", kafka.LocalPartitions, "partitions of each topic the broker creates")
	return cmd
}

func newDevS3Cmd(a *app) *cobra.Command {
	var addr, dir string
	cmd := &cobra.Command{
		Use: "s3 [--addr HOST:PORT] [--data DIR]", Example: "  pms dev s3\n  pms dev s3 --addr 127.0.0.1:0 --data /tmp/pms-s3",
		Short: "Run the development S3 server (gofakes3) until SIGINT or SIGTERM",
		Long: devWarning +
			"Runs an S3-compatible server (gofakes3) keeping one file per object in the data directory,\n" +
			"prints \"s3 server listening on http://HOST:PORT\" and serves until SIGINT or SIGTERM. It checks\n" +
			"no signatures and serves every object to anyone. Point s3.endpoint at it with\n" +
			"s3.use_path_style and s3.create_bucket on.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addr, dir = devDefaults(addr, dir, a.cfg.Dev.S3Addr, "s3", a.cfg.Dev.StateDir)
			s, err := a.localS3(dir, addr)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "s3 server listening on %s (data in %s)\n", s.URL(), dir)
			return s.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "loopback host:port to listen on; port 0 picks a free one (default dev.s3_addr)")
	cmd.Flags().StringVar(&dir, "data", "", "directory of the buckets and objects (default dev.state_dir/s3)")
	return cmd
}

// devDefaults returns the address and data directory a dev command was
// given, or the config's: devAddr, and sub under stateDir.
func devDefaults(addr, dir, devAddr, sub, stateDir string) (string, string) {
	if addr == "" {
		addr = devAddr
	}
	if dir == "" {
		dir = filepath.Join(stateDir, sub)
	}
	return addr, dir
}
