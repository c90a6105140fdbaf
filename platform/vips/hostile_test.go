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
	"testing"
	"time"

	_ "golang.org/x/image/webp" // image.Decode of WebP outputs

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/imaging/imagingtest"
)

// TestCompressHostile feeds Compress one crafted file per class of hostile
// input and checks that each is refused with its code, before libvips
// allocates what the file asks for, and quickly.
func TestCompressHostile(t *testing.T) {
	t.Parallel()
	photo, err := os.ReadFile("../../testdata/rot6-Dune.jpg")
	if err != nil {
		t.Fatal(err)
	}
	png := imagingtest.PNG(t, imagingtest.Gradient(300, 200))
	gifData := imagingtest.AnimatedGIF(t, 40, 30, 3)
	webpData := toWebP(t, imagingtest.JPEG(t, imagingtest.Gradient(300, 200)))
	tests := []struct {
		name string
		data []byte
		code string
	}{
		// A 29-byte GIF whose 1×1 screen grows to 20000² with its first frame.
		{"gif frame larger than its screen", imagingtest.GIFFrames(1, 1, imagingtest.Rect{W: 20000, H: 20000}), "too_many_pixels"},
		{"gif frame placed far off its screen", imagingtest.GIFFrames(1, 1, imagingtest.Rect{X: 60000, Y: 60000, W: 1, H: 1}), "too_many_pixels"},
		{"gif frame one side too long", imagingtest.GIFFrames(10, 10, imagingtest.Rect{W: 30000, H: 2}), "side_too_long"},
		{"gif screen declaring 65535²", imagingtest.GIFFrames(65535, 65535, imagingtest.Rect{W: 1, H: 1}), "too_many_pixels"},
		{"png declaring 100000²", imagingtest.PNGDeclaring(100000, 100000), "too_many_pixels"},
		{"png declaring 2^31-1 × 1", imagingtest.PNGDeclaring(1<<31-1, 1), "too_many_pixels"},
		{"png declaring a 30000 px side", imagingtest.PNGDeclaring(30000, 10), "side_too_long"},
		{"jpeg declaring 65535²", imagingtest.JPEGDeclaring(t, 65535, 65535), "too_many_pixels"},
		{"webp canvas of 16384²", imagingtest.WebPCanvas(16384, 16384, webpData), "too_many_pixels"},
		{"png metadata zlib bomb", imagingtest.PNGMetadataBomb(4, 2<<20), "metadata_too_large"},
		{"jpeg with 1000 scans", imagingtest.JPEGScans(t, 1000), "too_many_scans"},
		{"jpeg truncated", photo[:len(photo)*6/10], "truncated_image"},
		{"jpeg corrupt pixel data", imagingtest.CorruptJPEGData(photo), "decode_failed"},
		{"png truncated", png[:len(png)/2], "truncated_image"},
		{"png corrupt pixel data", imagingtest.CorruptPNGData(png), "decode_failed"},
		{"gif truncated in a frame", gifData[:len(gifData)/2], "truncated_image"},
		{"webp truncated", webpData[:len(webpData)-40], "truncated_image"},
	}
	c := newCompressor(t, 2)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			out, err := c.Compress(context.Background(), imaging.Source{Data: tt.data}, imaging.Preset{Name: "main", MaxWidth: 1600, MaxHeight: 1600})
			var f *imaging.Failure
			if !errors.As(err, &f) || f.Code != tt.code || !errors.Is(err, imaging.ErrPermanent) {
				t.Fatalf("Compress(%d bytes) = %s %d×%d, %v; want permanent %s", len(tt.data), out.Format, out.Width, out.Height, err, tt.code)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("Compress() took %v to refuse it, want well under 2s", took)
			}
			start = time.Now()
			outs, _, err := c.Variants(context.Background(), imaging.Source{Data: tt.data}, workerPresets())
			if !errors.As(err, &f) || f.Code != tt.code || !errors.Is(err, imaging.ErrPermanent) || outs != nil {
				t.Fatalf("Variants(%d bytes) = %d outputs, %v; want none, permanent %s", len(tt.data), len(outs), err, tt.code)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("Variants() took %v to refuse it, want well under 2s", took)
			}
		})
	}
}

