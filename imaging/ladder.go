package imaging

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// Ladder is the responsive ladder: every image is also made at each of
// Widths (never upscaled) in each of Formats, so that a page can pick the
// smallest copy that fills its slot (an HTML srcset per format). Each rung
// is a Preset like any other, named "<format>-<width>" (webp-640), fitted
// to its width alone: a portrait photo's rungs are as wide as a
// landscape's.
type Ladder struct {
	// Widths are the rungs' widths in pixels, ascending; none makes no
	// rungs.
	Widths []int `mapstructure:"widths"`
	// Formats are the rungs' output formats: jpeg, webp, avif. An image
	// with alpha keeps it in WebP and AVIF, and is flattened onto the
	// compressor's background in JPEG.
	Formats []string `mapstructure:"formats"`
	// JPEGQuality, WebPQuality and AVIFQuality are the encoders' qualities,
	// chosen so that the three look alike (README, "Quality per format").
	JPEGQuality int `mapstructure:"jpeg_quality"`
	WebPQuality int `mapstructure:"webp_quality"`
	AVIFQuality int `mapstructure:"avif_quality"`
}

// FormatAVIF is the AV1 image format, an output format only.
const FormatAVIF = "avif"

// LadderFormats are the formats a ladder may list.
var LadderFormats = []string{FormatJPEG, FormatWebP, FormatAVIF}

// ladderMaxHeight is the height of every rung's box: rungs are fitted to
// their width, and no image is taller than a decoder allows.
const ladderMaxHeight = 10_000

// DefaultLadder returns the ladder made unless configured otherwise: 320,
// 640, 1024 and 1600 px wide, in JPEG at quality 80 and WebP at 80. AVIF
// (quality 75) is off by default: its encoder is the slowest by far
// (README, "Quality per format").
func DefaultLadder() Ladder {
	return Ladder{
		Widths:      []int{320, 640, 1024, 1600},
		Formats:     []string{FormatJPEG, FormatWebP},
		JPEGQuality: 80, WebPQuality: 80, AVIFQuality: 75,
	}
}

// Presets returns the ladder's rungs as presets, format by format in the
// order of Formats, each format's widths ascending.
func (l Ladder) Presets() []Preset {
	out := make([]Preset, 0, len(l.Widths)*len(l.Formats))
	for _, f := range l.Formats {
		for _, w := range l.Widths {
			out = append(out, Preset{Name: RungName(f, w), MaxWidth: w, MaxHeight: ladderMaxHeight, Format: f, Quality: l.quality(f)})
		}
	}
	return out
}

// RungName is the name of the ladder's rung of the given format and width.
func RungName(format string, width int) string { return format + "-" + strconv.Itoa(width) }

func (l Ladder) quality(format string) int {
	switch format {
	case FormatJPEG:
		return l.JPEGQuality
	case FormatWebP:
		return l.WebPQuality
	}
	return l.AVIFQuality
}

// validate reports every problem with the ladder under key.
func (l Ladder) validate(key string) error {
	var errs []error
	for i, w := range l.Widths {
		if w < 16 || w > ladderMaxHeight {
			errs = append(errs, fmt.Errorf("%s.widths[%d]: must be between 16 and 10000", key, i))
		}
		if i > 0 && w <= l.Widths[i-1] {
			errs = append(errs, fmt.Errorf("%s.widths[%d]: must be larger than the width before it", key, i))
		}
	}
	for i, f := range l.Formats {
		if !slices.Contains(LadderFormats, f) {
			errs = append(errs, fmt.Errorf("%s.formats[%d]: must be one of %v", key, i, LadderFormats))
		}
		if slices.Index(l.Formats, f) < i {
			errs = append(errs, fmt.Errorf("%s.formats[%d]: %q is listed twice", key, i, f))
		}
	}
	for _, q := range []struct {
		name  string
		value int
	}{{"jpeg_quality", l.JPEGQuality}, {"webp_quality", l.WebPQuality}, {"avif_quality", l.AVIFQuality}} {
		if q.value < 1 || q.value > 100 {
			errs = append(errs, fmt.Errorf("%s.%s: must be between 1 and 100", key, q.name))
		}
	}
	return errors.Join(errs...)
}

// validateNames reports presets named like a rung of the ladder.
func (l Ladder) validateNames(key string, presets []Preset) error {
	var errs []error
	rungs := l.Presets()
	for i, p := range presets {
		if slices.ContainsFunc(rungs, func(r Preset) bool { return r.Name == p.Name }) {
			errs = append(errs, fmt.Errorf("%s[%d].name: %q is the name of a rung of imaging.ladder", key, i, p.Name))
		}
	}
	return errors.Join(errs...)
}
