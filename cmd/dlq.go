package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/kafka"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/product/correlation"
)

func newDLQCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use: "dlq", Example: "  pms dlq list\n  pms dlq replay --code source_unavailable --dry-run",
		Short: "List and replay the image tasks in the dead-letter topic",
		Long: "The worker gives a task up after its attempts (or at once for a permanent failure) and copies\n" +
			"it to kafka.dead_letter_topic with why. These commands read that topic (joining no consumer\n" +
			"group) and show or replay the images whose latest dead letter still stands: the image is\n" +
			"failed in PostgreSQL. With no kafka.brokers configured they read dev.kafka_addr (pms all's broker).",
	}
	cmd.AddCommand(newDLQListCmd(a), newDLQReplayCmd(a))
	return cmd
}

func newDLQListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Show the failed images of the dead-letter topic, oldest first",
		Example: "  pms dlq list\n" +
			"  PMS_KAFKA_BROKERS=kafka-0:9092 pms dlq list --config /etc/pms/config.yaml",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dead, err := a.openDeadLetters(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			printDeadImages(out, dead.failed, time.Now())
			fmt.Fprintln(out, dead.summary())
			return nil
		},
	}
}

func newDLQReplayCmd(a *app) *cobra.Command {
	var all, dryRun bool
	var image, code string
	cmd := &cobra.Command{
		Use:   "replay (--all | --image ID | --code CODE) [--dry-run]",
		Short: "Re-queue failed images of the dead-letter topic through the outbox",
		Long: "Re-queue the chosen failed images: for each, in one transaction, the image becomes pending with\n" +
			"no attempts used and its task is written to the outbox, which pms serve's relay publishes to\n" +
			"kafka.topic (the replay is durable once this command says so, even if Kafka is away). An image\n" +
			"that is no longer failed (it has since succeeded, is being processed, was replaced or its\n" +
			"product deleted) is left alone: replaying it is a no-op. Run it after fixing the cause.",
		Example: "  pms dlq replay --code source_unavailable --dry-run\n" +
			"  pms dlq replay --image 01a2…   # one image\n" +
			"  pms dlq replay --all",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pick, err := dlqFilter(all, image, code)
			if err != nil {
				return err
			}
			dead, err := a.openDeadLetters(cmd.Context())
			if err != nil {
				return err
			}
			chosen := slices.DeleteFunc(slices.Clone(dead.failed), func(d deadImage) bool { return !pick(d) })
			out := cmd.OutOrStdout()
			if dryRun {
				printDeadImages(out, chosen, time.Now())
				fmt.Fprintf(out, "would replay %d image(s) (dry run: nothing changed)\n", len(chosen))
				return nil
			}
			return a.replay(cmd.Context(), out, cmd.ErrOrStderr(), dead, chosen)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "replay every failed image of the dead-letter topic")
	cmd.Flags().StringVar(&image, "image", "", "replay the image with this id")
	cmd.Flags().StringVar(&code, "code", "", "replay the images given up with this error code (see pms dlq list)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be replayed and change nothing")
	return cmd
}

// dlqFilter returns the choice of exactly one of --all, --image, --code.
func dlqFilter(all bool, image, code string) (func(deadImage) bool, error) {
	given := 0
	for _, set := range []bool{all, image != "", code != ""} {
		if set {
			given++
		}
	}
	if given != 1 {
		return nil, fmt.Errorf("%w: give one of --all, --image ID or --code CODE", errUsage)
	}
	switch {
	case image != "":
		id, err := uuid.Parse(image)
		if err != nil {
			return nil, fmt.Errorf("%w: --image must be an image id (a UUID, see pms dlq list)", errUsage)
		}
		return func(d deadImage) bool { return d.task.ImageID == id }, nil
	case code != "":
		return func(d deadImage) bool { return d.dl.ErrorCode == code }, nil
	}
	return func(deadImage) bool { return true }, nil
}

// deadImage is an image's latest dead letter and the task it holds.
type deadImage struct {
	dl   kafka.DeadLetter
	task imaging.Task
}

