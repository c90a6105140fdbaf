package imaging_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pms-dev/pms/imaging"
)

func fetchRGBA(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = byte(i * 7)
	}
	return m
}

func fetchPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, fetchRGBA(w, h)); err != nil {
		t.Fatalf("png.Encode() error = %v", err)
	}
	return b.Bytes()
}

func fetchJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, fetchRGBA(w, h), nil); err != nil {
		t.Fatalf("jpeg.Encode() error = %v", err)
	}
	return b.Bytes()
}

func fetchGIF(t testing.TB, w, h int) []byte {
	t.Helper()
	m := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{color.Black, color.White})
	var b bytes.Buffer
	if err := gif.Encode(&b, m, nil); err != nil {
		t.Fatalf("gif.Encode() error = %v", err)
	}
	return b.Bytes()
}

func fetchTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatalf("read testdata: %v", err)
	}
	return b
}

// fetchPNGHeader returns a PNG signature and an IHDR chunk (8-bit RGB)
// declaring w×h pixels, with a correct CRC: a complete header and no pixels.
func fetchPNGHeader(w, h uint32) []byte {
	data := binary.BigEndian.AppendUint32(nil, w)
	data = binary.BigEndian.AppendUint32(data, h)
	data = append(data, 8, 2, 0, 0, 0) // bit depth, colour type RGB, compression, filter, interlace
	chunk := append([]byte("IHDR"), data...)
	b := []byte("\x89PNG\r\n\x1a\n")
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	b = append(b, chunk...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(chunk))
}

// fetchGIFHeader returns a GIF header and logical screen descriptor of w×h.
func fetchGIFHeader(w, h uint16) []byte {
	b := binary.LittleEndian.AppendUint16([]byte("GIF89a"), w)
	b = binary.LittleEndian.AppendUint16(b, h)
	return append(b, 0, 0, 0) // no global colour table, background, aspect
}

// fetchWebPHeader returns a RIFF header and a VP8X chunk declaring a w×h canvas.
func fetchWebPHeader(w, h uint32) []byte {
	b := binary.LittleEndian.AppendUint32([]byte("RIFF"), 4+8+10)
	b = append(b, "WEBPVP8X"...)
	b = binary.LittleEndian.AppendUint32(b, 10)
	b = append(b, 0, 0, 0, 0)
	b = append(b, byte(w-1), byte((w-1)>>8), byte((w-1)>>16))
	return append(b, byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
}

// fetchJPEGHeader returns SOI, a baseline SOF0 declaring w×h and the start
// of a scan header: enough for image.DecodeConfig.
func fetchJPEGHeader(w, h uint16) []byte {
	b := []byte{0xff, 0xd8, 0xff, 0xc0, 0x00, 0x11, 8}
	b = binary.BigEndian.AppendUint16(b, h)
	b = binary.BigEndian.AppendUint16(b, w)
	b = append(b, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1)
	return append(b, 0xff, 0xda, 0x00, 0x0c)
}

// startFetchFileServer serves each body at its path, with a Content-Length.
func startFetchFileServer(t *testing.T, files map[string][]byte) string {
	t.Helper()
	srv := startFetchServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	}))
	return srv.URL
}

