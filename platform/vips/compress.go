package vips

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"strings"

	"github.com/h2non/bimg"
	"golang.org/x/image/webp"

	"github.com/pms-dev/pms/imaging"
)

// DefaultQuality is the encoder quality used when a preset sets none.
const DefaultQuality = 80

// Compress returns src fitted inside p.MaxWidth×p.MaxHeight (never
// upscaled), turned upright by its EXIF orientation, converted to sRGB and
// stripped of all metadata (EXIF, XMP, GPS, ICC). Opaque images become JPEG
// at p.Quality (DefaultQuality when 0); images with an alpha channel (every
// GIF, and PNGs with one even if it is fully opaque) become lossy WebP with
// alpha at that quality, much smaller than PNG. The Output's Format, Width and
// Height are read back from the encoded bytes. Only the first frame of an
// animation is kept; a JPEG truncated after its header is accepted, with
// the missing part grey, as libvips only warns about it.
//
// A source that libvips cannot read gives an imaging.Permanent failure:
// "not_an_image" for anything but JPEG, PNG, WebP and GIF bytes,
// "decode_failed" when libvips fails on it. Running out of memory gives an
// imaging.Transient "out_of_memory". When ctx ends while waiting for a
// libvips slot, the error wraps ctx.Err(). A preset without a box or with a
// quality outside 1–100 gives a plain error.
func (c *Compressor) Compress(ctx context.Context, src imaging.Source, p imaging.Preset) (imaging.Output, error) {
	quality, err := presetQuality(p)
	if err != nil {
		return imaging.Output{}, err
	}
	format := sniff(src.Data)
	if format == "" {
		return imaging.Output{}, imaging.Permanent("not_an_image", errors.New("not a JPEG, PNG, WebP or GIF image"))
	}
	if err := c.acquire(ctx); err != nil {
		return imaging.Output{}, err
	}
	defer c.release()

	h, err := probe(src.Data, format)
	if err != nil {
		return imaging.Output{}, imaging.Permanent("decode_failed", fmt.Errorf("read %s header: %w", format, err))
	}
	pl := newPlan(h, p.MaxWidth, p.MaxHeight, quality)
	data, err := pl.run(ctx, src.Data)
	if err != nil {
		return imaging.Output{}, err
	}
	out := imaging.Output{Preset: p.Name, Data: data, Format: pl.format}
	if out.Width, out.Height, err = encodedSize(pl.format, data); err != nil {
		return imaging.Output{}, fmt.Errorf("read back compressed %s: %w", pl.format, err)
	}
	return out, nil
}

func presetQuality(p imaging.Preset) (int, error) {
	switch {
	case p.MaxWidth < 1 || p.MaxHeight < 1:
		return 0, fmt.Errorf("preset %q: max width and height must be at least 1", p.Name)
	case p.Quality == 0:
		return DefaultQuality, nil
	case p.Quality < 1 || p.Quality > 100:
		return 0, fmt.Errorf("preset %q: quality must be between 1 and 100", p.Name)
	}
	return p.Quality, nil
}

// sniff returns the imaging.Format of data from its magic bytes, or "" for
// anything else, so that only these four libvips loaders ever see a source.
func sniff(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF}):
		return imaging.FormatJPEG
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return imaging.FormatPNG
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return imaging.FormatWebP
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return imaging.FormatGIF
	}
	return ""
}

// run makes the output. An upright source takes one bimg call. A rotated
// one takes two: bimg rotates before it resizes, and for a JPEG it then
// re-encodes the full-size rotated image to shrink-on-load it again, which
// doubles the time and also drops the ICC profile before it is applied. So the
// first call resizes without rotating (shrink-on-load, sRGB) into an
// uncompressed TIFF, and the second rotates that small image and encodes it.
func (pl plan) run(ctx context.Context, data []byte) ([]byte, error) {
	first := bimg.Options{
		NoAutoRotate:   true,
		Interpretation: bimg.InterpretationSRGB,
		OutputICC:      "srgb", // libvips' built-in profile; applied only when the source has one
		StripMetadata:  true,
		Type:           pl.bimgType(),
		Quality:        pl.quality,
	}
	if pl.resize {
		// Both sides, computed by newPlan to keep the aspect ratio, with Force:
		// bimg resizes to exactly that size instead of cropping or embedding.
		first.Width, first.Height, first.Force = pl.storedWidth, pl.storedHeight, true
		// We never upscale, so the interpolator is not used to resample (that
		// is vips_reduce with lanczos3); it only decides the shrink-on-load
		// factor. With bicubic bimg decodes a 7350 px JPEG at 1/2 for a
		// 1600 px box, with bilinear at 1/4: twice as fast, half the memory,
		// and no further from a full-size lanczos3 resize.
		first.Interpolator = bimg.Bilinear
	}
	if pl.rotate != 0 || pl.flip {
		first.Type = bimg.TIFF
	}
	out, err := bimg.Resize(data, first)
	if err != nil {
		return nil, sourceError(err)
	}
	if first.Type == bimg.TIFF {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("compress: %w", err)
		}
		out, err = bimg.Resize(out, bimg.Options{
			NoAutoRotate:   true, // the TIFF keeps the orientation tag; apply it once, explicitly
			Rotate:         pl.rotate,
			Flip:           pl.flip,
			Interpretation: bimg.InterpretationSRGB,
			StripMetadata:  true,
			Type:           pl.bimgType(),
			Quality:        pl.quality,
		})
		if err != nil {
			return nil, fmt.Errorf("rotate and encode with libvips: %w", err)
		}
	}
	if pl.format == imaging.FormatWebP {
		// libvips 8.14 webpsave ignores strip (libvips#3340).
		if out, err = stripWebPMetadata(out); err != nil {
			return nil, fmt.Errorf("strip webp metadata: %w", err)
		}
	}
	return out, nil
}

// sourceError classifies a libvips failure on the source. libvips is
// deterministic, so the same bytes would fail again: that is permanent,
// except when memory ran out.
func sourceError(err error) error {
	err = fmt.Errorf("resize with libvips: %w", err)
	if strings.Contains(err.Error(), "out of memory") {
		return imaging.Transient("out_of_memory", err)
	}
	return imaging.Permanent("decode_failed", err)
}

// encodedSize reads the dimensions from the header of an encoded image.
func encodedSize(format string, data []byte) (int, int, error) {
	r := bytes.NewReader(data)
	switch format {
	case imaging.FormatJPEG:
		cfg, err := jpeg.DecodeConfig(r)
		return cfg.Width, cfg.Height, err
	case imaging.FormatWebP:
		cfg, err := webp.DecodeConfig(r)
		return cfg.Width, cfg.Height, err
	}
	return 0, 0, fmt.Errorf("unexpected output format %q", format)
}
