// Package vips compresses images with libvips; it is the only package that
// needs cgo.
//
// bimg starts libvips when the process starts (its init) and is used to
// configure it. Decoding, resizing and encoding call libvips directly,
// through the small C file next to this one, for what bimg cannot do:
// refuse bytes that another loader would read, fail on truncated or
// corrupt data (libvips' fail-on levels), resize with premultiplied alpha
// (vips_thumbnail), read the decoded size before any pixel is decoded, and
// stop work whose context has ended.
//
// New turns off the libvips operation cache, blocks libvips' untrusted
// loaders, fixes glibc malloc's mmap and trim thresholds and shortens
// libvips' tiles, for the whole process (see tuneMemory). Run the process
// with MALLOC_ARENA_MAX=2 (it halves peak memory; glibc reads it only at
// start) and VIPS_BLOCK_UNTRUSTED=1.
package vips

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/h2non/bimg"
	"golang.org/x/sync/semaphore"

	"github.com/pms-dev/pms/imaging"
)

// Config bounds the libvips work of one process.
type Config struct {
	// MaxConcurrent is how many images are compressed at once, each on one
	// libvips thread; 0 means one per CPU.
	MaxConcurrent int `mapstructure:"max_concurrent"`
	// MaxMemory bounds, in bytes, what the images being compressed may hold
	// at once, as estimated from each one's header before it is decoded
	// (see decodeCost). An image whose estimate alone is larger is refused.
	MaxMemory int64 `mapstructure:"max_memory"`
	// FailOn is the libvips fail-on level: "warning" (any decoder warning
	// fails the image, as sharp does by default), "error", "truncated" or
	// "none". Below "warning", a corrupt JPEG can come out grey-filled.
	FailOn string `mapstructure:"fail_on"`
	// Background is the colour, #rrggbb in sRGB, that JPEG variants of
	// images with alpha are flattened onto.
	Background string `mapstructure:"background"`
}

// DefaultConfig returns the defaults of every setting.
func DefaultConfig() Config {
	return Config{MaxConcurrent: 0, MaxMemory: 512 << 20, FailOn: "warning", Background: "#ffffff"}
}

// OutputSettings are the settings besides the presets that shape the
// variants made, for imaging.Config.CompressorOutput: none at the
// defaults, so the preset set of a default install is what it was before
// they counted. Background counts (it is in every JPEG variant of an image
// with alpha), written in lower case; the libvips version does not, so
// that upgrading libvips does not ask pms reprocess to make every image
// again. c is valid.
func (c Config) OutputSettings() []string {
	bg, _ := parseColor(c.Background)
	if bg == [3]float64{255, 255, 255} {
		return nil
	}
	return []string{fmt.Sprintf("background=#%02x%02x%02x", int(bg[0]), int(bg[1]), int(bg[2]))}
}

// FailOnLevels are the values Config.FailOn takes, strictest first.
var FailOnLevels = []string{"warning", "error", "truncated", "none"}

// Validate reports every problem with the config.
func (c Config) Validate() error {
	var errs []error
	if c.MaxConcurrent < 0 {
		errs = append(errs, errors.New("vips.max_concurrent: must not be negative (0 means one per CPU)"))
	}
	if c.MaxMemory < 16<<20 {
		errs = append(errs, errors.New("vips.max_memory: must be at least 16 MiB (16777216)"))
	}
	if !slices.Contains(FailOnLevels, c.FailOn) {
		errs = append(errs, fmt.Errorf("vips.fail_on: must be one of %v", FailOnLevels))
	}
	if _, err := parseColor(c.Background); err != nil {
		errs = append(errs, fmt.Errorf("vips.background: %w", err))
	}
	return errors.Join(errs...)
}

// Compressor makes compressed variants of images; it is an
// imaging.Compressor and is safe for concurrent use.
type Compressor struct {
	slots     chan struct{}
	memory    *semaphore.Weighted
	maxMemory int64
	limits    imaging.Limits
	failOn    string
	reserved  atomic.Int64 // bytes of the memory budget in use
	bg        [3]float64
}

var (
	setupOnce sync.Once
	setupErr  error // what setting up libvips failed on
)

// New validates cfg and lim and returns a Compressor that refuses images
// whose decoded canvas breaks lim. The first call turns off the
// process-wide libvips operation cache (it only costs memory here: every
// source is different), blocks libvips' untrusted loaders, and sets
// glibc malloc and libvips to hand memory back as images are done (see
// tuneMemory).
func New(cfg Config, lim imaging.Limits) (*Compressor, error) {
	if err := errors.Join(cfg.Validate(), lim.Validate()); err != nil {
		return nil, err
	}
	bg, _ := parseColor(cfg.Background) // validated
	setupOnce.Do(func() {
		bimg.VipsCacheSetMax(0)
		bimg.VipsCacheSetMaxMem(0)
		blockUntrusted()
		quietWarnings()
		setupErr = tuneMemory()
	})
	if setupErr != nil {
		return nil, fmt.Errorf("set libvips memory up: %w", setupErr)
	}
	return &Compressor{
		slots:     make(chan struct{}, cmp.Or(cfg.MaxConcurrent, runtime.NumCPU())),
		memory:    semaphore.NewWeighted(cfg.MaxMemory),
		maxMemory: cfg.MaxMemory,
		limits:    lim,
		failOn:    cfg.FailOn,
		bg:        bg,
	}, nil
}

// parseColor reads an sRGB colour written #rrggbb.
func parseColor(s string) ([3]float64, error) {
	var c [3]float64
	if len(s) != 7 || s[0] != '#' {
		return c, errors.New("must be a colour written #rrggbb")
	}
	for i := range 3 {
		v, err := strconv.ParseUint(s[1+2*i:3+2*i], 16, 8)
		if err != nil {
			return c, errors.New("must be a colour written #rrggbb")
		}
		c[i] = float64(v)
	}
	return c, nil
}

// acquire waits for a free libvips slot or for ctx to end.
func (c *Compressor) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("wait for a libvips slot: %w", err)
	}
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for a libvips slot: %w", ctx.Err())
	}
}

func (c *Compressor) release() { <-c.slots }

// reserve waits until n bytes of the memory budget are free or ctx ends,
// and returns the function that gives them back.
func (c *Compressor) reserve(ctx context.Context, n int64) (func(), error) {
	if err := c.memory.Acquire(ctx, n); err != nil {
		return nil, fmt.Errorf("wait for libvips memory: %w", err)
	}
	c.reserved.Add(n)
	return func() { c.reserved.Add(-n); c.memory.Release(n) }, nil
}