// deadLetters is what the dead-letter topic holds, sorted out.
type deadLetters struct {
	results *postgres.ImageResults
	cache   *redis.ProductCache
	// failed are the images still failed, by the time of their latest dead
	// letter; letters counts every dead letter read.
	failed                      []deadImage
	letters, resolved, unusable int
}

func (d deadLetters) summary() string {
	return fmt.Sprintf("%d failed image(s) in %d dead letter(s); %d image(s) since resolved, %d letter(s) not image tasks or unreadable",
		len(d.failed), d.letters, d.resolved, d.unusable)
}

// openDeadLetters reads the dead-letter topic and keeps, for each image,
// its latest dead letter if the image is failed now.
func (a *app) openDeadLetters(ctx context.Context) (deadLetters, error) {
	db, err := a.openPostgres(ctx)
	if err != nil {
		return deadLetters{}, err
	}
	cache, err := a.openRedis()
	if err != nil {
		return deadLetters{}, err
	}
	store, err := postgres.NewProductStore(db, a.cfg.Idempotency)
	if err != nil {
		return deadLetters{}, err
	}
	d := deadLetters{results: postgres.NewImageResults(db), cache: redis.NewProductCache(cache, store)}
	kcfg := a.cfg.Kafka
	if len(kcfg.Brokers) == 0 {
		kcfg.Brokers = []string{a.cfg.Dev.KafkaAddr}
	}
	dls, err := kafka.ReadDeadLetters(ctx, kcfg)
	if err != nil {
		return deadLetters{}, err
	}
	d.letters = len(dls)
	latest := map[uuid.UUID]deadImage{}
	for _, dl := range dls {
		t, err := imaging.DecodeTask(dl.Message)
		if dl.Message.Topic != kcfg.Topic || err != nil || t.ImageID == uuid.Nil {
			d.unusable++
			continue
		}
		if old, ok := latest[t.ImageID]; !ok || dl.At.After(old.dl.At) {
			latest[t.ImageID] = deadImage{dl: dl, task: t}
		}
	}
	ids := make([]uuid.UUID, 0, len(latest))
	for id := range latest {
		ids = append(ids, id)
	}
	failed, err := d.results.FailedNow(ctx, ids)
	if err != nil {
		return deadLetters{}, err
	}
	for id, di := range latest {
		if failed[id] {
			d.failed = append(d.failed, di)
		} else {
			d.resolved++
		}
	}
	slices.SortFunc(d.failed, func(x, y deadImage) int { return x.dl.At.Compare(y.dl.At) })
	return d, nil
}

// replay requeues the chosen images one by one, with a progress bar on
// progress, and says what it did on out.
func (a *app) replay(ctx context.Context, out, progress io.Writer, d deadLetters, chosen []deadImage) error {
	bar := newProgress(progress, len(chosen), "replaying", "images")
	replayed, noop := 0, 0
	var errs []error
	for _, di := range chosen {
		m := di.dl.Message
		m.Topic = a.cfg.Kafka.Topic
		ok, err := d.results.Requeue(ctx, di.task, m)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("image %s: %w", di.task.ImageID, err))
		case ok:
			replayed++
			d.cache.Invalidate(ctx, di.task.ProductID)
		default:
			noop++
		}
		_ = bar.Add(1) // writes to a terminal or buffer; nothing to handle
		if ctx.Err() != nil {
			break
		}
	}
	_ = bar.Finish()
	fmt.Fprintf(out, "replayed %d image(s) through the outbox; %d no longer failed (no-op); %d error(s)\n", replayed, noop, len(errs))
	return errors.Join(errs...)
}

// printDeadImages writes the table of dead images.
func printDeadImages(out io.Writer, dead []deadImage, now time.Time) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "IMAGE\tPRODUCT\tERROR CODE\tATTEMPTS\tAGE\tREQUEST ID")
	for _, d := range dead {
		rid := d.dl.Message.Headers[correlation.Header]
		if rid == "" {
			rid = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", d.task.ImageID, d.task.ProductID, d.dl.ErrorCode, d.dl.Attempts, age(now.Sub(d.dl.At)), rid)
	}
	_ = w.Flush() // out is a terminal or buffer
}

// age is d rounded for people: 45s, 12m, 5h, 3d.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