// TestCompressExtremeAspect checks that long thin images, which are
// legitimate (banners, strips), are processed, never with a 0-px side.
func TestCompressExtremeAspect(t *testing.T) {
	t.Parallel()
	c := newCompressor(t, 2)
	for _, sz := range []struct{ w, h, wantW, wantH int }{
		{8000, 3, 1600, 1}, {3, 8000, 1, 1600}, {20000, 1, 1600, 1}, {1, 20000, 1, 1600}, {5000, 40, 1600, 13},
	} {
		img := imagingtest.Gradient(sz.w, sz.h)
		jpg := imagingtest.JPEG(t, img)
		for _, src := range []struct {
			format string
			data   []byte
		}{{"jpeg", jpg}, {"png", imagingtest.PNG(t, img)}, {"webp", webpOrNil(t, jpg, sz.w, sz.h)}} {
			if src.data == nil {
				continue // WebP holds at most 16383 px a side
			}
			t.Run(src.format+" "+fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
				t.Parallel()
				out, err := c.Compress(context.Background(), imaging.Source{Data: src.data}, imaging.Preset{MaxWidth: 1600, MaxHeight: 1600})
				if err != nil {
					t.Fatalf("Compress(%s %d×%d) error = %v", src.format, sz.w, sz.h, err)
				}
				if out.Width != sz.wantW || out.Height != sz.wantH {
					t.Errorf("Compress(%s %d×%d) = %d×%d, want %d×%d", src.format, sz.w, sz.h, out.Width, out.Height, sz.wantW, sz.wantH)
				}
				outs, _, err := c.Variants(context.Background(), imaging.Source{Data: src.data}, []imaging.Preset{{MaxWidth: 1600, MaxHeight: 1600}, {MaxWidth: 320, MaxHeight: 320}})
				if err != nil || outs[0].Width != sz.wantW || outs[0].Height != sz.wantH || outs[1].Width < 1 || outs[1].Height < 1 {
					t.Errorf("Variants(%s %d×%d) = %+v, %v; want %d×%d first and no 0-px side", src.format, sz.w, sz.h, outs, err, sz.wantW, sz.wantH)
				}
				if out.Format == imaging.FormatJPEG {
					if _, err := jpeg.Decode(bytes.NewReader(out.Data)); err != nil {
						t.Errorf("output does not decode: %v", err)
					}
				}
			})
		}
	}
}

// TestCompressAnimated checks the rule for animations: the first frame
// only, at the canvas size.
func TestCompressAnimated(t *testing.T) {
	t.Parallel()
	c := newCompressor(t, 1)
	out, err := c.Compress(context.Background(), imaging.Source{Data: imagingtest.AnimatedGIF(t, 40, 30, 3)}, imaging.Preset{MaxWidth: 100, MaxHeight: 100})
	if err != nil {
		t.Fatalf("Compress(animated gif) error = %v", err)
	}
	if out.Width != 40 || out.Height != 30 {
		t.Fatalf("Compress(animated gif) = %d×%d, want 40×30 (one frame)", out.Width, out.Height)
	}
	img, _, err := image.Decode(bytes.NewReader(out.Data))
	if err != nil {
		t.Fatalf("decode %s output: %v", out.Format, err)
	}
	if got := img.At(20, 15); !near(got, color.RGBA{220, 30, 30, 255}, 30) {
		t.Errorf("pixel = %v, want the first frame's red", got)
	}
}

func webpOrNil(tb testing.TB, jpg []byte, w, h int) []byte {
	if w > 16383 || h > 16383 {
		return nil
	}
	return toWebP(tb, jpg)
}
