package vips_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/h2non/bimg"
	"golang.org/x/image/webp"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/vips"
)

func TestConfigValidate(t *testing.T) {
	ok := testConfig(2)
	tests := []struct {
		name string
		edit func(*vips.Config)
		want string // "" when valid
	}{
		{"ok", func(*vips.Config) {}, ""},
		{"fail on error", func(c *vips.Config) { c.FailOn = "error" }, ""},
		{"one slot per CPU", func(c *vips.Config) { c.MaxConcurrent = 0 }, ""},
		{"negative slots", func(c *vips.Config) { c.MaxConcurrent = -1 }, "vips.max_concurrent: must not be negative (0 means one per CPU)"},
		{"tiny memory", func(c *vips.Config) { c.MaxMemory = 1 << 20 }, "vips.max_memory: must be at least 16 MiB (16777216)"},
		{"unknown fail_on", func(c *vips.Config) { c.FailOn = "never" }, "vips.fail_on: must be one of [warning error truncated none]"},
		{"cream background", func(c *vips.Config) { c.Background = "#F0e6d2" }, ""},
		{"named background", func(c *vips.Config) { c.Background = "white" }, "vips.background: must be a colour written #rrggbb"},
		{"short background", func(c *vips.Config) { c.Background = "#fff" }, "vips.background: must be a colour written #rrggbb"},
		{"background not hex", func(c *vips.Config) { c.Background = "#ff00zz" }, "vips.background: must be a colour written #rrggbb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			got := ""
			if err := cfg.Validate(); err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
			if _, err := vips.New(cfg, imaging.DefaultLimits); (err != nil) != (tt.want != "") {
				t.Errorf("New() error = %v, want error %t", err, tt.want != "")
			}
		})
	}
}

// TestCompressOrientation compresses a generated JPEG under each EXIF
// orientation and checks the output is upright, both at full size and
// resized.
func TestCompressOrientation(t *testing.T) {
	t.Parallel()
	c := newCompressor(t, 2)
	up := quadrants(96, 64)
	for o := 1; o <= 8; o++ {
		for _, box := range []struct{ w, h, wantW, wantH int }{{1000, 1000, 96, 64}, {48, 48, 48, 32}} {
			t.Run(fmt.Sprintf("orientation %d in %dx%d", o, box.w, box.h), func(t *testing.T) {
				t.Parallel()
				src := withJPEGMetadata(encodeJPEG(t, stored(up, o)), o)
				out, err := c.Compress(context.Background(), imaging.Source{Data: src}, imaging.Preset{Name: "p", MaxWidth: box.w, MaxHeight: box.h})
				if err != nil {
					t.Fatalf("Compress() error = %v", err)
				}
				if out.Format != imaging.FormatJPEG || out.Width != box.wantW || out.Height != box.wantH || out.Preset != "p" {
					t.Fatalf("Compress() = %s %d×%d preset %q, want jpeg %d×%d preset p", out.Format, out.Width, out.Height, out.Preset, box.wantW, box.wantH)
				}
				img, err := jpeg.Decode(bytes.NewReader(out.Data))
				if err != nil {
					t.Fatalf("decode output: %v", err)
				}
				checkQuadrants(t, img)
				checkJPEGStripped(t, out.Data)
			})
		}
	}
}

func checkQuadrants(t *testing.T, img image.Image) {
	t.Helper()
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	for _, q := range []struct {
		x, y int
		want color.RGBA
		name string
	}{{w / 4, h / 4, red, "top left"}, {3 * w / 4, h / 4, green, "top right"}, {w / 4, 3 * h / 4, blue, "bottom left"}, {3 * w / 4, 3 * h / 4, yellow, "bottom right"}} {
		if got := img.At(q.x, q.y); !near(got, q.want, 40) {
			t.Errorf("%s pixel = %v, want about %v", q.name, got, q.want)
		}
	}
}

// checkJPEGStripped checks a JPEG has no APPn segment but JFIF, no comment,
// and none of the planted metadata.
func checkJPEGStripped(t *testing.T, data []byte) {
	t.Helper()
	for _, m := range jpegMarkers(t, data) {
		if (m > 0xE0 && m <= 0xEF) || m == 0xFE {
			t.Errorf("output has marker FF%02X", m)
		}
	}
	checkNoMetadata(t, data)
}

