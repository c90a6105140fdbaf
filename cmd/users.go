package cmd

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/pms-dev/pms/product/account"
)

func newUsersCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "users", Example: "  pms users create --email ann@example.com --name Ann", Short: "Manage the users who own products"}
	var email, name string
	var admin bool
	create := &cobra.Command{
		Use: "create --email EMAIL --name NAME [--admin]", Example: "  pms users create --email ann@example.com --name Ann\n  pms users create --email ops@example.com --name Ops --admin",
		Short: "Create a user and print their first API key (shown once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			auth, err := a.keyAdmin(cmd)
			if err != nil {
				return err
			}
			u, err := auth.CreateUser(cmd.Context(), email, name, admin)
			if err != nil {
				return err
			}
			key, k, err := auth.CreateKey(cmd.Context(), u.ID)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "user %s created (%s)\n", u.ID, u.Email)
			printKey(out, key, k)
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

func printKey(out io.Writer, key string, k account.APIKey) {
	fmt.Fprintf(out, "api key %s: %s\n", k.ID, key)
	fmt.Fprintln(out, "store it now: it is not shown again (only its hash is kept)")
}

func newKeysCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Example: "  pms keys list --user ann@example.com\n  pms keys revoke 01a2…", Short: "Manage API keys"}
	var user string
	// forUser finds the --user (an id or an email address) and runs fn for them.
	forUser := func(fn func(cmd *cobra.Command, auth *account.Service, u account.User) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			auth, err := a.keyAdmin(cmd)
			if err != nil {
				return err
			}
			var u account.User
			if id, perr := uuid.Parse(user); perr == nil {
				u, err = auth.User(cmd.Context(), id)
			} else {
				u, err = auth.UserByEmail(cmd.Context(), user)
			}
			if err != nil {
				return err
			}
			return fn(cmd, auth, u)
		}
	}
	create := &cobra.Command{
		Use: "create --user ID|EMAIL", Example: "  pms keys create --user ann@example.com",
		Short: "Create an API key for a user (shown once)",
		Args:  cobra.NoArgs,
		RunE: forUser(func(cmd *cobra.Command, auth *account.Service, u account.User) error {
			key, k, err := auth.CreateKey(cmd.Context(), u.ID)
			if err != nil {
				return err
			}
			printKey(cmd.OutOrStdout(), key, k)
			return nil
		}),
	}
	list := &cobra.Command{
		Use: "list --user ID|EMAIL", Example: "  pms keys list --user ann@example.com",
		Short: "List a user's API keys (prefixes only)",
		Args:  cobra.NoArgs,
		RunE: forUser(func(cmd *cobra.Command, auth *account.Service, u account.User) error {
			keys, err := auth.ListKeys(cmd.Context(), u.ID)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tPREFIX\tCREATED\tLAST USED\tREVOKED")
			for _, k := range keys {
				fmt.Fprintf(w, "%s\tpms_%s_…\t%s\t%s\t%s\n", k.ID, k.Prefix, when(k.CreatedAt), when(k.LastUsedAt), when(k.RevokedAt))
			}
			return w.Flush()
		}),
	}
	for _, c := range []*cobra.Command{create, list} {
		c.Flags().StringVar(&user, "user", "", "the user's id or email address")
		_ = c.MarkFlagRequired("user")
	}
	revoke := &cobra.Command{
		Use: "revoke ID", Example: "  pms keys revoke 01a23456-0000-7000-8000-000000000000",
		Short: "Revoke an API key; it stops working within a second everywhere",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := uuid.Parse(args[0])
			if err != nil {
				return fmt.Errorf("%w: the key id must be a UUID (see pms keys list)", errUsage)
			}
			auth, err := a.keyAdmin(cmd)
			if err != nil {
				return err
			}
			k, err := auth.RevokeKey(cmd.Context(), id)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "api key %s (pms_%s_…) revoked at %s\n", k.ID, k.Prefix, when(k.RevokedAt))
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// keyAdmin opens PostgreSQL (checking its schema) and Redis, whose key
// cache revoking a key clears, and returns the account service on them.
func (a *app) keyAdmin(cmd *cobra.Command) (*account.Service, error) {
	db, err := a.openPostgres(cmd.Context())
	if err != nil {
		return nil, err
	}
	cache, err := a.openRedis()
	if err != nil {
		return nil, err
	}
	return a.accounts(db, cache), nil
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return strings.Replace(t.UTC().Format(time.RFC3339), "T", " ", 1)
}
