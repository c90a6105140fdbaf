package imaging

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rs/zerolog"
)

// Uploader stores an object under key and returns the URL clients read it
// from. Storing the same key twice leaves one object.
type Uploader interface {
	Upload(ctx context.Context, key string, data []byte, contentType string) (url string, err error)
}

// ResultStore records what became of an image. None of its methods changes
// an image whose product is deleted.
type ResultStore interface {
	// Begin counts a new attempt at the task's image and marks the image
	// processing, in one step that is durable before any work starts, so
	// attempts add up across redeliveries and worker restarts. It returns
	// the attempt's number: one more than the attempts counted so far, or 1
	// when the image is pending or failed (a replayed task starts afresh).
	// It returns ErrStale when the image is gone, has another source URL
	// now, belongs to a deleted product or is already ready; and the count
	// with ErrAttemptsUsed when MaxAttempts attempts began and none of them
	// settled the image.
	Begin(ctx context.Context, t Task) (attempt int, err error)
	// Abandon takes back attempt, which Begin (or BeginReprocess, for a
	// reprocess task) counted but which was stopped on purpose before it
	// finished. It changes nothing when another attempt
	// began since, or the image was settled.
	Abandon(ctx context.Context, t Task, attempt int) error
	// Ready records the compressed copies of the task's image.
	Ready(ctx context.Context, t Task, r Result) error
	// BeginReprocess counts an attempt at re-making a ready image, which
	// stays ready (with its variants) meanwhile, and returns its number,
	// as Begin does; the count starts again each time pms reprocess queues
	// the image. It returns ErrStale when the image is not ready, was made
	// with presetSet already, is gone, has another source URL now or
	// belongs to a deleted product; and the count with ErrAttemptsUsed when
	// MaxAttempts attempts began and none finished. A reprocess that fails
	// for good is dead-lettered; the image keeps its variants.
	BeginReprocess(ctx context.Context, t Task, presetSet string) (attempt int, err error)
	// Failed records that the task's image cannot be processed, with a code.
	// For a reprocess task the image stays ready with its variants, and its
	// count of attempts starts again, so that a replay gets all of them.
	Failed(ctx context.Context, t Task, attempts int, code string) error
	// Storing records that objects are about to be stored at keys, before
	// they are uploaded: the Collector does not remove them for a grace
	// period, and Ready records the image with them only if none was
	// removed meanwhile (else it fails with CodeObjectRemoved, and the
	// next attempt stores them again).
	Storing(ctx context.Context, keys []string) error
}

// CodeObjectRemoved is the code of the transient failure of a result whose
// object the Collector removed between Storing and Ready (an attempt that
// took longer than the grace period).
const CodeObjectRemoved = "object_removed"

// ErrStale is returned by ResultStore.Begin for a task whose image no longer
// needs processing.
var ErrStale = errors.New("task is stale")

// ErrAttemptsUsed is returned by ResultStore.Begin when MaxAttempts attempts
// at the image began and none recorded an outcome: each ended with the
// process running it (killed for memory, SIGKILL, a crash in libvips).
var ErrAttemptsUsed = errors.New("attempts used up by workers that died")

// Result describes the compressed variants of one image: one per preset,
// in the presets' order, so the first is the main one.
type Result struct {
	Variants []Variant
	Source   SourceFacts
	// PresetSet names the presets and ladder they were made with (see
	// Config.PresetSet), so that pms reprocess finds the images an older
	// set made.
	PresetSet string
}

// Main returns the main variant, the zero Variant when there is none.
func (r Result) Main() Variant {
	if len(r.Variants) == 0 {
		return Variant{}
	}
	return r.Variants[0]
}

// Variant is one compressed copy of an image, uploaded.
type Variant struct {
	Name   string // the preset's
	Key    string // the object's, in the bucket (ObjectKey)
	URL    string
	Width  int
	Height int
	Bytes  int64
	Format string // jpeg or webp
}

