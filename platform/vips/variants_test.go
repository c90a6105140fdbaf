package vips_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/h2non/bimg"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/imaging/imagingtest"
)

// workerPresets are what the worker makes of every image by default: the
// presets, then the ladder's rungs.
func workerPresets() []imaging.Preset {
	return append(imaging.DefaultPresets(), imaging.DefaultLadder().Presets()...)
}

// variantSources returns the real photos (testdata and the shared corpus)
// and generated inputs that take other paths through libvips: alpha, EXIF
// orientations, an ICC profile, grey, 16-bit, an animation, HEIF and
// extreme aspects.
func variantSources(t *testing.T) map[string][]byte {
	t.Helper()
	srcs := map[string][]byte{}
	photos := realPhotos(t)
	if raceEnabled && len(photos) > 4 {
		// The race detector slows the Go side (decoding and comparing
		// every output) tenfold; a few photos keep make test's time, and
		// a run without -race compares them all.
		photos = photos[:4]
	}
	for _, p := range photos {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		srcs[filepath.Base(p)] = data
	}
	heic, err := os.ReadFile(filepath.Join("..", "..", "testdata", "dune.heic"))
	if err != nil {
		t.Fatal(err)
	}
	srcs["dune.heic"] = heic
	srcs["cutout.png"] = encodePNG(t, softCutout(2000))
	srcs["cutout.webp"] = toWebP(t, encodePNG(t, softCutout(1700)))
	for _, o := range []int{3, 6, 8} {
		srcs[fmt.Sprintf("quadrants-rot%d.jpg", o)] = withJPEGMetadata(encodeJPEG(t, stored(quadrants(2001, 1333), o)), o)
	}
	p3, err := bimg.Resize(encodeJPEG(t, quadrants(1999, 1201)), bimg.Options{InputICC: "srgb", OutputICC: "p3", Type: bimg.JPEG, Quality: 95})
	if err != nil {
		t.Fatalf("make P3 JPEG: %v", err)
	}
	srcs["p3.jpg"] = p3
	grey := image.NewGray16(image.Rect(0, 0, 1703, 997))
	for y := range 997 {
		for x := range 1703 {
			grey.SetGray16(x, y, color.Gray16{Y: uint16(x * 65535 / 1703)})
		}
	}
	srcs["grey16.png"] = encodePNG(t, grey)
	srcs["animated.gif"] = imagingtest.AnimatedGIF(t, 400, 300, 3)
	srcs["banner.jpg"] = imagingtest.JPEG(t, imagingtest.Gradient(8000, 3))
	srcs["strip.png"] = imagingtest.PNG(t, imagingtest.Gradient(3, 8000))
	srcs["small.png"] = imagingtest.PNG(t, imagingtest.Gradient(300, 200))
	return srcs
}

// TestVariantsMatchCompress makes the worker's variants of every source
// with one Variants call and with one Compress per preset (and Sample): each
// output has the same preset, format and size both ways, looks the same
// (a small mean difference per channel), decodes and carries no metadata;
// the samples have the same sizes.
func TestVariantsMatchCompress(t *testing.T) {
	if testing.Short() {
		t.Skip("compresses every real photo twice")
	}
	t.Parallel()
	c := newCompressor(t, 1)
	ctx := context.Background()
	presets := workerPresets()
	for name, data := range variantSources(t) {
		src := imaging.Source{Data: data}
		outs, sample, err := c.Variants(ctx, src, presets)
		if err != nil {
			t.Errorf("Variants(%s) error = %v", name, err)
			continue
		}
		if len(outs) != len(presets) {
			t.Fatalf("Variants(%s) = %d outputs, want %d", name, len(outs), len(presets))
		}
		for i, p := range presets {
			what := name + " " + p.Name
			want, err := c.Compress(ctx, src, p)
			if err != nil {
				t.Fatalf("Compress(%s) error = %v", what, err)
			}
			got := outs[i]
			if got.Preset != want.Preset || got.Format != want.Format || got.Width != want.Width || got.Height != want.Height {
				t.Errorf("Variants(%s) = %s %s %d×%d, Compress = %s %s %d×%d", what, got.Preset, got.Format, got.Width, got.Height,
					want.Preset, want.Format, want.Width, want.Height)
				continue
			}
			checkDecodes(t, what, got)
			checkNoMetadata(t, got.Data)
			switch got.Format {
			case imaging.FormatJPEG:
				checkJPEGStripped(t, got.Data)
			case imaging.FormatWebP:
				checkWebPStripped(t, got.Data)
			}
			if d := meanDiff(t, got, want); d > 3 {
				t.Errorf("Variants(%s) differs from Compress by %.2f per channel, want at most 3", what, d)
			}
		}
		want, err := c.Sample(ctx, src)
		if err != nil {
			t.Fatalf("Sample(%s) error = %v", name, err)
		}
		if sample.Width != want.Width || sample.Height != want.Height || sample.W != want.W || sample.H != want.H || len(sample.Pix) != len(want.Pix) {
			t.Errorf("Variants(%s) sample = source %d×%d, %d×%d of %d bytes; Sample = source %d×%d, %d×%d of %d bytes", name,
				sample.Width, sample.Height, sample.W, sample.H, len(sample.Pix), want.Width, want.Height, want.W, want.H, len(want.Pix))
		}
	}
}

