package imaging_test

import (
	"bytes"
	"errors"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/image/webp"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/imaging/imagingtest"
)

func TestReadHeader(t *testing.T) {
	photo := imagingtest.JPEG(t, imagingtest.Gradient(64, 48))
	pngData := imagingtest.PNG(t, imagingtest.Gradient(30, 20))
	anim := imagingtest.AnimatedGIF(t, 40, 30, 3)
	lossy := fetchTestdata(t, "fetch-5x3.webp")
	tests := []struct {
		name string
		data []byte
		want imaging.Header
		code string // "" when accepted
	}{
		{"jpeg", photo, imaging.Header{Format: "jpeg", Width: 64, Height: 48, Frames: 1, Scans: 1}, ""},
		{"jpeg with trailing bytes", append(append([]byte{}, photo...), "trailer"...), imaging.Header{Format: "jpeg", Width: 64, Height: 48, Frames: 1, Scans: 1}, ""},
		{"png", pngData, imaging.Header{Format: "png", Width: 30, Height: 20, Frames: 1}, ""},
		{"animated gif", anim, imaging.Header{Format: "gif", Width: 40, Height: 30, Frames: 3}, ""},
		{"gif frame grows its screen", imagingtest.GIFFrames(1, 1, imagingtest.Rect{W: 20000, H: 30000}), imaging.Header{Format: "gif", Width: 20000, Height: 30000, Frames: 1}, ""},
		{"gif frame offset grows its screen", imagingtest.GIFFrames(10, 10, imagingtest.Rect{X: 100, Y: 5, W: 1, H: 1}), imaging.Header{Format: "gif", Width: 101, Height: 10, Frames: 1}, ""},
		{"gif later frames do not grow it", imagingtest.GIFFrames(10, 10, imagingtest.Rect{W: 1, H: 1}, imagingtest.Rect{W: 9000, H: 9000}), imaging.Header{Format: "gif", Width: 10, Height: 10, Frames: 2}, ""},
		{"gif without its trailer", anim[:len(anim)-1], imaging.Header{Format: "gif", Width: 40, Height: 30, Frames: 3}, ""},
		{"webp lossy", lossy, imaging.Header{Format: "webp", Width: 5, Height: 3, Frames: 1}, ""},
		{"webp lossless", fetchTestdata(t, "fetch-4x7-lossless.webp"), imaging.Header{Format: "webp", Width: 4, Height: 7, Frames: 1}, ""},
		{"webp extended", fetchTestdata(t, "fetch-5x3-extended.webp"), imaging.Header{Format: "webp", Width: 5, Height: 3, Frames: 1}, ""},
		{"webp animation canvas", imagingtest.WebPCanvas(9000, 8000, lossy), imaging.Header{Format: "webp", Width: 9000, Height: 8000, Frames: 1}, ""},

		{"text", []byte("hello"), imaging.Header{}, imaging.CodeNotAnImage},
		{"jpeg truncated", photo[:len(photo)-10], imaging.Header{}, imaging.CodeTruncated},
		{"jpeg without its EOI", photo[:len(photo)-2], imaging.Header{}, imaging.CodeTruncated},
		{"jpeg header only", photo[:200], imaging.Header{}, imaging.CodeTruncated},
		{"jpeg with 101 scans", imagingtest.JPEGScans(t, 101), imaging.Header{}, imaging.CodeTooManyScans},
		{"jpeg with 100 scans", imagingtest.JPEGScans(t, 100), imaging.Header{Format: "jpeg", Width: 16, Height: 16, Frames: 1, Scans: 100}, ""},
		{"png truncated", pngData[:len(pngData)-20], imaging.Header{}, imaging.CodeTruncated},
		{"png without IEND", pngData[:len(pngData)-12], imaging.Header{}, imaging.CodeTruncated},
		{"png bad crc", flipByte(pngData, 40), imaging.Header{}, imaging.CodeCorrupt},
		{"png zlib metadata bomb", imagingtest.PNGMetadataBomb(1, 8<<20), imaging.Header{}, imaging.CodeMetadataTooLarge},
		{"png many small metadata chunks", imagingtest.PNGMetadataBomb(5, 1<<20), imaging.Header{}, imaging.CodeMetadataTooLarge},
		{"png some metadata", imagingtest.PNGMetadataBomb(3, 1<<20), imaging.Header{Format: "png", Width: 1, Height: 1, Frames: 1}, ""},
		{"png zero width", imagingtest.PNGDeclaring(0, 10), imaging.Header{}, imaging.CodeCorrupt},
		{"gif truncated in a frame", anim[:len(anim)/2], imaging.Header{}, imaging.CodeTruncated},
		{"gif screen only", anim[:13], imaging.Header{}, imaging.CodeTruncated},
		{"webp truncated", lossy[:len(lossy)-4], imaging.Header{}, imaging.CodeTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := imaging.ReadHeader(tt.data)
			if tt.code != "" {
				if code := failureCodeOf(err); code != tt.code || !errors.Is(err, imaging.ErrPermanent) {
					t.Fatalf("ReadHeader() = %+v, %v; want permanent %s", got, err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadHeader() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ReadHeader() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadHeaderPhotos(t *testing.T) {
	for _, name := range []string{"../testdata/rot6-Dune.jpg"} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		h, err := imaging.ReadHeader(data)
		if err != nil || h.Width != 1680 || h.Height != 1050 {
			t.Errorf("ReadHeader(%s) = %+v, %v; want 1680×1050", name, h, err)
		}
	}
}

func TestLimitsCheck(t *testing.T) {
	lim := imaging.Limits{MaxPixels: 100, MaxSide: 20}
	tests := []struct {
		w, h int
		code string
	}{
		{10, 10, ""}, {20, 5, ""}, {11, 10, imaging.CodeTooManyPixels}, {21, 1, imaging.CodeSideTooLong}, {1, 21, imaging.CodeSideTooLong},
		{1 << 31, 1 << 31, imaging.CodeTooManyPixels},
	}
	for _, tt := range tests {
		if got := failureCodeOf(lim.Check("png", tt.w, tt.h)); got != tt.code {
			t.Errorf("Check(%d, %d) code = %q, want %q", tt.w, tt.h, got, tt.code)
		}
	}
	if err := (imaging.Limits{}).Validate(); err == nil {
		t.Error("Validate(zero Limits) = nil, want an error")
	}
}

// FuzzReadHeader checks the header gate on any bytes: it never panics,
// refuses with a permanent Failure, and what it accepts is consistent, with
// the size Go's own decoders read where they can.
func FuzzReadHeader(f *testing.F) {
	for _, seed := range [][]byte{
		imagingtest.GIFFrames(1, 1, imagingtest.Rect{W: 300, H: 200}),
		imagingtest.PNGDeclaring(40, 30),
		imagingtest.PNGMetadataBomb(1, 100),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := imaging.ReadHeader(data)
		if err != nil {
			var fl *imaging.Failure
			if !errors.As(err, &fl) || !fl.Permanent {
				t.Fatalf("ReadHeader() error = %v, want a permanent Failure", err)
			}
			return
		}
		if h.Width <= 0 || h.Height <= 0 || h.Frames < 1 || h.Format == "" {
			t.Fatalf("ReadHeader() = %+v, want a positive size, frames and a format", h)
		}
		if h.Format == imaging.FormatJPEG && (h.Scans < 1 || h.Scans > imaging.MaxJPEGScans) {
			t.Fatalf("ReadHeader() = %d scans, want 1 to %d", h.Scans, imaging.MaxJPEGScans)
		}
		cfg, err := goDecodeConfig(h.Format, data)
		if err != nil {
			return // Go's decoders are stricter in places; the size is what is compared
		}
		if h.Format == imaging.FormatGIF {
			if h.Width < cfg.Width || h.Height < cfg.Height {
				t.Fatalf("ReadHeader() = %d×%d, smaller than the %d×%d screen", h.Width, h.Height, cfg.Width, cfg.Height)
			}
		} else if h.Width != cfg.Width || h.Height != cfg.Height {
			t.Fatalf("ReadHeader() = %d×%d, Go's %s decoder reads %d×%d", h.Width, h.Height, h.Format, cfg.Width, cfg.Height)
		}
	})
}

func goDecodeConfig(format string, data []byte) (image.Config, error) {
	r := bytes.NewReader(data)
	switch format {
	case imaging.FormatJPEG:
		return jpeg.DecodeConfig(r)
	case imaging.FormatPNG:
		return png.DecodeConfig(r)
	case imaging.FormatGIF:
		return gif.DecodeConfig(r)
	}
	return webp.DecodeConfig(r)
}

func failureCodeOf(err error) string {
	var f *imaging.Failure
	if errors.As(err, &f) {
		return f.Code
	}
	return ""
}

func flipByte(data []byte, i int) []byte {
	out := append([]byte{}, data...)
	out[i] ^= 0xFF
	return out
}