// Processor turns a task into compressed copies: fetch → compress → upload →
// record. TaskHandler hands it the tasks of the image task topic.
type Processor struct {
	fetch      *Fetcher
	compress   Compressor
	upload     Uploader
	results    ResultStore
	presets    []Preset
	rungs      []Preset // the ladder's, format by format, widths ascending
	variants   []Preset // presets, then rungs: what Compressor.Variants makes
	presetSet  string   // Config.PresetSet
	jobTimeout time.Duration
	observe    Observer
}

// Config says how images are fetched, which variants are made and how long
// one task may take.
type Config struct {
	Fetch      FetchConfig   `mapstructure:"fetch"`
	Limits     Limits        `mapstructure:"limits"`
	JobTimeout time.Duration `mapstructure:"job_timeout"`
	// Presets are the variants made of every image, in order. The first is
	// the main one: compressed_product_images shows its URLs.
	Presets []Preset `mapstructure:"presets"`
	// Ladder is the responsive ladder made after the presets.
	Ladder Ladder `mapstructure:"ladder"`
	// Collect says when stored objects that no image uses are removed.
	Collect CollectConfig `mapstructure:"collect"`
	// CompressorOutput are the compressor's settings that shape the
	// variants besides the presets (vips.Config.OutputSettings), counted in
	// PresetSet. The program sets them from the compressor's config; no
	// config file or variable does.
	CompressorOutput []string `mapstructure:"-"`
}

// DefaultConfig returns the defaults of every setting.
func DefaultConfig() Config {
	return Config{Fetch: DefaultFetchConfig(), Limits: DefaultLimits, JobTimeout: 2 * time.Minute, Presets: DefaultPresets(), Ladder: DefaultLadder(),
		Collect: DefaultCollectConfig()}
}

// Validate reports every problem with the config.
func (c Config) Validate() error {
	errs := []error{c.Fetch.Validate(), c.Limits.Validate()}
	if c.JobTimeout < time.Second {
		errs = append(errs, errors.New("imaging.job_timeout: must be at least 1s"))
	}
	errs = append(errs, validatePresets("imaging.presets", c.Presets), c.Collect.validate(c.JobTimeout))
	if len(c.Ladder.Widths) > 0 || len(c.Ladder.Formats) > 0 {
		errs = append(errs, c.Ladder.validate("imaging.ladder"), c.Ladder.validateNames("imaging.presets", c.Presets))
	}
	return errors.Join(errs...)
}

