package imaging

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
)

// Preset says how one variant of every image is made: fitted inside
// MaxWidth×MaxHeight (never upscaled) and encoded as Format says at Quality.
type Preset struct {
	// Name identifies the variant in the API and the database.
	Name      string `mapstructure:"name"`
	MaxWidth  int    `mapstructure:"max_width"`
	MaxHeight int    `mapstructure:"max_height"`
	// Format is the output format policy: FormatAuto, FormatJPEG,
	// FormatWebP or FormatAVIF.
	Format  string `mapstructure:"format"`
	Quality int    `mapstructure:"quality"`
}

// FormatAuto is the format policy that encodes opaque images as JPEG and
// images with an alpha channel as WebP, which keeps the alpha and is much
// smaller than PNG.
const FormatAuto = "auto"

// PresetFormats are the values Preset.Format takes: a policy, or a fixed
// output format (an image with alpha becomes JPEG on white).
var PresetFormats = []string{FormatAuto, FormatJPEG, FormatWebP, FormatAVIF}

// DefaultPresets returns the presets made unless configured otherwise:
// "main", fitted inside 1600×1600 at quality 80, and "thumbnail", inside
// 320×320 at quality 75, both with FormatAuto.
func DefaultPresets() []Preset {
	return []Preset{
		{Name: "main", MaxWidth: 1600, MaxHeight: 1600, Format: FormatAuto, Quality: 80},
		{Name: "thumbnail", MaxWidth: 320, MaxHeight: 320, Format: FormatAuto, Quality: 75},
	}
}

// presetName is what a preset may be called. The name identifies variants in
// the API and the database, so it is kept plain.
var presetName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// validatePresets reports every problem with the presets listed under key,
// naming each by its index: key[1].quality.
func validatePresets(key string, presets []Preset) error {
	if len(presets) == 0 {
		return fmt.Errorf("%s: must list at least one preset (the first is the main one)", key)
	}
	var errs []error
	seen := make(map[string]int, len(presets))
	for i, p := range presets {
		at := fmt.Sprintf("%s[%d]", key, i)
		errs = append(errs, p.validate(at))
		if first, dup := seen[p.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: %q is already the name of %s[%d]", at, p.Name, key, first))
		} else if p.Name != "" {
			seen[p.Name] = i
		}
	}
	return errors.Join(errs...)
}

func (p Preset) validate(key string) error {
	var errs []error
	if !presetName.MatchString(p.Name) {
		errs = append(errs, fmt.Errorf("%s.name: must be 1 to 32 lower-case letters, digits, '-' or '_', starting with a letter or digit", key))
	}
	if p.MaxWidth < 16 || p.MaxWidth > 10_000 {
		errs = append(errs, fmt.Errorf("%s.max_width: must be between 16 and 10000", key))
	}
	if p.MaxHeight < 16 || p.MaxHeight > 10_000 {
		errs = append(errs, fmt.Errorf("%s.max_height: must be between 16 and 10000", key))
	}
	if !slices.Contains(PresetFormats, p.Format) {
		errs = append(errs, fmt.Errorf("%s.format: must be one of %v", key, PresetFormats))
	}
	if p.Quality < 1 || p.Quality > 100 {
		errs = append(errs, fmt.Errorf("%s.quality: must be between 1 and 100", key))
	}
	return errors.Join(errs...)
}
