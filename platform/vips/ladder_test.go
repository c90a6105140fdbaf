package vips_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
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
			done[rung.Format] = out.Width < rung.MaxWidth
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
