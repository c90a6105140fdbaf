package vips_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/vips"
)

// TestCompressHEIC compresses a HEIC photo (made here with libvips'
// heifsave, libheif and x265; it carries the camera's EXIF) into every rung
// of the ladder: each is the promised size and format, decodes, and keeps
// none of the metadata. Its sample is the upright size.
func TestCompressHEIC(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join("..", "..", "testdata", "dune.heic"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(src, []byte("Canon")) {
		t.Fatal("dune.heic carries no camera EXIF")
	}
	gate, err := imaging.ReadHeader(src)
	if err != nil || gate.Format != imaging.FormatHEIF || gate.Width != 400 || gate.Height != 640 {
		t.Fatalf("ReadHeader(dune.heic) = %+v, %v; want heif 400×640", gate, err)
	}
	c := newCompressor(t, 1)
	ladder := imaging.DefaultLadder()
	ladder.Formats = append(ladder.Formats, imaging.FormatAVIF)
	for _, rung := range ladder.Presets() {
		if rung.MaxWidth > 640 {
			continue
		}
		out, err := c.Compress(context.Background(), imaging.Source{Data: src, Header: gate}, rung)
		if err != nil {
			t.Fatalf("Compress(dune.heic, %s) error = %v", rung.Name, err)
		}
		wantW := min(rung.MaxWidth, 400)
		if out.Format != rung.Format || out.Width != wantW || abs(out.Height-wantW*640/400) > 1 {
			t.Errorf("Compress(dune.heic, %s) = %s %d×%d, want %s %d×%d", rung.Name, out.Format, out.Width, out.Height, rung.Format, wantW, wantW*640/400)
		}
		what := "dune.heic " + rung.Name
		checkDecodes(t, what, out)
		checkNoMetadata(t, out.Data)
		if bytes.Contains(out.Data, []byte("Exif")) {
			t.Errorf("%s carries EXIF", what)
		}
	}
	s, err := c.Sample(context.Background(), imaging.Source{Data: src, Header: gate})
	if err != nil || s.Width != 400 || s.Height != 640 || s.H != 100 {
		t.Errorf("Sample(dune.heic) = source %d×%d, sample %d×%d, %v; want 400×640 and 100 px high", s.Width, s.Height, s.W, s.H, err)
	}
}

// TestCompressHEICRotated: a HEIC whose primary image carries an irot
// transform (90° anticlockwise) comes out turned as it says, like a JPEG
// with an EXIF orientation: the plain file's output turned a quarter.
func TestCompressHEICRotated(t *testing.T) {
	t.Parallel()
	c := newCompressor(t, 1)
	box := imaging.Preset{Name: "box", MaxWidth: 512, MaxHeight: 512, Format: imaging.FormatJPEG, Quality: 90}
	var outs []image.Image
	for _, name := range []string{"dune.heic", "dune-irot.heic"} {
		src, err := os.ReadFile(filepath.Join("..", "..", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.Compress(context.Background(), imaging.Source{Data: src}, box)
		if err != nil {
			t.Fatalf("Compress(%s) error = %v", name, err)
		}
		img, err := jpeg.Decode(bytes.NewReader(out.Data))
		if err != nil {
			t.Fatalf("decode %s output: %v", name, err)
		}
		outs = append(outs, img)
		s, err := c.Sample(context.Background(), imaging.Source{Data: src})
		if err != nil {
			t.Fatalf("Sample(%s) error = %v", name, err)
		}
		if (s.Width > s.Height) != (out.Width > out.Height) || max(s.Width, s.Height) != 640 {
			t.Errorf("Sample(%s) says the source is %d×%d, its output is %d×%d", name, s.Width, s.Height, out.Width, out.Height)
		}
	}
	plain, rotated := outs[0].Bounds(), outs[1].Bounds()
	if plain.Dx() != 320 || plain.Dy() != 512 || rotated.Dx() != 512 || rotated.Dy() != 320 {
		t.Fatalf("outputs are %v and %v, want 320×512 and, turned, 512×320", plain.Size(), rotated.Size())
	}
	if d := meanDiffRotated(outs[0], outs[1]); d > 4 {
		t.Errorf("the irot output turned a quarter clockwise differs from the plain output by %.1f per channel, want at most 4", d)
	}
}

// TestHEICUnsupported: where libvips cannot decode HEIF, a HEIC source
// fails permanently as unsupported_format before anything is decoded.
func TestHEICUnsupported(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "testdata", "dune.heic"))
	if err != nil {
		t.Fatal(err)
	}
	defer vips.WithoutLoader(imaging.FormatHEIF)()
	c := newCompressor(t, 1)
	_, err = c.Compress(context.Background(), imaging.Source{Data: src}, imaging.Preset{Name: "p", MaxWidth: 100, MaxHeight: 100})
	if code := imaging.FailureCode(err); code != vips.CodeUnsupportedFormat || !errors.Is(err, imaging.ErrPermanent) {
		t.Errorf("Compress(heic) without a HEIF loader = %v (code %q), want a permanent %s", err, code, vips.CodeUnsupportedFormat)
	}
}
