package vips_test

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/h2non/bimg"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/vips"
)

// Marker strings planted in generated metadata; none may survive.
const (
	testCamera = "PMS-TEST-CAMERA"
	testXMP    = "PMS-TEST-XMP"
)

// testConfig is the production configuration with maxConcurrent slots.
func testConfig(maxConcurrent int) vips.Config {
	c := vips.DefaultConfig()
	c.MaxConcurrent = maxConcurrent
	return c
}

func newCompressor(tb testing.TB, maxConcurrent int) *vips.Compressor {
	tb.Helper()
	c, err := vips.New(testConfig(maxConcurrent), imaging.DefaultLimits)
	if err != nil {
		tb.Fatalf("New() error = %v", err)
	}
	return c
}

// Quadrant colours of the upright test image.
var (
	red    = color.RGBA{220, 30, 30, 255}
	green  = color.RGBA{30, 200, 30, 255}
	blue   = color.RGBA{30, 30, 220, 255}
	yellow = color.RGBA{230, 220, 30, 255}
)

// quadrants returns a w×h image: red top left, green top right, blue bottom
// left, yellow bottom right.
func quadrants(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := red
			switch {
			case x >= w/2 && y < h/2:
				c = green
			case x < w/2 && y >= h/2:
				c = blue
			case x >= w/2 && y >= h/2:
				c = yellow
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

// stored returns how a camera would store the upright image up so that
// EXIF orientation o turns it upright again.
func stored(up image.Image, o int) *image.RGBA {
	uw, uh := up.Bounds().Dx(), up.Bounds().Dy()
	w, h := uw, uh
	if o >= 5 {
		w, h = uh, uw
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for sy := range h {
		for sx := range w {
			dx, dy := sx, sy // where stored pixel (sx, sy) is displayed
			switch o {
			case 2:
				dx = w - 1 - sx
			case 3:
				dx, dy = w-1-sx, h-1-sy
			case 4:
				dy = h - 1 - sy
			case 5:
				dx, dy = sy, sx
			case 6:
				dx, dy = h-1-sy, sx
			case 7:
				dx, dy = h-1-sy, w-1-sx
			case 8:
				dx, dy = sy, w-1-sx
			}
			img.Set(sx, sy, up.At(dx, dy))
		}
	}
	return img
}

func encodeJPEG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		tb.Fatalf("encode jpeg: %v", err)
	}
	return b.Bytes()
}

func encodePNG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		tb.Fatalf("encode png: %v", err)
	}
	return b.Bytes()
}

// exifTIFF returns an EXIF TIFF structure with Make, Orientation and a GPS
// IFD (version and latitude reference).
func exifTIFF(orientation int) []byte {
	le := binary.LittleEndian
	var b bytes.Buffer
	b.WriteString("II*\x00")
	_ = binary.Write(&b, le, uint32(8))
	entry := func(tag, typ uint16, count, value uint32) {
		_ = binary.Write(&b, le, tag)
		_ = binary.Write(&b, le, typ)
		_ = binary.Write(&b, le, count)
		_ = binary.Write(&b, le, value)
	}
	const ifd0, gps, makeAt = 8, 8 + 2 + 3*12 + 4, 8 + 2 + 3*12 + 4 + 2 + 2*12 + 4
	_ = binary.Write(&b, le, uint16(3))
	entry(0x010F, 2, uint32(len(testCamera)+1), makeAt) // Make, ASCII
	entry(0x0112, 3, 1, uint32(orientation))            // Orientation, SHORT
	entry(0x8825, 4, 1, gps)                            // GPS IFD pointer, LONG
	_ = binary.Write(&b, le, uint32(0))
	_ = binary.Write(&b, le, uint16(2))
	entry(0x0000, 1, 4, le.Uint32([]byte{2, 2, 0, 0}))   // GPSVersionID, BYTE
	entry(0x0001, 2, 2, le.Uint32([]byte{'N', 0, 0, 0})) // GPSLatitudeRef, ASCII
	_ = binary.Write(&b, le, uint32(0))
	b.WriteString(testCamera + "\x00")
	return b.Bytes()
}

func xmpPacket() []byte {
	return []byte(`<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">` +
		`<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="` + testXMP + `"/></rdf:RDF></x:xmpmeta>`)
}

// withJPEGMetadata inserts an EXIF segment (with the given orientation, a
// camera make and GPS tags) and an XMP segment after the SOI marker.
func withJPEGMetadata(data []byte, orientation int) []byte {
	seg := func(payload []byte) []byte {
		s := []byte{0xFF, 0xE1, 0, 0}
		binary.BigEndian.PutUint16(s[2:], uint16(len(payload)+2))
		return append(s, payload...)
	}
	out := append([]byte{}, data[:2]...)
	out = append(out, seg(append([]byte("Exif\x00\x00"), exifTIFF(orientation)...))...)
	out = append(out, seg(append([]byte("http://ns.adobe.com/xap/1.0/\x00"), xmpPacket()...))...)
	return append(out, data[2:]...)
}

