package imaging_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pms-dev/pms/imaging"
)

func validConfig() imaging.Config {
	return imaging.Config{Limits: imaging.DefaultLimits, JobTimeout: time.Minute, Presets: imaging.DefaultPresets(), Collect: imaging.DefaultCollectConfig()}
}

func TestConfigValidatePresets(t *testing.T) {
	square := imaging.Preset{Name: "square_2x", MaxWidth: 16, MaxHeight: 10_000, Format: imaging.FormatJPEG, Quality: 100}
	tests := []struct {
		name string
		edit func(*imaging.Config)
		want []string // one line per problem; nil when valid
	}{
		{"defaults", func(*imaging.Config) {}, nil},
		{"one preset", func(c *imaging.Config) { c.Presets = c.Presets[:1] }, nil},
		{"a third preset, at the limits", func(c *imaging.Config) { c.Presets = append(c.Presets, square) }, nil},
		{"fixed webp", func(c *imaging.Config) { c.Presets[1].Format = imaging.FormatWebP }, nil},
		{"none", func(c *imaging.Config) { c.Presets = nil },
			[]string{"imaging.presets: must list at least one preset (the first is the main one)"}},
		{"no name", func(c *imaging.Config) { c.Presets[1].Name = "" },
			[]string{"imaging.presets[1].name: must be 1 to 32 lower-case letters, digits, '-' or '_', starting with a letter or digit"}},
		{"name with a capital", func(c *imaging.Config) { c.Presets[0].Name = "Main" },
			[]string{"imaging.presets[0].name: must be 1 to 32 lower-case letters, digits, '-' or '_', starting with a letter or digit"}},
		{"name too long", func(c *imaging.Config) { c.Presets[0].Name = strings.Repeat("a", 33) },
			[]string{"imaging.presets[0].name: must be 1 to 32 lower-case letters, digits, '-' or '_', starting with a letter or digit"}},
		{"duplicate names", func(c *imaging.Config) {
			c.Presets = append(c.Presets, square, square)
			c.Presets[2].Name, c.Presets[3].Name = "main", "main"
		}, []string{
			`imaging.presets[2].name: "main" is already the name of imaging.presets[0]`,
			`imaging.presets[3].name: "main" is already the name of imaging.presets[0]`,
		}},
		{"box too small", func(c *imaging.Config) { c.Presets[1].MaxWidth = 15 },
			[]string{"imaging.presets[1].max_width: must be between 16 and 10000"}},
		{"box too large", func(c *imaging.Config) { c.Presets[0].MaxHeight = 10_001 },
			[]string{"imaging.presets[0].max_height: must be between 16 and 10000"}},
		{"no format", func(c *imaging.Config) { c.Presets[0].Format = "" },
			[]string{"imaging.presets[0].format: must be one of [auto jpeg webp avif]"}},
		{"png", func(c *imaging.Config) { c.Presets[1].Format = "png" },
			[]string{"imaging.presets[1].format: must be one of [auto jpeg webp avif]"}},
		{"quality 0", func(c *imaging.Config) { c.Presets[0].Quality = 0 },
			[]string{"imaging.presets[0].quality: must be between 1 and 100"}},
		{"quality 101", func(c *imaging.Config) { c.Presets[1].Quality = 101 },
			[]string{"imaging.presets[1].quality: must be between 1 and 100"}},
		{"default ladder", func(c *imaging.Config) { c.Ladder = imaging.DefaultLadder() }, nil},
		{"avif rungs", func(c *imaging.Config) {
			c.Ladder = imaging.DefaultLadder()
			c.Ladder.Formats = append(c.Ladder.Formats, imaging.FormatAVIF)
		}, nil},
		{"ladder off", func(c *imaging.Config) { c.Ladder = imaging.Ladder{} }, nil},
		{"every problem of a ladder", func(c *imaging.Config) {
			c.Ladder = imaging.Ladder{Widths: []int{320, 320, 15}, Formats: []string{"webp", "png", "webp"}, JPEGQuality: 101}
			c.Presets[1].Name = "webp-320"
		}, []string{
			`imaging.ladder.widths[1]: must be larger than the width before it`,
			`imaging.ladder.widths[2]: must be between 16 and 10000`,
			`imaging.ladder.widths[2]: must be larger than the width before it`,
			`imaging.ladder.formats[1]: must be one of [jpeg webp avif]`,
			`imaging.ladder.formats[2]: "webp" is listed twice`,
			`imaging.ladder.jpeg_quality: must be between 1 and 100`,
			`imaging.ladder.webp_quality: must be between 1 and 100`,
			`imaging.ladder.avif_quality: must be between 1 and 100`,
			`imaging.presets[1].name: "webp-320" is the name of a rung of imaging.ladder`,
		}},
		{"collection", func(c *imaging.Config) {
			c.Collect = imaging.CollectConfig{Grace: 59 * time.Second, Every: time.Millisecond, Batch: 10_001}
		}, []string{
			`imaging.collect.grace: must be at least imaging.job_timeout (1m0s)`,
			`imaging.collect.every: must be at least 100ms`,
			`imaging.collect.batch: must be between 1 and 10000`,
		}},
		{"every problem of a preset", func(c *imaging.Config) { c.Presets[1] = imaging.Preset{Name: "main"} }, []string{
			`imaging.presets[1].max_width: must be between 16 and 10000`,
			`imaging.presets[1].max_height: must be between 16 and 10000`,
			`imaging.presets[1].format: must be one of [auto jpeg webp avif]`,
			`imaging.presets[1].quality: must be between 1 and 100`,
			`imaging.presets[1].name: "main" is already the name of imaging.presets[0]`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.edit(&cfg)
			err := cfg.Validate()
			if got, want := errText(err), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("Validate() =\n%s\nwant\n%s", got, want)
			}
			if _, err := imaging.NewProcessor(cfg, nil, nil, nil, nil); (err != nil) != (tt.want != nil) {
				t.Errorf("NewProcessor() error = %v, want an error %t", err, tt.want != nil)
			}
		})
	}
}

// errText is err's message with errors.Join's nesting flattened, "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	var lines []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if line != "" {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}
