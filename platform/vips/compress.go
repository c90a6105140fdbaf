package vips

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pms-dev/pms/imaging"
)

// DefaultQuality is the encoder quality used when a preset sets none.
const DefaultQuality = 80

// CodeUnsupportedFormat is the failure code of a source in a format this
// libvips cannot decode (HEIF without libheif).
const CodeUnsupportedFormat = "unsupported_format"

// CodeTooMuchMemory is the failure code of an image that would need more
// memory to decode than the whole budget (Config.MaxMemory).
const CodeTooMuchMemory = "too_much_memory"

// Compress returns the first frame of src fitted inside
// p.MaxWidth×p.MaxHeight (never upscaled; alpha premultiplied while
// resizing), turned upright by its EXIF orientation, converted to sRGB and
// stripped of all metadata (EXIF, XMP, GPS, ICC), and encoded at p.Quality
// (DefaultQuality when 0) in the format p.Format says. With
// imaging.FormatAuto (or ""), opaque images become JPEG and images with an
// alpha channel (every GIF, and PNGs with one even if it is fully opaque)
// become lossy WebP with alpha, much smaller than PNG. With
// imaging.FormatJPEG an alpha channel is flattened onto Config.Background; with
// imaging.FormatWebP or imaging.FormatAVIF every image becomes that format,
// alpha kept. Output sides are at
// least 1 pixel, however long and thin the source.
//
// Before decoding, the size libvips will allocate for the first frame is
// checked against the Compressor's Limits, and the memory it will take is
// reserved from its budget. Failures are imaging.Failures: permanent ones
// from imaging.ReadHeader (not_an_image, truncated_image, corrupt_image,
// …) and imaging.Limits.Check, "too_much_memory" when the estimated memory
// is more than the whole budget, and "decode_failed" when libvips fails on
// the source at the configured fail-on level (truncated or corrupt pixel
// data, bytes another loader would read); transient "out_of_memory".
// When ctx ends while waiting or while libvips works, the error wraps
// ctx.Err(). A preset without a box, with a quality outside 1–100 or with
// another format gives a plain error.
func (c *Compressor) Compress(ctx context.Context, src imaging.Source, p imaging.Preset) (imaging.Output, error) {
	quality, err := presetQuality(p)
	if err != nil {
		return imaging.Output{}, err
	}
	im, _, done, err := c.decode(ctx, src, p.MaxWidth, p.MaxHeight)
	if err != nil {
		return imaging.Output{}, err
	}
	defer done()
	return c.encode(im, p, quality)
}

// encode returns im encoded as p says (see Compress) at quality.
func (c *Compressor) encode(im image, p imaging.Preset, quality int) (imaging.Output, error) {
	out := imaging.Output{Preset: p.Name, Format: outputFormat(p.Format, im.alpha()), Width: im.width(), Height: im.height()}
	var err error
	if out.Data, err = save(im, out.Format, quality, c.bg); err != nil {
		return imaging.Output{}, fmt.Errorf("encode %s: %w", out.Format, err)
	}
	if out.Format == imaging.FormatWebP {
		// libvips 8.14 webpsave ignores strip (libvips#3340).
		if out.Data, err = stripWebPMetadata(out.Data); err != nil {
			return imaging.Output{}, fmt.Errorf("strip webp metadata: %w", err)
		}
	}
	return out, nil
}

// Sample returns src decoded as Compress decodes it (upright, sRGB, alpha
// premultiplied while resizing), fitted inside
// imaging.MaxThumbHashSide×imaging.MaxThumbHashSide, as 8-bit RGBA; it
// fails as Compress does.
func (c *Compressor) Sample(ctx context.Context, src imaging.Source) (imaging.Sample, error) {
	const side = imaging.MaxThumbHashSide
	im, h, done, err := c.decode(ctx, src, side, side)
	if err != nil {
		return imaging.Sample{}, err
	}
	defer done()
	return sampleOf(im, h)
}

// sampleOf returns im, a sample of a source whose header is h, as an
// imaging.Sample.
func sampleOf(im image, h header) (imaging.Sample, error) {
	pix, err := rgba(im)
	if err != nil {
		return imaging.Sample{}, fmt.Errorf("read sample pixels: %w", err)
	}
	s := imaging.Sample{Width: h.width, Height: h.height, W: im.width(), H: im.height(), Pix: pix}
	if h.orientation >= 5 {
		s.Width, s.Height = h.height, h.width
	}
	return s, nil
}

