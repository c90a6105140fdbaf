// Package imaging makes compressed copies of product images: it fetches a
// source image safely, compresses it into configured presets, uploads the
// results and records them on the product.
package imaging

import (
	"context"
	"fmt"

	"github.com/pms-dev/pms/product/message"
)

// Formats a source image may have. Anything else is refused before decoding.
const (
	FormatJPEG = "jpeg"
	FormatPNG  = "png"
	FormatWebP = "webp"
	FormatGIF  = "gif"
)

// Source is a fetched image whose structure and size were checked.
type Source struct {
	URL    string
	Data   []byte
	Header Header // from ReadHeader
}

// Output is one compressed variant of a source image.
type Output struct {
	Preset string
	Data   []byte
	Format string // jpeg, png or webp
	Width  int
	Height int
}

// Compressor makes the compressed variants of a source image. It strips
// all metadata, applies the EXIF orientation and converts to sRGB. An
// error wrapping ErrPermanent means the source can never be compressed.
type Compressor interface {
	// Variants returns one Output per preset, in the presets' order, each
	// src fitted inside its preset's box (never upscaled) and encoded as
	// the preset says, and a Sample of src: src decoded (upright, sRGB)
	// into a copy that fits inside MaxThumbHashSide×MaxThumbHashSide. It
	// decodes src once for them all, and fails on the first failure with
	// no outputs.
	Variants(ctx context.Context, src Source, presets []Preset) ([]Output, Sample, error)
}

// ErrPermanent marks failures that retrying cannot fix (a source that is not
// an image, too large, refused or gone). Other errors are transient. It is
// message.ErrPermanent, so the consumer gives a task that fails with it up
// at once.
var ErrPermanent = message.ErrPermanent

// Failure is an error with a stable machine-readable code, recorded on the
// image row and sent with dead-lettered tasks.
type Failure struct {
	Code      string // e.g. "source_not_found", "not_an_image", "blocked_address"
	Permanent bool
	Err       error
}

func (f *Failure) Error() string { return fmt.Sprintf("%s: %v", f.Code, f.Err) }

// Unwrap returns the cause, and ErrPermanent when the failure is permanent.
func (f *Failure) Unwrap() []error {
	if f.Permanent {
		return []error{f.Err, ErrPermanent}
	}
	return []error{f.Err}
}

// Permanent returns a permanent Failure with the given code.
func Permanent(code string, err error) error { return &Failure{Code: code, Permanent: true, Err: err} }

// Transient returns a Failure with the given code that is worth retrying.
func Transient(code string, err error) error { return &Failure{Code: code, Err: err} }
