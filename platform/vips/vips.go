// Package vips compresses images with libvips through bimg; it is the only
// package that needs cgo.
//
// Importing it starts libvips (bimg's init). New turns off the libvips
// operation cache and blocks libvips' untrusted loaders for the whole process.
// Run the process with MALLOC_ARENA_MAX=2 (it halves peak memory) and
// VIPS_BLOCK_UNTRUSTED=1.
package vips

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/h2non/bimg"
)

// Config bounds the libvips work of one process.
type Config struct {
	// MaxConcurrent is how many images are compressed at once. Each uses one
	// libvips thread and, for a 36 MP JPEG, about 100 MB at its peak.
	MaxConcurrent int `mapstructure:"max_concurrent"`
}

// Validate reports every problem with the config.
func (c Config) Validate() error {
	var errs []error
	if c.MaxConcurrent < 1 {
		errs = append(errs, errors.New("vips.max_concurrent: must be at least 1"))
	}
	return errors.Join(errs...)
}

// Compressor makes compressed variants of images; it is an
// imaging.Compressor and is safe for concurrent use.
type Compressor struct {
	slots chan struct{}
}

var setupOnce sync.Once

// New validates cfg and returns a Compressor. The first call turns off the
// process-wide libvips operation cache (it only costs memory here: every
// source is different) and blocks libvips' untrusted loaders.
func New(cfg Config) (*Compressor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	setupOnce.Do(func() {
		bimg.VipsCacheSetMax(0)
		bimg.VipsCacheSetMaxMem(0)
		blockUntrusted()
	})
	return &Compressor{slots: make(chan struct{}, cfg.MaxConcurrent)}, nil
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