// TestCompressPhoto uses a real camera JPEG whose EXIF orientation is 6.
func TestCompressPhoto(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../../testdata/rot6-Dune.jpg")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(src, []byte("Exif\x00\x00")) || !bytes.Contains(src, []byte("Canon")) {
		t.Fatal("rot6-Dune.jpg has no camera EXIF")
	}
	c := newCompressor(t, 2)
	ctx := context.Background()

	rotated, err := c.Compress(ctx, imaging.Source{Data: src}, imaging.Preset{MaxWidth: 800, MaxHeight: 800, Quality: 80})
	if err != nil {
		t.Fatalf("Compress(rot6) error = %v", err)
	}
	if rotated.Width != 500 || rotated.Height != 800 {
		t.Errorf("Compress(rot6) = %d×%d, want 500×800 (upright 1050×1680 fitted in 800×800)", rotated.Width, rotated.Height)
	}
	if len(rotated.Data) >= len(src) {
		t.Errorf("Compress(rot6) = %d bytes, want fewer than the source's %d", len(rotated.Data), len(src))
	}
	checkJPEGStripped(t, rotated.Data)

	upright, err := c.Compress(ctx, imaging.Source{Data: setOrientation(t, src, 1)}, imaging.Preset{MaxWidth: 800, MaxHeight: 800, Quality: 80})
	if err != nil {
		t.Fatalf("Compress(orientation 1) error = %v", err)
	}
	if upright.Width != 800 || upright.Height != 500 {
		t.Errorf("Compress(orientation 1) = %d×%d, want 800×500", upright.Width, upright.Height)
	}
	// The rotated output must be the upright one turned a quarter clockwise.
	a, errA := jpeg.Decode(bytes.NewReader(rotated.Data))
	b, errB := jpeg.Decode(bytes.NewReader(upright.Data))
	if errA != nil || errB != nil {
		t.Fatalf("decode outputs: %v, %v", errA, errB)
	}
	if d := meanDiffRotated(a, b); d > 4 {
		t.Errorf("rotated output differs from the upright output turned clockwise by %.1f per channel, want at most 4", d)
	}

	big, err := c.Compress(ctx, imaging.Source{Data: src}, imaging.Preset{MaxWidth: 4000, MaxHeight: 4000})
	if err != nil {
		t.Fatalf("Compress(rot6, 4000×4000) error = %v", err)
	}
	if big.Width != 1050 || big.Height != 1680 {
		t.Errorf("Compress(rot6, 4000×4000) = %d×%d, want 1050×1680 (not upscaled)", big.Width, big.Height)
	}
	checkJPEGStripped(t, big.Data)
}

// meanDiffRotated returns the mean absolute difference per channel between
// a and b turned a quarter clockwise.
func meanDiffRotated(a, b image.Image) float64 {
	bw, bh := b.Bounds().Dx(), b.Bounds().Dy()
	if a.Bounds().Dx() != bh || a.Bounds().Dy() != bw {
		return 255
	}
	var sum, n float64
	for y := 0; y < bh; y += 2 {
		for x := 0; x < bw; x += 2 {
			r1, g1, b1, _ := b.At(x, y).RGBA()
			r2, g2, b2, _ := a.At(bh-1-y, x).RGBA() // b's (x, y) lands at (bh-1-y, x)
			sum += float64(abs(int(r1>>8)-int(r2>>8)) + abs(int(g1>>8)-int(g2>>8)) + abs(int(b1>>8)-int(b2>>8)))
			n += 3
		}
	}
	return sum / n
}