func TestFetchFormats(t *testing.T) {
	tests := []struct {
		name   string
		body   []byte
		format string
		w, h   int
	}{
		{"png", fetchPNG(t, 3, 2), imaging.FormatPNG, 3, 2},
		{"jpeg", fetchJPEG(t, 7, 5), imaging.FormatJPEG, 7, 5},
		{"gif", fetchGIF(t, 3, 9), imaging.FormatGIF, 3, 9},
		{"webp lossy", fetchTestdata(t, "fetch-5x3.webp"), imaging.FormatWebP, 5, 3},
		{"webp lossless", fetchTestdata(t, "fetch-4x7-lossless.webp"), imaging.FormatWebP, 4, 7},
		{"webp extended", fetchTestdata(t, "fetch-5x3-extended.webp"), imaging.FormatWebP, 5, 3},
	}
	files := map[string][]byte{}
	for _, tt := range tests {
		files["/"+tt.name] = tt.body
	}
	base := startFetchFileServer(t, files)
	f := fetchLoopbackFetcher(t, imaging.FetchConfig{Timeout: 5 * time.Second})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := base + "/" + tt.name + "?v=1#frag"
			got, err := f.Fetch(context.Background(), u)
			if err != nil {
				t.Fatalf("Fetch(%q) error = %v", u, err)
			}
			scans := 0
			if tt.format == imaging.FormatJPEG {
				scans = 1
			}
			want := imaging.Source{URL: u, Data: tt.body, Header: imaging.Header{Format: tt.format, Width: tt.w, Height: tt.h, Frames: 1, Scans: scans}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Fetch(%q) mismatch (-want +got):\n%s", u, diff)
			}
		})
	}
}