// PresetSet names the variants the config makes: a hash of its presets,
// ladder and CompressorOutput, which changes with any of their settings.
// With no CompressorOutput it is what it was before they counted, so a
// default install's images need no reprocessing for it.
func (c Config) PresetSet() string {
	data, err := json.Marshal(struct {
		Presets []Preset
		Ladder  Ladder
		Output  []string `json:",omitempty"`
	}{c.Presets, c.Ladder, c.CompressorOutput})
	if err != nil {
		panic(fmt.Sprintf("imaging: encode presets: %v", err)) // plain structs always encode
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// NewProcessor validates cfg and returns a Processor wired to its
// collaborators.
func NewProcessor(cfg Config, f *Fetcher, c Compressor, u Uploader, r ResultStore) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	presets, rungs := slices.Clone(cfg.Presets), cfg.Ladder.Presets()
	return &Processor{fetch: f, compress: c, upload: u, results: r, presets: presets, rungs: rungs,
		variants: append(slices.Clip(presets), rungs...), presetSet: cfg.PresetSet(), jobTimeout: cfg.JobTimeout,
		observe: nopObserver{}}, nil
}

// Process runs one attempt of the task, counted by ResultStore.Begin before
// anything else, and returns its number (0 when it could not be counted).
// It returns nil when the image is ready or needs nothing more, an error
// wrapping ErrPermanent when it can never succeed, and another error when a
// later attempt may succeed. A task whose attempts were all used up by
// workers that died during them is not run again: it fails permanently with
// CodeWorkerCrashed. An attempt cut short because ctx ended is given back
// (see giveBack). Failures are recorded by GiveUp, which the consumer calls
// after the last attempt.
func (p *Processor) Process(ctx context.Context, t Task) (int, error) {
	job, cancel := context.WithTimeout(ctx, p.jobTimeout)
	defer cancel()
	var attempt int
	err := p.timed(job, StageDatabase, func(ctx context.Context) (err error) {
		if t.Reprocess {
			attempt, err = p.results.BeginReprocess(ctx, t, p.presetSet)
			return err
		}
		attempt, err = p.results.Begin(ctx, t)
		return err
	})
	switch {
	case errors.Is(err, ErrStale):
		zerolog.Ctx(ctx).Info().Msg("task is stale, skipped")
		p.observe.Outcome(ResultStale, "")
		return 0, nil
	case errors.Is(err, ErrAttemptsUsed):
		return attempt, Permanent(CodeWorkerCrashed, fmt.Errorf("%w: %d attempts began and none finished", err, attempt))
	case err != nil:
		return 0, fmt.Errorf("begin task: %w", err)
	}
	if attempt == 1 && !t.Reprocess && !t.RequestedAt.IsZero() {
		p.observe.Waited(time.Since(t.RequestedAt))
	}
	if err := p.run(job, t); err != nil {
		if ctx.Err() != nil {
			p.giveBack(ctx, t, attempt)
			return attempt, err
		}
		p.observe.Outcome(ResultAttemptFailed, FailureCode(err))
		return attempt, err
	}
	p.observe.Outcome(ResultReady, "")
	return attempt, nil
}

// run makes the image and records it.
func (p *Processor) run(ctx context.Context, t Task) error {
	start := time.Now()
	res, err := p.make(ctx, t)
	if err != nil {
		return err
	}
	if err := p.timed(ctx, StageDatabase, func(ctx context.Context) error { return p.results.Ready(ctx, t, res) }); err != nil {
		return fmt.Errorf("record result: %w", err)
	}
	main := res.Main()
	zerolog.Ctx(ctx).Info().Dur("took", time.Since(start)).Int64("bytes", main.Bytes).Str("url", main.URL).
		Int("variants", len(res.Variants)).Msg("image ready")
	return nil
}

// giveBackTimeout bounds giving back an attempt, which happens while the
// consumer stops.
const giveBackTimeout = 2 * time.Second

// giveBack takes back attempt, which ctx's end cut short: the consumer
// stopped it on purpose (shutdown, rebalance), and restarts should not use
// up the task's attempts. It is best effort: when the give-back is lost
// (the database is down, the process dies first) the attempt stays
// counted, and a task whose every attempt was cut short this way is given
// up as worker_crashed at its next delivery, its dead-letter copy kept for
// a replay.
func (p *Processor) giveBack(ctx context.Context, t Task, attempt int) {
	log := zerolog.Ctx(ctx)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), giveBackTimeout)
	defer cancel()
	if err := p.results.Abandon(ctx, t, attempt); err != nil {
		log.Warn().Err(err).Int("attempt", attempt).Msg("give back abandoned attempt")
		return
	}
	log.Info().Int("attempt", attempt).Msg("abandoned attempt given back")
}