// TestCompressICC checks that a Display P3 source is converted to sRGB
// (its colours, not only its tag), upright or rotated.
func TestCompressICC(t *testing.T) {
	t.Parallel()
	c := newCompressor(t, 1)
	for _, o := range []int{1, 6} {
		t.Run(fmt.Sprintf("orientation %d", o), func(t *testing.T) {
			srgb := encodeJPEG(t, stored(quadrants(96, 64), o))
			p3, err := bimg.Resize(srgb, bimg.Options{InputICC: "srgb", OutputICC: "p3", Type: bimg.JPEG, Quality: 95})
			if err != nil {
				t.Fatalf("make P3 JPEG: %v", err)
			}
			if !bytes.Contains(p3, []byte("ICC_PROFILE")) {
				t.Fatal("P3 JPEG has no ICC profile")
			}
			p3Img, _ := jpeg.Decode(bytes.NewReader(p3))
			if near(p3Img.At(8, 8), red, 10) && near(p3Img.At(8, 56), red, 10) {
				t.Fatal("P3 JPEG has the sRGB values; the test would prove nothing")
			}
			out, err := c.Compress(context.Background(), imaging.Source{Data: withJPEGMetadata(p3, o)}, imaging.Preset{MaxWidth: 200, MaxHeight: 200, Quality: 95})
			if err != nil {
				t.Fatalf("Compress() error = %v", err)
			}
			img, err := jpeg.Decode(bytes.NewReader(out.Data))
			if err != nil {
				t.Fatalf("decode output: %v", err)
			}
			checkQuadrants(t, img)
			checkJPEGStripped(t, out.Data)
		})
	}
}

func TestCompressAlpha(t *testing.T) {
	t.Parallel()
	img := image.NewNRGBA(image.Rect(0, 0, 120, 80))
	for y := range 80 {
		for x := 60; x < 120; x++ {
			img.Set(x, y, color.NRGBA{200, 20, 20, 255})
		}
	}
	pngData := encodePNG(t, img)
	webpData := withWebPMetadata(t, toWebP(t, pngData))
	tests := []struct {
		name string
		src  []byte
	}{
		{"png", pngData},
		{"webp with exif and xmp", webpData},
	}
	c := newCompressor(t, 1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.Compress(context.Background(), imaging.Source{Data: tt.src}, imaging.Preset{MaxWidth: 60, MaxHeight: 60})
			if err != nil {
				t.Fatalf("Compress() error = %v", err)
			}
			if out.Format != imaging.FormatWebP || out.Width != 60 || out.Height != 40 {
				t.Fatalf("Compress() = %s %d×%d, want webp 60×40", out.Format, out.Width, out.Height)
			}
			checkWebPStripped(t, out.Data)
			dec, err := webp.Decode(bytes.NewReader(out.Data))
			if err != nil {
				t.Fatalf("decode output: %v", err)
			}
			if got := dec.At(10, 20); !near(got, color.NRGBA{}, 8) {
				t.Errorf("left pixel = %v, want transparent", got)
			}
			if got := dec.At(50, 20); !near(got, color.NRGBA{200, 20, 20, 255}, 30) {
				t.Errorf("right pixel = %v, want opaque red", got)
			}
		})
	}
}

// TestCompressFormatPolicy encodes a half-transparent PNG and an opaque JPEG
// under each format policy: auto picks by alpha, a fixed format is kept,
// and JPEG flattens the alpha onto white.
func TestCompressFormatPolicy(t *testing.T) {
	t.Parallel()
	cutout := image.NewNRGBA(image.Rect(0, 0, 120, 80))
	for y := range 80 {
		for x := 60; x < 120; x++ {
			cutout.Set(x, y, color.NRGBA{200, 20, 20, 255})
		}
	}
	alpha, opaque := encodePNG(t, cutout), encodeJPEG(t, quadrants(120, 80))
	white := color.RGBA{255, 255, 255, 255}
	tests := []struct {
		name, policy string
		src          []byte
		want         string
		left         color.Color // the output's pixel at (10, 20); nil: not checked
	}{
		{"auto, alpha", imaging.FormatAuto, alpha, imaging.FormatWebP, color.NRGBA{}},
		{"auto, opaque", imaging.FormatAuto, opaque, imaging.FormatJPEG, nil},
		{"unset is auto", "", alpha, imaging.FormatWebP, color.NRGBA{}},
		{"jpeg, alpha flattened onto white", imaging.FormatJPEG, alpha, imaging.FormatJPEG, white},
		{"webp, opaque", imaging.FormatWebP, opaque, imaging.FormatWebP, nil},
		{"webp, alpha", imaging.FormatWebP, alpha, imaging.FormatWebP, color.NRGBA{}},
	}
	c := newCompressor(t, 1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := imaging.Preset{Name: "p", MaxWidth: 60, MaxHeight: 60, Format: tt.policy}
			out, err := c.Compress(context.Background(), imaging.Source{Data: tt.src}, p)
			if err != nil {
				t.Fatalf("Compress(format %q) error = %v", tt.policy, err)
			}
			dec, format, err := image.Decode(bytes.NewReader(out.Data))
			if err != nil {
				t.Fatalf("decode output: %v", err)
			}
			if out.Format != tt.want || format != tt.want {
				t.Fatalf("Compress(format %q) = %s (decodes as %s), want %s", tt.policy, out.Format, format, tt.want)
			}
			if tt.left != nil && !near(dec.At(10, 20), tt.left, 8) {
				t.Errorf("Compress(format %q): left pixel = %v, want %v", tt.policy, dec.At(10, 20), tt.left)
			}
		})
	}
}