// setOrientation returns a copy of a JPEG with its EXIF Orientation tag
// changed in place.
func setOrientation(tb testing.TB, data []byte, o uint16) []byte {
	tb.Helper()
	out := append([]byte{}, data...)
	i := bytes.Index(out, []byte("Exif\x00\x00"))
	if i < 0 {
		tb.Fatal("setOrientation: no EXIF segment")
	}
	tiff := out[i+6:]
	var bo binary.ByteOrder = binary.LittleEndian
	if string(tiff[:2]) == "MM" {
		bo = binary.BigEndian
	}
	ifd := tiff[bo.Uint32(tiff[4:8]):]
	for n, e := 0, int(bo.Uint16(ifd)); n < e; n++ {
		entry := ifd[2+12*n:]
		if bo.Uint16(entry) == 0x0112 {
			bo.PutUint16(entry[8:], o)
			return out
		}
	}
	tb.Fatal("setOrientation: no Orientation tag")
	return nil
}

// jpegMarkers returns the markers of a JPEG up to its first scan.
func jpegMarkers(tb testing.TB, data []byte) []byte {
	tb.Helper()
	var markers []byte
	for i := 2; i+4 <= len(data); {
		if data[i] != 0xFF {
			tb.Fatalf("jpegMarkers: no marker at byte %d", i)
		}
		m := data[i+1]
		markers = append(markers, m)
		if m == 0xDA {
			break
		}
		i += 2 + int(binary.BigEndian.Uint16(data[i+2:]))
	}
	return markers
}

type chunk struct {
	fourCC string
	data   []byte
}

// webpChunks splits a WebP file into its chunks, checking the RIFF size.
func webpChunks(tb testing.TB, data []byte) []chunk {
	tb.Helper()
	if string(data[:4]) != "RIFF" || string(data[8:12]) != "WEBP" {
		tb.Fatalf("webpChunks: not a RIFF WebP file")
	}
	if got := int(binary.LittleEndian.Uint32(data[4:8])); got != len(data)-8 {
		tb.Fatalf("webpChunks: RIFF size %d, want %d", got, len(data)-8)
	}
	var cs []chunk
	for b := data[12:]; len(b) >= 8; {
		n := int(binary.LittleEndian.Uint32(b[4:8]))
		cs = append(cs, chunk{string(b[:4]), b[8 : 8+n]})
		b = b[min(len(b), 8+n+n%2):]
	}
	return cs
}

func buildWebP(cs []chunk) []byte {
	out := []byte("RIFF\x00\x00\x00\x00WEBP")
	for _, c := range cs {
		out = append(out, c.fourCC...)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(c.data)))
		out = append(out, c.data...)
		if len(c.data)%2 == 1 {
			out = append(out, 0)
		}
	}
	binary.LittleEndian.PutUint32(out[4:8], uint32(len(out)-8))
	return out
}

// withWebPMetadata adds EXIF and XMP chunks to a WebP file that has a VP8X
// chunk, and sets its flags.
func withWebPMetadata(tb testing.TB, data []byte) []byte {
	tb.Helper()
	cs := webpChunks(tb, data)
	if cs[0].fourCC != "VP8X" {
		tb.Fatalf("withWebPMetadata: first chunk %q, want VP8X", cs[0].fourCC)
	}
	cs[0].data = append([]byte{}, cs[0].data...)
	cs[0].data[0] |= 0x08 | 0x04
	cs = append(cs, chunk{"EXIF", exifTIFF(1)}, chunk{"XMP ", xmpPacket()})
	return buildWebP(cs)
}

// toWebP converts an image with bimg; libvips 8.14 keeps its metadata.
func toWebP(tb testing.TB, data []byte) []byte {
	tb.Helper()
	out, err := bimg.Resize(data, bimg.Options{Type: bimg.WEBP, Quality: 90})
	if err != nil {
		tb.Fatalf("convert to webp: %v", err)
	}
	return out
}

// near reports whether two colours differ by at most tol in every channel.
func near(a, b color.Color, tol int) bool {
	ar, ag, ab, aa := a.RGBA()
	br, bg, bb, ba := b.RGBA()
	d := func(x, y uint32) bool { return abs(int(x>>8)-int(y>>8)) <= tol }
	return d(ar, br) && d(ag, bg) && d(ab, bb) && d(aa, ba)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// forbidden are byte strings that only metadata would put in an output.
var forbidden = []string{"Exif\x00\x00", "http://ns.adobe.com/xap", testCamera, testXMP, "Canon", "ICC_PROFILE"}

func checkNoMetadata(t *testing.T, out []byte) {
	t.Helper()
	for _, s := range forbidden {
		if bytes.Contains(out, []byte(s)) {
			t.Errorf("output contains %q", s)
		}
	}
}
