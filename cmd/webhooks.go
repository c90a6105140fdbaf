package cmd

import (
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
)

func newWebhooksCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use: "webhooks", Example: "  pms webhooks replay --since 2h",
		Short: "Operate on webhook deliveries",
		Long: "Webhook deliveries are queued in PostgreSQL (webhook_deliveries) by pms worker's events route\n" +
			"and sent by its dispatcher; these commands change the queue and the subscriptions directly.",
	}
	cmd.AddCommand(newWebhooksReplayCmd(a), newWebhooksResealCmd(a))
	return cmd
}

func newWebhooksResealCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "reseal",
		Short: "Seal every webhook secret under the first of webhooks.secret_keys",
		Long: "Write again every signing secret not sealed under the first key of webhooks.secret_keys: the ones\n" +
			"stored in clear (before keys were given) and the ones sealed under an older key. To rotate a key,\n" +
			"put the new one first (serve and worker too), run this, then drop the old one. With no keys it\n" +
			"stores every secret in clear again, which needs the keys that sealed them.",
		Example: "  PMS_WEBHOOKS_SECRET_KEYS=NEW,OLD pms webhooks reseal",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := a.openWebhookStore(cmd.Context())
			if err != nil {
				return err
			}
			n, err := store.Reseal(cmd.Context(), progressOf(cmd.ErrOrStderr(), "resealing", "subscriptions"))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "resealed the secrets of %d subscription(s)\n", n)
			return nil
		},
	}
}

func newWebhooksReplayCmd(a *app) *cobra.Command {
	var since, webhookID string
	cmd := &cobra.Command{
		Use:   "replay --since TIME|DURATION [--webhook ID]",
		Short: "Send the deliveries queued since a time again",
		Long: "Queue again every delivery queued at or after --since that is not pending (delivered or failed),\n" +
			"oldest first, so each product's deliveries keep their order: due now, attempts reset, the same\n" +
			"webhook-id (receivers dedupe on it). Deliveries of disabled subscriptions wait until they are\n" +
			"enabled again. --since is an RFC 3339 time or a duration back from now (90m, 24h).",
		Example: "  pms webhooks replay --since 2h\n" +
			"  pms webhooks replay --since 2026-12-01T09:00:00Z --webhook 01a2…",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			var id uuid.UUID
			if webhookID != "" {
				if id, err = uuid.Parse(webhookID); err != nil {
					return fmt.Errorf("%w: --webhook must be a webhook id (a UUID)", errUsage)
				}
			}
			store, err := a.openWebhookStore(cmd.Context())
			if err != nil {
				return err
			}
			n, err := store.ReplaySince(cmd.Context(), from, id, progressOf(cmd.ErrOrStderr(), "replaying", "deliveries"))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "queued %d deliveries again (since %s)\n", n, from.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "RFC 3339 time, or a duration back from now (required)")
	cmd.Flags().StringVar(&webhookID, "webhook", "", "only the deliveries of this subscription")
	return cmd
}

// parseSince reads --since: an RFC 3339 time or a positive duration
// before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("%w: --since is required", errUsage)
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%w: --since %q is neither an RFC 3339 time nor a positive duration", errUsage, s)
}