func TestFetchRefusesNonImages(t *testing.T) {
	badCRC := fetchPNGHeader(10, 10)
	badCRC[len(badCRC)-1]++
	tests := []struct {
		name string
		body []byte
	}{
		{"text", []byte("hello, this is not an image\n")},
		{"html", []byte("<!doctype html><html><body><img src=x></body></html>")},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>`)},
		{"bmp", append([]byte("BM"), make([]byte, 60)...)},
		{"empty", nil},
		{"one byte", []byte{0xff}},
		{"png signature only", []byte("\x89PNG\r\n\x1a\n")},
		{"png header with bad crc", badCRC},
		{"png header with zero width", fetchPNGHeader(0, 10)},
		{"gif with zero size", fetchGIFHeader(0, 0)},
		{"gif signature only", []byte("GIF89a")},
		{"jpeg soi only", []byte{0xff, 0xd8, 0xff}},
		{"riff but wave", []byte("RIFF\x24\x00\x00\x00WAVEfmt ")},
		{"webp riff header only", []byte("RIFF\x04\x00\x00\x00WEBP")},
	}
	files := map[string][]byte{}
	for _, tt := range tests {
		files["/"+tt.name] = tt.body
	}
	base := startFetchFileServer(t, files)
	f := fetchLoopbackFetcher(t, imaging.FetchConfig{Timeout: 5 * time.Second})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.Fetch(context.Background(), base+"/"+tt.name)
			fetchWantFailure(t, err, "not_an_image", true)
		})
	}
}

func TestFetchPixelCap(t *testing.T) {
	tests := []struct {
		name      string
		maxPixels int64
		body      []byte
		code      string // "" when accepted
	}{
		{"png header 30000×30000", 0, fetchPNGHeader(30000, 30000), "too_many_pixels"},
		{"png header just over the default", 0, fetchPNGHeader(7072, 7071), "too_many_pixels"},
		{"png header 2^20×2^20", 0, fetchPNGHeader(1<<20, 1<<20), "too_many_pixels"},
		{"jpeg header 60000×60000", 0, fetchJPEGHeader(60000, 60000), "too_many_pixels"},
		{"gif header 65535×65535", 0, fetchGIFHeader(65535, 65535), "too_many_pixels"},
		{"webp header 16384×16384", 0, fetchWebPHeader(16384, 16384), "too_many_pixels"},
		{"at the cap", 100, fetchPNG(t, 10, 10), ""},
		{"one row over", 100, fetchPNG(t, 10, 11), "too_many_pixels"},
		{"one wide row over", 100, fetchPNG(t, 101, 1), "too_many_pixels"},
		{"small jpeg under a small cap", 100, fetchJPEG(t, 4, 4), ""},
		{"jpeg over a small cap", 100, fetchJPEG(t, 16, 16), "too_many_pixels"},
	}
	files := map[string][]byte{}
	for _, tt := range tests {
		files["/"+tt.name] = tt.body
	}
	base := startFetchFileServer(t, files)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := imaging.DefaultLimits
			if tt.maxPixels > 0 {
				lim.MaxPixels = tt.maxPixels
			}
			f := fetchLimitedFetcher(t, imaging.FetchConfig{Timeout: 5 * time.Second}, lim)
			_, err := f.Fetch(context.Background(), base+"/"+tt.name)
			if tt.code == "" {
				if err != nil {
					t.Errorf("Fetch() error = %v, want none", err)
				}
				return
			}
			fetchWantFailure(t, err, tt.code, true)
		})
	}
}

// The pixel cap is applied as soon as the header arrives: this server sends a
// header and then stalls, and the fetch must not wait for the rest.
func TestFetchPixelCapBeforeBody(t *testing.T) {
	header := fetchPNGHeader(30000, 30000)
	srv := startFetchServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.Write(header)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	f := fetchLoopbackFetcher(t, imaging.FetchConfig{Timeout: 10 * time.Second})
	start := time.Now()
	_, err := f.Fetch(context.Background(), srv.URL)
	fetchWantFailure(t, err, "too_many_pixels", true)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Fetch() took %v, want the refusal before the body arrives", took)
	}
}

// fetchChunked encodes body as one HTTP/1.1 chunk and the final empty chunk.
func fetchChunked(body []byte) string {
	return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
}

func TestFetchByteCap(t *testing.T) {
	const maxBytes = 1024
	img := fetchPNG(t, 1, 1)
	padded := func(n int) []byte { return append(bytes.Clone(img), make([]byte, n-len(img))...) }
	big := padded(5000)
	// A JPEG whose first segment runs past the cap: the header itself is too big.
	bigHeader := append([]byte{0xff, 0xd8, 0xff, 0xe1, 0xff, 0xf0}, make([]byte, 0xfff0)...)

	srv := startFetchServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/exact":
			w.Write(padded(maxBytes))
		case "/one-over":
			w.Write(padded(maxBytes + 1))
		case "/chunked":
			for b := big; len(b) > 0; b = b[min(len(b), 300):] {
				w.Write(b[:min(len(b), 300)])
				w.(http.Flusher).Flush()
			}
		case "/honest-then-stall":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			w.Write(img[:20])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	}))
	raw := func(head string, body []byte) string {
		return startRawFetchServer(t, func(c net.Conn) {
			io.WriteString(c, head)
			c.Write(body)
		})
	}
	lying := raw("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"+fetchChunked(big), nil)
	closeDelimited := raw("HTTP/1.0 200 OK\r\n\r\n", big)
	headerPastCap := raw("HTTP/1.0 200 OK\r\n\r\n", bigHeader)

	tests := []struct {
		name, url string
		code      string // "" when accepted
	}{
		{"exactly the cap", srv.URL + "/exact", ""},
		{"one byte over, honest length", srv.URL + "/one-over", "too_large"},
		{"chunked", srv.URL + "/chunked", "too_large"},
		{"small content length with a larger chunked body", lying + "/", "too_large"},
		{"no content length, close-delimited", closeDelimited + "/", "too_large"},
		{"header past the cap", headerPastCap + "/", "too_large"},
		{"honest length over the cap, then stall", srv.URL + "/honest-then-stall", "too_large"},
	}
	f := fetchLoopbackFetcher(t, imaging.FetchConfig{MaxBytes: maxBytes, Timeout: 10 * time.Second})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			src, err := f.Fetch(context.Background(), tt.url)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Fetch(%q) took %v, want it to stop at the cap", tt.url, took)
			}
			if tt.code == "" {
				if err != nil || len(src.Data) != maxBytes {
					t.Errorf("Fetch(%q) = %d bytes, %v; want %d bytes and no error", tt.url, len(src.Data), err, maxBytes)
				}
				return
			}
			fetchWantFailure(t, err, tt.code, true)
		})
	}
}
