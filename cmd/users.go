package cmd

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newUsersCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Manage the users who own products"}
	var email, name string
	var admin bool
	create := &cobra.Command{
		Use:   "create --email EMAIL --name NAME",
		Short: "Create a user and print its id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.requireSchema(cmd.Context()); err != nil {
				return err
			}
			svc, err := a.productService()
			if err != nil {
				return err
			}
			u, err := svc.CreateUser(cmd.Context(), email, name, admin)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s created (%s)\n", u.ID, u.Email)
			return nil
		},
	}
	create.Flags().StringVar(&email, "email", "", "the user's email address (unique)")
	create.Flags().StringVar(&name, "name", "", "the user's display name")
	create.Flags().BoolVar(&admin, "admin", false, "let the user act on every user's products")
	_ = create.MarkFlagRequired("email") // the flags exist: these cannot fail
	_ = create.MarkFlagRequired("name")
	cmd.AddCommand(create)
	return cmd
}
