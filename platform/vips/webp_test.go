package vips_test

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/image/webp"

	"github.com/pms-dev/pms/platform/vips"
)

func fourCCs(cs []chunk) []string {
	var s []string
	for _, c := range cs {
		s = append(s, c.fourCC)
	}
	return s
}

// TestStripWebPMetadataLibvips strips a WebP that libvips 8.14 wrote with
// the EXIF and XMP of its JPEG source.
func TestStripWebPMetadataLibvips(t *testing.T) {
	src := toWebP(t, withJPEGMetadata(encodeJPEG(t, quadrants(96, 64)), 1))
	if got := fourCCs(webpChunks(t, src)); !cmp.Equal(got, []string{"VP8X", "VP8 ", "EXIF", "XMP "}) {
		t.Fatalf("libvips WebP chunks = %q, want VP8X, VP8, EXIF, XMP (has libvips#3340 been fixed?)", got)
	}
	out, err := vips.StripWebPMetadata(src)
	if err != nil {
		t.Fatalf("StripWebPMetadata() error = %v", err)
	}
	cs := webpChunks(t, out)
	if diff := cmp.Diff([]string{"VP8X", "VP8 "}, fourCCs(cs)); diff != "" {
		t.Errorf("StripWebPMetadata() chunks (-want +got):\n%s", diff)
	}
	if cs[0].data[0] != 0 {
		t.Errorf("StripWebPMetadata() VP8X flags = %#x, want 0", cs[0].data[0])
	}
	checkNoMetadata(t, out)
	cfg, err := webp.DecodeConfig(bytes.NewReader(out))
	if err != nil || cfg.Width != 96 || cfg.Height != 64 {
		t.Errorf("DecodeConfig(stripped) = %d×%d, %v; want 96×64", cfg.Width, cfg.Height, err)
	}
	if _, err := webp.Decode(bytes.NewReader(out)); err != nil {
		t.Errorf("Decode(stripped) error = %v", err)
	}
}

func TestStripWebPMetadata(t *testing.T) {
	vp8x := []byte{0x20 | 0x10 | 0x08 | 0x04 | 0x02, 0, 0, 0, 9, 0, 0, 7, 0, 0}
	full := buildWebP([]chunk{
		{"VP8X", vp8x},
		{"ICCP", []byte("odd-sized icc")},
		{"ANIM", make([]byte, 6)},
		{"ANMF", []byte("frame")},
		{"EXIF", []byte("Exif\x00\x00II*\x00")},
		{"XMP ", []byte("<x:xmpmeta/>")},
		{"ABCD", []byte("unknown chunks are kept")},
	})
	noPad := buildWebP([]chunk{{"VP8L", []byte("abc")}})
	noPad = noPad[:len(noPad)-1]
	noPad[4]-- // RIFF size without the final pad byte
	tests := []struct {
		name      string
		in        []byte
		want      []string
		wantFlags byte
	}{
		{"all chunk kinds", full, []string{"VP8X", "ANIM", "ANMF", "ABCD"}, 0x10 | 0x02},
		{"simple lossy", buildWebP([]chunk{{"VP8 ", []byte("data")}}), []string{"VP8 "}, 0},
		{"final pad byte missing", noPad, []string{"VP8L"}, 0},
		{"trailing bytes after the RIFF", append(buildWebP([]chunk{{"VP8 ", []byte("data")}}), "junk"...), []string{"VP8 "}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := vips.StripWebPMetadata(tt.in)
			if err != nil {
				t.Fatalf("StripWebPMetadata() error = %v", err)
			}
			cs := webpChunks(t, out) // also checks the RIFF size
			if diff := cmp.Diff(tt.want, fourCCs(cs)); diff != "" {
				t.Errorf("StripWebPMetadata() chunks (-want +got):\n%s", diff)
			}
			if cs[0].fourCC == "VP8X" {
				if cs[0].data[0] != tt.wantFlags {
					t.Errorf("StripWebPMetadata() VP8X flags = %#x, want %#x", cs[0].data[0], tt.wantFlags)
				}
				if !bytes.Equal(cs[0].data[1:], vp8x[1:]) {
					t.Errorf("StripWebPMetadata() VP8X canvas = %v, want %v", cs[0].data[1:], vp8x[1:])
				}
			}
		})
	}
}

func TestStripWebPMetadataMalformed(t *testing.T) {
	ok := buildWebP([]chunk{{"VP8 ", []byte("data")}})
	overrun := append([]byte{}, ok...)
	overrun[16] = 200 // chunk size beyond the file
	bigRIFF := append([]byte{}, ok...)
	bigRIFF[4] = 200
	truncated := append(append([]byte{}, ok...), "VP8"...)
	truncated[4] += 3 // the RIFF size covers the partial chunk header
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"not riff", []byte("RIFX\x04\x00\x00\x00WEBP")},
		{"not webp", []byte("RIFF\x04\x00\x00\x00WAVE")},
		{"riff size beyond data", bigRIFF},
		{"chunk overruns", overrun},
		{"truncated chunk header", truncated},
		{"short VP8X", buildWebP([]chunk{{"VP8X", []byte{0, 0, 0}}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if out, err := vips.StripWebPMetadata(tt.in); err == nil {
				t.Errorf("StripWebPMetadata() = %d bytes, want an error", len(out))
			}
		})
	}
}
