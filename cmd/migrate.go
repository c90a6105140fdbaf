package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pms-dev/pms/platform/postgres"
)

func newMigrateCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use: "migrate", Example: "  pms migrate status\n  pms migrate up",
		Short: "Change or show the database schema",
		Long:  "Apply, roll back or list the schema migrations embedded in pms.\nMigrations run one transaction each, in order, under a PostgreSQL advisory lock.",
	}
	migrator := func() (*postgres.Migrator, error) {
		db, err := a.openPool()
		if err != nil {
			return nil, err
		}
		return db.Migrator()
	}
	cmd.AddCommand(&cobra.Command{
		Use: "up", Example: "  pms migrate up\n  PMS_POSTGRES_URL=postgres://pms@db:5432/pms pms migrate up",
		Short: "Apply every pending migration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := migrator()
			if err != nil {
				return err
			}
			n := 0
			err = m.Up(cmd.Context(), func(mg postgres.Migration) {
				n++
				fmt.Fprintf(cmd.OutOrStdout(), "applied %05d %s\n", mg.Version, mg.Name)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "schema is current (%d applied now)\n", n)
			return nil
		},
	}, &cobra.Command{
		Use: "down", Example: "  pms migrate down   # rolls back the newest migration only",
		Short: "Roll back the latest migration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := migrator()
			if err != nil {
				return err
			}
			mg, err := m.Down(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rolled back %05d %s\n", mg.Version, mg.Name)
			return nil
		},
	}, &cobra.Command{
		Use: "status", Example: "  pms migrate status",
		Short: "List the migrations and whether each is applied",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := migrator()
			if err != nil {
				return err
			}
			all, err := m.Status(cmd.Context())
			if err != nil {
				return err
			}
			for _, mg := range all {
				state := "pending"
				if mg.Applied {
					state = "applied"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%-8s %05d %s\n", state, mg.Version, mg.Name)
			}
			return nil
		},
	})
	return cmd
}
