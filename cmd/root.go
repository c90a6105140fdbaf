// Package cmd holds the pms command line: cobra commands and the wiring that
// builds each part of the service from the config.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pms-dev/pms/platform/sysmon"
)

// Execute runs the command line and returns the process exit code.
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a := &app{}
	root := newRootCmd(a)
	err := root.ExecuteContext(ctx)
	if cerr := a.close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pms:", err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

var errUsage = errors.New("usage")

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use: "pms", Example: "  pms serve\n  pms worker\n  pms dlq list\n  pms completion bash > /etc/bash_completion.d/pms",
		Short:         "pms is a product management service with asynchronous image processing",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Name() == "serve" && cmd.Parent() == cmd.Root() {
				// Before anything is opened: see package sysmon.
				if err := sysmon.Steady(); err != nil {
					return fmt.Errorf("start again with GODEBUG=%s (GODEBUG=schedtrace=0 skips it): %w", sysmon.Setting, err)
				}
			}
			if !needsConfig(cmd) {
				return nil
			}
			if err := a.load(); err != nil {
				return err
			}
			return a.startTracing(cmd.Name())
		},
	}
	root.PersistentFlags().StringVar(&a.configFile, "config", "", "config file (default ./config.yaml when present)")
	root.AddCommand(newServeCmd(a), newWorkerCmd(a), newAllCmd(a), newMigrateCmd(a), newUsersCmd(a), newKeysCmd(a), newDevCmd(a), newDLQCmd(a), newWebhooksCmd(a), newReprocessCmd(a), newVersionCmd())
	return root
}

// needsConfig reports whether cmd reads the config: version, help and the
// shell completion commands do not, so they work anywhere.
func needsConfig(cmd *cobra.Command) bool {
	for c := cmd; c != nil; c = c.Parent() {
		switch c.Name() {
		case "version", "help", "completion", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
			return false
		}
	}
	return true
}
