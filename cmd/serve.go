package cmd

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/pms-dev/pms/platform/httpapi"
)

func newServeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP API",
		Long:  "Run the HTTP API until SIGINT or SIGTERM, then finish requests in flight and exit.\nRefuses to start on a database whose schema is behind.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			server, err := a.httpServer(cmd.Context())
			if err != nil {
				return err
			}
			return run(cmd.Context(), server)
		},
	}
}

// httpServer builds the API server after checking the schema.
func (a *app) httpServer(ctx context.Context) (*httpapi.Server, error) {
	if err := a.requireSchema(ctx); err != nil {
		return nil, err
	}
	svc, err := a.productService()
	if err != nil {
		return nil, err
	}
	db, _ := a.postgres()
	m, err := db.Migrator()
	if err != nil {
		return nil, err
	}
	checks := []httpapi.Check{
		{Name: "postgres", Critical: true, Run: db.Ping},
		{Name: "schema", Critical: true, Run: m.CheckSchema},
	}
	return httpapi.New(a.cfg.HTTP, svc, checks, a.metrics(), a.log.With().Str("component", "http").Logger())
}