// make fetches the source once, makes every variant from it in one call
// of the compressor (the presets, then the ladder's rungs) with a sample
// that describes it, then stores the variants the ladder's cap leaves (see
// store). Any variant's failure fails the whole attempt.
func (p *Processor) make(ctx context.Context, t Task) (Result, error) {
	var src Source
	err := p.timed(ctx, StageDownload, func(ctx context.Context) (err error) { src, err = p.fetch.Fetch(ctx, t.SourceURL); return err })
	if err != nil {
		return Result{}, fmt.Errorf("fetch source image: %w", err)
	}
	p.observe.Bytes(DirectionIn, int64(len(src.Data)))
	res := Result{PresetSet: p.presetSet}
	var outs []Output
	var sample Sample
	err = p.timed(ctx, StageCompress, func(ctx context.Context) (err error) {
		outs, sample, err = p.compress.Variants(ctx, src, p.variants)
		return err
	})
	if err != nil {
		return Result{}, fmt.Errorf("compress source image: %w", err)
	}
	if res.Source, err = Facts(src, sample); err != nil {
		return Result{}, fmt.Errorf("describe source image: %w", err)
	}
	// A rung as wide as the source (or one that came out narrower than its
	// width: it met the source's) ends its format's ladder: the wider rungs
	// would be the same image again (never upscaled, never repeated).
	kept, made := slices.Clone(p.presets), slices.Clip(outs[:len(p.presets)])
	capped := map[string]bool{}
	for i, rung := range p.rungs {
		if capped[rung.Format] {
			continue
		}
		out := outs[len(p.presets)+i]
		kept, made = append(kept, rung), append(made, out)
		capped[rung.Format] = out.Width < rung.MaxWidth || out.Width >= sample.Width
	}
	if res.Variants, err = p.store(ctx, kept, made); err != nil {
		return Result{}, err
	}
	return res, nil
}

// store uploads the outputs of presets, each content once, after recording
// their keys (so the collector leaves the objects alone until the image is
// recorded with them: see ResultStore.Storing), and returns them as
// variants.
func (p *Processor) store(ctx context.Context, presets []Preset, outs []Output) ([]Variant, error) {
	keys := make([]string, len(outs))
	for i, out := range outs {
		keys[i] = ObjectKey(out)
	}
	unique := slices.Compact(slices.Sorted(slices.Values(keys)))
	if err := p.timed(ctx, StageDatabase, func(ctx context.Context) error { return p.results.Storing(ctx, unique) }); err != nil {
		return nil, fmt.Errorf("record %d objects being stored: %w", len(unique), err)
	}
	urls := make(map[string]string, len(unique))
	variants := make([]Variant, len(outs))
	for i, out := range outs {
		url, done := urls[keys[i]]
		if !done { // identical outputs (main and jpeg-1600) are one object
			err := p.timed(ctx, StageUpload, func(ctx context.Context) (err error) {
				url, err = p.upload.Upload(ctx, keys[i], out.Data, ContentType(out.Format))
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("upload %s: %w", presets[i].Name, err)
			}
			urls[keys[i]] = url
			p.observe.Bytes(DirectionOut, int64(len(out.Data)))
		}
		variants[i] = Variant{Name: presets[i].Name, Key: keys[i], URL: url, Width: out.Width, Height: out.Height, Bytes: int64(len(out.Data)), Format: out.Format}
	}
	return variants, nil
}

// GiveUp records that the task failed after its last attempt. The code
// comes from the cause when it is a Failure.
func (p *Processor) GiveUp(ctx context.Context, t Task, attempts int, cause error) error {
	code := FailureCode(cause)
	p.observe.Outcome(ResultFailed, code)
	return p.timed(ctx, StageDatabase, func(ctx context.Context) error { return p.results.Failed(ctx, t, attempts, code) })
}

// Failure codes that come from the processor rather than a collaborator.
const (
	// CodeInternal is the failure code of an error that carries none.
	CodeInternal = "internal"
	// CodeWorkerCrashed is the failure code of a task given up because every
	// attempt at it ended with its worker's process.
	CodeWorkerCrashed = "worker_crashed"
)

// FailureCode returns the code of the Failure in err's chain, "timeout" for
// an expired deadline, or CodeInternal.
func FailureCode(err error) string {
	var f *Failure
	if errors.As(err, &f) {
		return f.Code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return CodeInternal
}

// ObjectKey is where a compressed image is stored: content-addressed, so
// identical outputs of any images share one object, and a task delivered
// twice writes the same object again.
func ObjectKey(out Output) string {
	sum := sha256.Sum256(out.Data)
	return "images/" + hex.EncodeToString(sum[:]) + "." + extension(out.Format)
}

func extension(format string) string {
	if format == FormatJPEG {
		return "jpg"
	}
	return format
}

// ContentType is the media type of an output format.
func ContentType(format string) string {
	return "image/" + format
}