func checkWebPStripped(t *testing.T, data []byte) {
	t.Helper()
	for _, c := range webpChunks(t, data) {
		switch c.fourCC {
		case "EXIF", "XMP ", "ICCP":
			t.Errorf("output has a %q chunk", c.fourCC)
		case "VP8X":
			if c.data[0]&(0x20|0x08|0x04) != 0 {
				t.Errorf("output VP8X flags = %#x, want no ICC, EXIF or XMP flag", c.data[0])
			}
		}
	}
	checkNoMetadata(t, data)
}

// TestCompressWebPWithEXIF converts an opaque WebP that carries EXIF (as
// libvips writes it) and checks the JPEG output is clean.
func TestCompressWebPWithEXIF(t *testing.T) {
	t.Parallel()
	src := toWebP(t, withJPEGMetadata(encodeJPEG(t, quadrants(96, 64)), 1))
	if !bytes.Contains(src, []byte(testCamera)) {
		t.Fatal("generated WebP has no EXIF")
	}
	c := newCompressor(t, 1)
	out, err := c.Compress(context.Background(), imaging.Source{Data: src}, imaging.Preset{MaxWidth: 1000, MaxHeight: 1000})
	if err != nil {
		t.Fatalf("Compress() error = %v", err)
	}
	if out.Format != imaging.FormatJPEG || out.Width != 96 || out.Height != 64 {
		t.Fatalf("Compress() = %s %d×%d, want jpeg 96×64", out.Format, out.Width, out.Height)
	}
	checkJPEGStripped(t, out.Data)
}

