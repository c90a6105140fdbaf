package imaging

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// Remover removes the object at key; removing one that is gone is no error.
type Remover interface {
	Remove(ctx context.Context, key string) error
}

// ObjectStore knows which stored objects images use (see
// ResultStore.Storing).
type ObjectStore interface {
	// Collect looks at up to limit objects that have had no use for grace
	// (their last use went, or they were stored and never used): each one
	// that an image uses now is kept, each other one is removed with remove
	// and forgotten. An object is never removed while an image is being
	// recorded with it. One whose removal fails is looked at again later.
	Collect(ctx context.Context, grace time.Duration, limit int, remove func(ctx context.Context, key string) error) (CollectStats, error)
}

// CollectStats counts what one Collect did.
type CollectStats struct {
	Removed, Kept, Failed int
}

// CollectConfig says when stored objects that no image uses are removed.
type CollectConfig struct {
	// Grace is how long an object stays after it lost its last use, so
	// that pages and caches that still show it keep working for a while,
	// and an image re-made meanwhile can use it again. At least the job
	// timeout: an object stored by a running attempt has no use yet.
	Grace time.Duration `mapstructure:"grace"`
	// Every is how often the collector looks for objects whose grace is up.
	Every time.Duration `mapstructure:"every"`
	// Batch is how many objects one look takes at most.
	Batch int `mapstructure:"batch"`
}

// DefaultCollectConfig returns the defaults: a day's grace, a look every
// minute, 100 objects at a time.
func DefaultCollectConfig() CollectConfig {
	return CollectConfig{Grace: 24 * time.Hour, Every: time.Minute, Batch: 100}
}

// validate reports every problem with the config, whose job timeout is
// jobTimeout.
func (c CollectConfig) validate(jobTimeout time.Duration) error {
	var errs []error
	if c.Grace < jobTimeout {
		errs = append(errs, fmt.Errorf("imaging.collect.grace: must be at least imaging.job_timeout (%s)", jobTimeout))
	}
	if c.Every < 100*time.Millisecond {
		errs = append(errs, errors.New("imaging.collect.every: must be at least 100ms"))
	}
	if c.Batch < 1 || c.Batch > 10_000 {
		errs = append(errs, errors.New("imaging.collect.batch: must be between 1 and 10000"))
	}
	return errors.Join(errs...)
}

// Collector removes stored objects that no image has used for the grace
// period: those of deleted products, of replaced or re-made images, and
// those that attempts stored and never recorded. Objects that other images
// share stay. Several collectors (one per worker process) may run at once.
type Collector struct {
	objects ObjectStore
	remover Remover
	cfg     CollectConfig
	log     zerolog.Logger
	observe func(CollectStats)
}

// NewCollector returns a Collector that finds objects in objects and
// removes them with r.
func NewCollector(cfg CollectConfig, objects ObjectStore, r Remover, log zerolog.Logger) *Collector {
	return &Collector{objects: objects, remover: r, cfg: cfg, log: log, observe: func(CollectStats) {}}
}

// Observe makes the collector tell f what each look did; call it before Run.
func (c *Collector) Observe(f func(CollectStats)) { c.observe = f }

// Run collects until ctx ends, taking batch after batch while whole batches
// come back, then waiting Every. A failing look is logged and tried again
// at the next.
func (c *Collector) Run(ctx context.Context) error {
	for {
		for {
			s, err := c.Once(ctx)
			if err != nil {
				if ctx.Err() == nil {
					c.log.Warn().Err(err).Msg("collect unused objects")
				}
				break
			}
			if s.Removed+s.Kept+s.Failed < c.cfg.Batch || s.Failed > 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.cfg.Every):
		}
	}
}

// Once takes one batch of objects whose grace is up and removes those that
// no image uses.
func (c *Collector) Once(ctx context.Context) (CollectStats, error) {
	s, err := c.objects.Collect(ctx, c.cfg.Grace, c.cfg.Batch, func(ctx context.Context, key string) error {
		if err := c.remover.Remove(ctx, key); err != nil {
			c.log.Warn().Err(err).Str("key", key).Msg("remove unused object")
			return err
		}
		return nil
	})
	if err != nil {
		return s, err
	}
	c.observe(s)
	if s != (CollectStats{}) {
		c.log.Info().Int("removed", s.Removed).Int("kept", s.Kept).Int("failed", s.Failed).Msg("collected unused objects")
	}
	return s, nil
}
