package vips_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	_ "image/png" // decodes the sources
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/h2non/bimg"
	_ "golang.org/x/image/webp" // decodes sources and outputs

	"github.com/pms-dev/pms/imaging"
)

// sharedImages is the shared photo corpus next to the checkout, used when
// it is there (testdata always is).
var sharedImages = filepath.Join("..", "..", "..", "shared", "images")

// realPhotos returns the paths of testdata's photos and, when present, the
// shared corpus's JPEG, PNG and WebP photos.
func realPhotos(t *testing.T) []string {
	t.Helper()
	paths := []string{filepath.Join("..", "..", "testdata", "rot6-Dune.jpg")}
	entries, err := os.ReadDir(sharedImages)
	if err != nil {
		t.Logf("no shared images (%v): testdata only", err)
		return paths
	}
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".jpg", ".png", ".webp":
			paths = append(paths, filepath.Join(sharedImages, e.Name()))
		}
	}
	return paths
}

// uprightSize returns the size of the photo at path as displayed: libvips'
// header, turned by its EXIF orientation.
func uprightSize(t *testing.T, data []byte) (int, int) {
	t.Helper()
	img := bimg.NewImage(data)
	size, err := img.Size()
	if err != nil {
		t.Fatalf("read size: %v", err)
	}
	meta, err := img.Metadata()
	if err != nil {
		t.Fatalf("read metadata: %v", err)
	}
	if meta.Orientation >= 5 {
		return size.Height, size.Width
	}
	return size.Width, size.Height
}

// TestCompressLadderRealPhotos makes the default ladder of every real
// photo: each rung decodes as its format, is as wide as its width or the
// source (never upscaled) with the source's aspect, and carries no
// metadata. AVIF, which no Go decoder reads, is checked through libvips on
// one rung of every fifth photo (its encoder is slow).
func TestCompressLadderRealPhotos(t *testing.T) {
	if testing.Short() {
		t.Skip("compresses every real photo")
	}
	t.Parallel()
	c := newCompressor(t, 1)
	ladder := imaging.DefaultLadder()
	ladder.Formats = append(ladder.Formats, imaging.FormatAVIF)
	for i, path := range realPhotos(t) {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		srcW, srcH := uprightSize(t, src)
		done := map[string]bool{}
		for _, rung := range ladder.Presets() {
			if done[rung.Format] || (rung.Format == imaging.FormatAVIF && (i%5 != 0 || rung.MaxWidth != 1024)) {
				continue
			}
			what := fmt.Sprintf("%s %s", filepath.Base(path), rung.Name)
			out, err := c.Compress(context.Background(), imaging.Source{Data: src}, rung)
			if err != nil {
				t.Fatalf("Compress(%s) error = %v", what, err)
			}
			done[rung.Format] = out.Width < rung.MaxWidth || out.Width >= srcW
			wantW := min(rung.MaxWidth, srcW)
			wantH := (srcH*wantW + srcW/2) / srcW
			if out.Format != rung.Format || out.Width != wantW || abs(out.Height-wantH) > 1 {
				t.Errorf("Compress(%s) = %s %d×%d, want %s %d×%d (source %d×%d)", what, out.Format, out.Width, out.Height, rung.Format, wantW, wantH, srcW, srcH)
			}
			checkDecodes(t, what, out)
			checkNoMetadata(t, out.Data)
			switch out.Format {
			case imaging.FormatJPEG:
				checkJPEGStripped(t, out.Data)
			case imaging.FormatWebP:
				checkWebPStripped(t, out.Data)
			}
		}
	}
}

// checkDecodes decodes out (AVIF through libvips) and checks it has the
// size and format out says.
func checkDecodes(t *testing.T, what string, out imaging.Output) {
	t.Helper()
	if out.Format == imaging.FormatAVIF {
		img := bimg.NewImage(out.Data)
		size, err := img.Size()
		if err != nil || img.Type() != "avif" || size.Width != out.Width || size.Height != out.Height {
			t.Errorf("%s: libvips reads a %s %d×%d (%v), want avif %d×%d", what, img.Type(), size.Width, size.Height, err, out.Width, out.Height)
		}
		if meta, err := img.Metadata(); err != nil || meta.EXIF.Make != "" || bytes.Contains(out.Data, []byte("Exif")) {
			t.Errorf("%s: AVIF carries EXIF (%v)", what, err)
		}
		return
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(out.Data))
	if err != nil || format != out.Format || cfg.Width != out.Width || cfg.Height != out.Height {
		t.Errorf("%s: decodes as %s %d×%d (%v), want %s %d×%d", what, format, cfg.Width, cfg.Height, err, out.Format, out.Width, out.Height)
	}
	if _, _, err := image.Decode(bytes.NewReader(out.Data)); err != nil {
		t.Errorf("%s: does not decode: %v", what, err)
	}
}