func TestCompressRefused(t *testing.T) {
	t.Parallel()
	good := encodeJPEG(t, quadrants(96, 64))
	badSOF := append([]byte{}, good...)
	if i := bytes.Index(badSOF, []byte{0xFF, 0xC0}); i > 0 {
		copy(badSOF[i+5:], []byte{0, 0, 0, 0}) // height and width 0
	}
	tests := []struct {
		name string
		data []byte
		code string
	}{
		{"empty", nil, "not_an_image"},
		{"text", []byte("hello, this is not an image"), "not_an_image"},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>`), "not_an_image"},
		{"tiff", []byte("II*\x00\x08\x00\x00\x00"), "not_an_image"},
		{"jpeg magic then junk", append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, bytes.Repeat([]byte{0x42}, 500)...), "truncated_image"},
		{"jpeg cut in its header", good[:120], "truncated_image"},
		{"jpeg with zero size", badSOF, "corrupt_image"},
		{"png cut in its header", encodePNG(t, quadrants(8, 8))[:20], "truncated_image"},
	}
	c := newCompressor(t, 1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Compress(context.Background(), imaging.Source{Data: tt.data}, imaging.Preset{MaxWidth: 100, MaxHeight: 100})
			var f *imaging.Failure
			if !errors.As(err, &f) || f.Code != tt.code || !errors.Is(err, imaging.ErrPermanent) {
				t.Errorf("Compress() error = %v, want permanent %s", err, tt.code)
			}
			_, _, err = c.Variants(context.Background(), imaging.Source{Data: tt.data}, []imaging.Preset{{MaxWidth: 100, MaxHeight: 100}})
			if !errors.As(err, &f) || f.Code != tt.code || !errors.Is(err, imaging.ErrPermanent) {
				t.Errorf("Variants() error = %v, want permanent %s", err, tt.code)
			}
		})
	}
}

func TestCompressBadPreset(t *testing.T) {
	t.Parallel()
	c := newCompressor(t, 1)
	src := imaging.Source{Data: encodeJPEG(t, quadrants(16, 16))}
	for _, p := range []imaging.Preset{{MaxWidth: 0, MaxHeight: 10}, {MaxWidth: 10, MaxHeight: 10, Quality: 101},
		{MaxWidth: 10, MaxHeight: 10, Format: "png"}} {
		if _, err := c.Compress(context.Background(), src, p); err == nil || errors.Is(err, imaging.ErrPermanent) {
			t.Errorf("Compress(preset %+v) error = %v, want a non-permanent error", p, err)
		}
		if _, _, err := c.Variants(context.Background(), src, []imaging.Preset{{MaxWidth: 10, MaxHeight: 10}, p}); err == nil || errors.Is(err, imaging.ErrPermanent) {
			t.Errorf("Variants(preset %+v) error = %v, want a non-permanent error", p, err)
		}
	}
}

func TestCompressWaitsForSlot(t *testing.T) {
	t.Parallel()
	c := newCompressor(t, 1)
	release, err := c.HoldSlot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	src := imaging.Source{Data: encodeJPEG(t, quadrants(16, 16))}
	p := imaging.Preset{MaxWidth: 10, MaxHeight: 10}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.Compress(ctx, src, p)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, imaging.ErrPermanent) {
		t.Errorf("Compress() with all slots busy until the deadline: error = %v, want context.DeadlineExceeded", err)
	}
	_, _, err = c.Variants(ctx, src, []imaging.Preset{p})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, imaging.ErrPermanent) {
		t.Errorf("Variants() with all slots busy until the deadline: error = %v, want context.DeadlineExceeded", err)
	}

	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := c.Compress(cancelled, src, p); !errors.Is(err, context.Canceled) {
		t.Errorf("Compress() with a cancelled context: error = %v, want context.Canceled", err)
	}

	if _, _, err := c.Variants(cancelled, src, []imaging.Preset{p}); !errors.Is(err, context.Canceled) {
		t.Errorf("Variants() with a cancelled context: error = %v, want context.Canceled", err)
	}

	release()
	if _, err := c.Compress(context.Background(), src, p); err != nil {
		t.Errorf("Compress() after the slot was freed: error = %v", err)
	}
	if _, _, err := c.Variants(context.Background(), src, []imaging.Preset{p}); err != nil {
		t.Errorf("Variants() after the slot was freed: error = %v", err)
	}
}

// TestCompressConcurrent runs more compressions than slots at once (and,
// under -race, checks the package for data races).
func TestCompressConcurrent(t *testing.T) {
	t.Parallel()
	c := newCompressor(t, 2)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			src := withJPEGMetadata(encodeJPEG(t, stored(quadrants(96, 64), i%8+1)), i%8+1)
			out, err := c.Compress(context.Background(), imaging.Source{Data: src}, imaging.Preset{MaxWidth: 48, MaxHeight: 48})
			if err == nil && (out.Width != 48 || out.Height != 32) {
				err = fmt.Errorf("orientation %d: got %d×%d, want 48×32", i%8+1, out.Width, out.Height)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestOutputSettings: the background counts in the preset set only when it
// is not the default white, whichever case it is written in, and is named
// the same way however it was written.
func TestOutputSettings(t *testing.T) {
	for _, tt := range []struct {
		bg   string
		want []string
	}{
		{"#ffffff", nil},
		{"#FFFFFF", nil},
		{"#000000", []string{"background=#000000"}},
		{"#1A2b3C", []string{"background=#1a2b3c"}},
	} {
		cfg := vips.DefaultConfig()
		cfg.Background = tt.bg
		if got := cfg.OutputSettings(); !slices.Equal(got, tt.want) {
			t.Errorf("background %s: OutputSettings() = %q, want %q", tt.bg, got, tt.want)
		}
	}
}
