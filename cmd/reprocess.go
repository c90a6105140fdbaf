package cmd

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/product/correlation"
	"github.com/pms-dev/pms/product/message"
)

func newReprocessCmd(a *app) *cobra.Command {
	var batch, limit int
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "reprocess [--batch N] [--limit N] [--dry-run]",
		Short: "Re-queue the ready images whose variants an older preset set made",
		Long: "After a change to imaging.presets or imaging.ladder, queue every ready image made with other\n" +
			"settings (or before they were recorded) to be made again with this config's: batch by batch, in\n" +
			"one transaction each, the images' tasks go to the outbox (pms serve's relay publishes them) and\n" +
			"the images are marked queued. An image stays ready with its old variants until the new ones are\n" +
			"recorded; objects only the old ones used are removed after imaging.collect.grace. Stopped part\n" +
			"way (Ctrl-C, a crash), it resumes where it stopped: queued images are not queued again. A task\n" +
			"that keeps failing is dead-lettered (pms dlq) and the image keeps its old variants.\n" +
			"Run it with the config the workers run with.",
		Example: "  pms reprocess --dry-run\n" +
			"  pms reprocess --config /etc/pms/config.yaml\n" +
			"  pms reprocess --limit 10000   # this many now, the rest in a later run",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if batch < 1 || batch > 10_000 {
				return fmt.Errorf("%w: --batch must be between 1 and 10000", errUsage)
			}
			if limit < 0 {
				return fmt.Errorf("%w: --limit must not be negative (0 means no limit)", errUsage)
			}
			return a.reprocess(cmd, batch, limit, dryRun)
		},
	}
	cmd.Flags().IntVar(&batch, "batch", 500, "images queued per transaction")
	cmd.Flags().IntVar(&limit, "limit", 0, "queue at most this many images in this run (0: all)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "count the images to reprocess and change nothing")
	return cmd
}

// reprocess queues the images made with another preset set, batch by batch,
// with a progress bar.
func (a *app) reprocess(cmd *cobra.Command, batch, limit int, dryRun bool) error {
	ctx := cmd.Context()
	db, err := a.openPostgres(ctx)
	if err != nil {
		return err
	}
	results := postgres.NewImageResults(db)
	set := a.cfg.Imaging.PresetSet()
	total, err := results.CountReprocess(ctx, set)
	if err != nil {
		return err
	}
	if limit > 0 {
		total = min(total, limit)
	}
	out := cmd.OutOrStdout()
	if dryRun || total == 0 {
		fmt.Fprintf(out, "%d image(s) to reprocess for preset set %s%s\n", total, set, map[bool]string{true: " (dry run: nothing changed)"}[dryRun])
		return nil
	}
	// Every task of the run carries one correlation id, to follow it in the
	// worker's logs.
	rid := "reprocess-" + time.Now().UTC().Format("20060102T150405Z")
	ctx = correlation.WithID(ctx, rid)
	tasks := imaging.NewTaskMessages(a.cfg.Kafka.Topic)
	task := func(im postgres.ReprocessImage) (message.Message, error) {
		return tasks.ReprocessTask(ctx, im.ProductID, im.ID, im.SourceURL, time.Now())
	}
	bar := newProgress(cmd.ErrOrStderr(), total, "queueing images", "images")
	queued := 0
	for queued < total {
		n, err := results.QueueReprocess(ctx, set, min(batch, total-queued), task)
		if err != nil {
			return fmt.Errorf("after %d image(s) queued (run again to resume): %w", queued, err)
		}
		if n == 0 {
			break // the rest were deleted, replaced or queued by another run meanwhile
		}
		queued += n
		_ = bar.Add(n)
	}
	_ = bar.Finish()
	fmt.Fprintf(out, "queued %d image(s) for preset set %s (request id %s)\n", queued, set, rid)
	return nil
}