// TestSampleRealPhotos samples every real photo, and a cut-out, as the
// worker does for its placeholder: the sample is the upright source fitted
// in 100×100, and its ThumbHash decodes to the source's aspect (to within
// ThumbHash's rounding: half a step of 7 on the short side, 5 with alpha).
func TestSampleRealPhotos(t *testing.T) {
	t.Parallel()
	c := newCompressor(t, 1)
	paths := realPhotos(t)
	srcs := map[string][]byte{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		srcs[filepath.Base(p)] = data
	}
	srcs["cutout.png"] = encodePNG(t, cutout(300, 200))
	for name, data := range srcs {
		gate, err := imaging.ReadHeader(data)
		if err != nil {
			t.Fatalf("ReadHeader(%s) error = %v", name, err)
		}
		src := imaging.Source{Data: data, Header: gate}
		s, err := c.Sample(context.Background(), src)
		if err != nil {
			t.Fatalf("Sample(%s) error = %v", name, err)
		}
		w, h := uprightSize(t, data)
		if s.Width != w || s.Height != h || max(s.W, s.H) != min(100, max(w, h)) || len(s.Pix) != s.W*s.H*4 {
			t.Errorf("Sample(%s) = source %d×%d, sample %d×%d of %d bytes; want source %d×%d, sample 100 px on its long side",
				name, s.Width, s.Height, s.W, s.H, len(s.Pix), w, h)
		}
		if d := float64(s.W)/float64(s.H) - float64(w)/float64(h); d*float64(min(s.H, s.W)) > 1 || d*float64(min(s.H, s.W)) < -1 {
			t.Errorf("Sample(%s) is %d×%d, not the %d×%d source's aspect", name, s.W, s.H, w, h)
		}
		facts, err := imaging.Facts(src, s)
		if err != nil {
			t.Fatalf("Facts(%s) error = %v", name, err)
		}
		if facts.Width != w || facts.Height != h || facts.Format != gate.Format || facts.Bytes != int64(len(data)) || len(facts.Color) != 7 {
			t.Errorf("Facts(%s) = %+v, want %d×%d %s of %d bytes and a #rrggbb colour", name, facts, w, h, gate.Format, len(data))
		}
		hash, err := base64.StdEncoding.DecodeString(facts.ThumbHash)
		if err != nil || len(hash) > 30 {
			t.Fatalf("Facts(%s).ThumbHash = %q (%v), want base64 of at most 30 bytes", name, facts.ThumbHash, err)
		}
		checkThumbHashAspect(t, name, hash, w, h, name == "cutout.png")
	}
}

// checkThumbHashAspect fails unless hash decodes to an image in the w×h
// source's orientation and aspect, to within ThumbHash's rounding.
func checkThumbHashAspect(t *testing.T, what string, hash []byte, w, h int, alpha bool) {
	t.Helper()
	steps := 7.0
	if alpha {
		steps = 5
	}
	dw, dh, pix, err := imaging.DecodeThumbHash(hash)
	if err != nil || len(pix) != dw*dh*4 {
		t.Fatalf("%s: DecodeThumbHash() = %d×%d, %d bytes, %v", what, dw, dh, len(pix), err)
	}
	ratio, _ := imaging.ThumbHashAspect(hash)
	if w != h && (w > h) != (dw > dh) {
		t.Errorf("%s: placeholder %d×%d, want the %d×%d source's orientation", what, dw, dh, w, h)
	}
	long, short := float64(max(w, h)), float64(min(w, h))
	got := max(ratio, 1/ratio)
	if diff := steps*short/long - steps/got; diff > 0.5+1e-9 || diff < -0.5-1e-9 {
		t.Errorf("%s: placeholder aspect %.3f, source %.3f: off by %.2f of %v steps, want at most half a step", what, ratio, float64(w)/float64(h), diff, steps)
	}
	if d := float64(max(dw, dh))/float64(min(dw, dh)) - got; max(dw, dh) != 32 || d*float64(min(dw, dh)) > got+1 || d*float64(min(dw, dh)) < -got-1 {
		t.Errorf("%s: placeholder renders %d×%d, want 32 px on its long side at aspect %.3f", what, dw, dh, got)
	}
	if alpha && pix[3] == 255 && pix[len(pix)-1] == 255 {
		t.Errorf("%s: placeholder of a cut-out is opaque at its corners", what)
	}
}

// cutout returns a w×h image: an opaque red disc on a transparent
// background whose colour is black, as most cut-out tools leave it.
func cutout(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	r := float64(min(w, h)) * 0.4
	for y := range h {
		for x := range w {
			dx, dy := float64(x)-float64(w)/2+0.5, float64(y)-float64(h)/2+0.5
			if dx*dx+dy*dy <= r*r {
				img.SetNRGBA(x, y, color.NRGBA{200, 30, 30, 255})
			}
		}
	}
	return img
}