// decode checks src and decodes it fitted inside w×h (see Compress), holding
// a libvips slot and its memory until done is called. It returns the
// source's header too.
func (c *Compressor) decode(ctx context.Context, src imaging.Source, w, ht int) (im image, h header, done func(), err error) {
	format, h, err := c.open(ctx, src)
	if err != nil {
		return image{}, header{}, nil, err
	}
	free, err := c.hold(ctx, format, h, decodeCost(format, h, w, ht))
	if err != nil {
		c.release()
		return image{}, header{}, nil, err
	}
	im, err = thumbnail(ctx, src.Data, format, h, w, ht, c.failOn)
	if err != nil {
		free()
		c.release()
		return image{}, header{}, nil, sourceError(err)
	}
	return im, h, func() { im.close(); free(); c.release() }, nil
}

// open checks src's structure and size and takes a libvips slot, which the
// caller gives back with c.release once it is done with src. It returns
// src's format and the header libvips reads from it.
func (c *Compressor) open(ctx context.Context, src imaging.Source) (string, header, error) {
	// The structure is checked here too, whoever fetched the bytes: it is
	// cheap next to decoding, and it refuses what libvips would choke on.
	gate, err := imaging.ReadHeader(src.Data)
	if err != nil {
		return "", header{}, err
	}
	format := gate.Format
	if !canLoad(format) {
		return "", header{}, imaging.Permanent(CodeUnsupportedFormat, fmt.Errorf("this libvips cannot decode %s", format))
	}
	if err := c.limits.Check(format, gate.Width, gate.Height); err != nil {
		return "", header{}, err
	}
	if err := c.acquire(ctx); err != nil {
		return "", header{}, err
	}
	h, err := probe(src.Data, format, c.failOn)
	if err != nil {
		c.release()
		return "", header{}, imaging.Permanent("decode_failed", fmt.Errorf("read %s header: %w", format, err))
	}
	// libvips' own view of the canvas is what it will allocate.
	if err := c.limits.Check(format, h.width, h.height); err != nil {
		c.release()
		return "", header{}, err
	}
	return format, h, nil
}

// hold reserves cost bytes of the memory budget for decoding an image of
// the given format and header, refusing one whose cost is more than the
// whole budget, and returns the function that gives them back.
func (c *Compressor) hold(ctx context.Context, format string, h header, cost int64) (func(), error) {
	if cost > c.maxMemory {
		return nil, imaging.Permanent(CodeTooMuchMemory, fmt.Errorf("decoding this %d×%d %s needs about %d MiB, more than vips.max_memory", h.width, h.height, format, cost>>20))
	}
	return c.reserve(ctx, cost)
}

func presetQuality(p imaging.Preset) (int, error) {
	switch {
	case p.MaxWidth < 1 || p.MaxHeight < 1:
		return 0, fmt.Errorf("preset %q: max width and height must be at least 1", p.Name)
	case p.Format != "" && !slices.Contains(imaging.PresetFormats, p.Format):
		return 0, fmt.Errorf("preset %q: format must be one of %v", p.Name, imaging.PresetFormats)
	case p.Quality == 0:
		return DefaultQuality, nil
	case p.Quality < 1 || p.Quality > 100:
		return 0, fmt.Errorf("preset %q: quality must be between 1 and 100", p.Name)
	}
	return p.Quality, nil
}

// outputFormat is the format an image is encoded in under the preset's
// format policy, given whether it has an alpha channel.
func outputFormat(policy string, alpha bool) string {
	switch {
	case policy == imaging.FormatJPEG || policy == imaging.FormatWebP || policy == imaging.FormatAVIF:
		return policy
	case alpha:
		return imaging.FormatWebP
	}
	return imaging.FormatJPEG
}

// sourceError classifies a libvips failure while decoding the source.
// libvips is deterministic, so the same bytes would fail again: that is
// permanent, except when memory ran out or the context ended.
func sourceError(err error) error {
	if errors.Is(err, errStopped) {
		return fmt.Errorf("decode and resize with libvips: %w", err)
	}
	err = fmt.Errorf("decode and resize with libvips: %w", err)
	if strings.Contains(err.Error(), "out of memory") {
		return imaging.Transient("out_of_memory", err)
	}
	return imaging.Permanent("decode_failed", err)
}