// meanDiff returns the mean absolute difference per channel (alpha
// included) between two outputs of one size, decoded, over every third
// pixel of every third row.
func meanDiff(t *testing.T, a, b imaging.Output) float64 {
	t.Helper()
	da, _, errA := image.Decode(bytes.NewReader(a.Data))
	db, _, errB := image.Decode(bytes.NewReader(b.Data))
	if errA != nil || errB != nil {
		t.Fatalf("decode %s outputs: %v, %v", a.Format, errA, errB)
	}
	var sum, n float64
	r := da.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 3 {
		for x := r.Min.X; x < r.Max.X; x += 3 {
			r1, g1, b1, a1 := da.At(x, y).RGBA()
			r2, g2, b2, a2 := db.At(x, y).RGBA()
			sum += float64(abs(int(r1>>8)-int(r2>>8)) + abs(int(g1>>8)-int(g2>>8)) + abs(int(b1>>8)-int(b2>>8)) + abs(int(a1>>8)-int(a2>>8)))
			n += 4
		}
	}
	return sum / n
}

// TestVariantsOrientation makes a generated JPEG under each EXIF
// orientation into a full-size and a resized variant: both upright.
func TestVariantsOrientation(t *testing.T) {
	t.Parallel()
	c := newCompressor(t, 2)
	up := quadrants(96, 64)
	presets := []imaging.Preset{{Name: "full", MaxWidth: 1000, MaxHeight: 1000}, {Name: "half", MaxWidth: 48, MaxHeight: 48}, {Name: "tall", MaxWidth: 24, MaxHeight: 10000}}
	want := []struct{ w, h int }{{96, 64}, {48, 32}, {24, 16}}
	for o := 1; o <= 8; o++ {
		src := withJPEGMetadata(encodeJPEG(t, stored(up, o)), o)
		outs, sample, err := c.Variants(context.Background(), imaging.Source{Data: src}, presets)
		if err != nil {
			t.Fatalf("orientation %d: Variants() error = %v", o, err)
		}
		for i, out := range outs {
			if out.Format != imaging.FormatJPEG || out.Width != want[i].w || out.Height != want[i].h || out.Preset != presets[i].Name {
				t.Fatalf("orientation %d: Variants()[%d] = %s %d×%d preset %q, want jpeg %d×%d preset %s", o, i, out.Format, out.Width, out.Height, out.Preset, want[i].w, want[i].h, presets[i].Name)
			}
			img, _, err := image.Decode(bytes.NewReader(out.Data))
			if err != nil {
				t.Fatalf("decode output: %v", err)
			}
			checkQuadrants(t, img)
			checkJPEGStripped(t, out.Data)
		}
		if sample.Width != 96 || sample.Height != 64 || sample.W != 96 || sample.H != 64 {
			t.Errorf("orientation %d: sample = source %d×%d, %d×%d; want 96×64 both", o, sample.Width, sample.Height, sample.W, sample.H)
		}
	}
}

// TestVariantsShareEncodings: presets that come out at one size in one
// format and quality share one encoding; others do not.
func TestVariantsShareEncodings(t *testing.T) {
	t.Parallel()
	c := newCompressor(t, 1)
	src := imaging.Source{Data: encodeJPEG(t, quadrants(900, 600))}
	presets := []imaging.Preset{
		{Name: "main", MaxWidth: 1600, MaxHeight: 1600, Format: imaging.FormatAuto, Quality: 80},
		{Name: "jpeg-1024", MaxWidth: 1024, MaxHeight: 10000, Format: imaging.FormatJPEG, Quality: 80},
		{Name: "webp-1024", MaxWidth: 1024, MaxHeight: 10000, Format: imaging.FormatWebP, Quality: 80},
		{Name: "q70", MaxWidth: 900, MaxHeight: 900, Format: imaging.FormatJPEG, Quality: 70},
		{Name: "small", MaxWidth: 300, MaxHeight: 300, Format: imaging.FormatJPEG, Quality: 80},
	}
	outs, _, err := c.Variants(context.Background(), src, presets)
	if err != nil {
		t.Fatalf("Variants() error = %v", err)
	}
	same := func(i, j int) bool { return &outs[i].Data[0] == &outs[j].Data[0] }
	if !same(0, 1) || same(0, 2) || same(0, 3) || same(0, 4) {
		t.Errorf("Variants() shares main's encoding with jpeg-1024 %v, webp-1024 %v, q70 %v, small %v; want only jpeg-1024", same(0, 1), same(0, 2), same(0, 3), same(0, 4))
	}
	for i, out := range outs {
		if out.Preset != presets[i].Name {
			t.Errorf("Variants()[%d].Preset = %q, want %q", i, out.Preset, presets[i].Name)
		}
	}
}

// TestVariantsStops cancels Variants while libvips works on a large image:
// it returns soon, with an error wrapping context.Canceled and no outputs.
func TestVariantsStops(t *testing.T) {
	t.Parallel()
	c := newCompressor(t, 1)
	src := imaging.Source{Data: imagingtest.PNG(t, imagingtest.Gradient(6000, 4000))}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	outs, _, err := c.Variants(ctx, src, workerPresets())
	if !errors.Is(err, context.Canceled) || errors.Is(err, imaging.ErrPermanent) || outs != nil {
		t.Errorf("Variants() cancelled = %d outputs, %v; want none and context.Canceled", len(outs), err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Variants() took %v after being cancelled at 50ms, want it to stop soon", took)
	}
}
