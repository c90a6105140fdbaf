// Package imagingtest makes image files for tests: well-formed ones of any
// shape, and crafted hostile ones, one function per class of attack on a
// decoder. Every file is built in memory; none is fetched.
package imagingtest

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"
)

// Gradient returns a w×h image whose colour changes along both axes, so
// that any resize, crop or rotation shows.
func Gradient(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{uint8(255 * x / max(1, w-1)), uint8(255 * y / max(1, h-1)), 128, 255})
		}
	}
	return img
}

// JPEG encodes img at quality 90.
func JPEG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		tb.Fatalf("encode jpeg: %v", err)
	}
	return b.Bytes()
}

// PNG encodes img.
func PNG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		tb.Fatalf("encode png: %v", err)
	}
	return b.Bytes()
}

// AnimatedGIF returns a GIF of frames w×h frames, each a different colour,
// the first one red.
func AnimatedGIF(tb testing.TB, w, h, frames int) []byte {
	tb.Helper()
	pal := color.Palette{color.RGBA{220, 30, 30, 255}, color.RGBA{30, 200, 30, 255}, color.RGBA{30, 30, 220, 255}}
	anim := &gif.GIF{}
	for i := range frames {
		m := image.NewPaletted(image.Rect(0, 0, w, h), pal)
		for p := range m.Pix {
			m.Pix[p] = uint8(i % len(pal))
		}
		anim.Image = append(anim.Image, m)
		anim.Delay = append(anim.Delay, 10)
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, anim); err != nil {
		tb.Fatalf("encode gif: %v", err)
	}
	return b.Bytes()
}

// Rect places a GIF frame on its screen.
type Rect struct{ X, Y, W, H int }

// GIFFrames returns a GIF whose logical screen is screenW×screenH and whose
// frames cover the given rectangles, each with no more LZW data than a
// clear and an end code: a few dozen bytes, however large the frames. A
// first frame larger than its screen grows the canvas a decoder allocates.
func GIFFrames(screenW, screenH int, frames ...Rect) []byte {
	le := binary.LittleEndian
	b := []byte("GIF89a")
	b = le.AppendUint16(b, uint16(screenW))
	b = le.AppendUint16(b, uint16(screenH))
	b = append(b, 0x80, 0, 0) // a global colour table of 2 entries
	b = append(b, 0, 0, 0, 255, 255, 255)
	for _, f := range frames {
		b = append(b, 0x2C)
		for _, v := range []int{f.X, f.Y, f.W, f.H} {
			b = le.AppendUint16(b, uint16(v))
		}
		// No local table; LZW code size 2: clear (4) then end (5) in 3-bit
		// codes, least significant bit first.
		b = append(b, 0, 2, 1, 0x2C, 0)
	}
	return append(b, 0x3B)
}

// pngChunk returns a PNG chunk with its length and CRC.
func pngChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

func zlibBytes(data []byte) []byte {
	var b bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&b, zlib.BestCompression)
	_, _ = zw.Write(data)
	_ = zw.Close()
	return b.Bytes()
}

func zlibZeros(n int) []byte {
	var b bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&b, zlib.BestCompression)
	zero := make([]byte, 64<<10)
	for n > 0 {
		k := min(n, len(zero))
		_, _ = zw.Write(zero[:k])
		n -= k
	}
	_ = zw.Close()
	return b.Bytes()
}

// PNGDeclaring returns a well-formed PNG that declares w×h 8-bit RGB pixels
// but holds image data for none of them: the header a decoder sizes its
// buffers from, with almost nothing behind it.
func PNGDeclaring(w, h int) []byte {
	return pngFile(w, h, 8, 2, 0, zlibBytes([]byte{0}), nil)
}

// PNGZeros returns a PNG of w×h black pixels in the given bit depth and
// colour type (2 RGB, 6 RGBA), interlaced or not, compressed as tightly as
// zlib can: a 50 MP image takes a few hundred kilobytes.
func PNGZeros(w, h, depth, colourType int, interlaced bool) []byte {
	channels := map[int]int{0: 1, 2: 3, 4: 2, 6: 4}[colourType]
	rowBytes := func(width int) int { return 1 + (width*channels*depth+7)/8 }
	n := h * rowBytes(w)
	if interlaced {
		n = 0
		// Adam7: pass origins and steps.
		for _, p := range [][4]int{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}} {
			pw, ph := (w-p[0]+p[2]-1)/p[2], (h-p[1]+p[3]-1)/p[3]
			if pw > 0 && ph > 0 {
				n += ph * rowBytes(pw)
			}
		}
	}
	il := 0
	if interlaced {
		il = 1
	}
	return pngFile(w, h, depth, colourType, il, zlibZeros(n), nil)
}

// PNGMetadataBomb returns a 1×1 PNG with n zTXt chunks, each of which
// inflates to size bytes of text.
func PNGMetadataBomb(n, size int) []byte {
	z := append([]byte("Comment\x00\x00"), zlibZeros(size)...)
	var extra [][]byte
	for range n {
		extra = append(extra, pngChunk("zTXt", z))
	}
	return pngFile(1, 1, 8, 2, 0, zlibBytes([]byte{0, 0, 0, 0}), extra)
}

func pngFile(w, h, depth, colourType, interlace int, idat []byte, extra [][]byte) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(h))
	ihdr = append(ihdr, byte(depth), byte(colourType), 0, 0, byte(interlace))
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, pngChunk("IHDR", ihdr)...)
	for _, c := range extra {
		b = append(b, c...)
	}
	b = append(b, pngChunk("IDAT", idat)...)
	return append(b, pngChunk("IEND", nil)...)
}

// CorruptPNGData returns data, a PNG, with bytes in the middle of its first
// IDAT chunk changed and the chunk's CRC made right again: the structure is
// sound, the compressed pixels are not.
func CorruptPNGData(data []byte) []byte {
	out := append([]byte{}, data...)
	i := bytes.Index(out, []byte("IDAT"))
	n := int(binary.BigEndian.Uint32(out[i-4:]))
	body := out[i+4 : i+4+n]
	for j := n / 3; j < n/3+16 && j < n; j++ {
		body[j] ^= 0x5A
	}
	binary.BigEndian.PutUint32(out[i+4+n:], crc32.ChecksumIEEE(out[i:i+4+n]))
	return out
}

// CorruptJPEGData returns data, a baseline JPEG, with bytes of its
// entropy-coded data changed (never into 0xFF, so every marker stays where
// it was): the structure is sound, the pixels are not.
func CorruptJPEGData(data []byte) []byte {
	out := append([]byte{}, data...)
	sos := bytes.Index(out, []byte{0xFF, 0xDA})
	start := sos + 2 + int(binary.BigEndian.Uint16(out[sos+2:]))
	end := bytes.LastIndex(out, []byte{0xFF, 0xD9})
	for j := start + (end-start)/4; j < end; j += 97 {
		if out[j] != 0xFF && out[j-1] != 0xFF && out[j]^0x3C != 0xFF {
			out[j] ^= 0x3C
		}
	}
	return out
}

// JPEGDeclaring returns a JPEG frame header declaring w×h pixels (8-bit,
// three components) followed by one tiny scan: a file of a few hundred
// bytes that a decoder sizes its buffers from.
func JPEGDeclaring(tb testing.TB, w, h int) []byte {
	tb.Helper()
	small := JPEG(tb, Gradient(8, 8))
	sof := bytes.Index(small, []byte{0xFF, 0xC0})
	out := append([]byte{}, small...)
	binary.BigEndian.PutUint16(out[sof+5:], uint16(h))
	binary.BigEndian.PutUint16(out[sof+7:], uint16(w))
	return out
}

// JPEGScans returns a small JPEG whose one scan is repeated to make n
// scans: the structure of a progressive JPEG built to cost a decoder a pass
// over the image per scan.
func JPEGScans(tb testing.TB, n int) []byte {
	tb.Helper()
	small := JPEG(tb, Gradient(16, 16))
	sos := bytes.Index(small, []byte{0xFF, 0xDA})
	eoi := bytes.LastIndex(small, []byte{0xFF, 0xD9})
	out := append([]byte{}, small[:sos]...)
	for range n {
		out = append(out, small[sos:eoi]...)
	}
	return append(out, 0xFF, 0xD9)
}

// WebPCanvas returns an animated WebP whose VP8X chunk declares a w×h
// canvas and whose one frame is frame, a simple WebP file (a VP8 or VP8L
// bitstream, at most w×h): decoders of animations allocate the canvas,
// however small the frame.
func WebPCanvas(w, h int, frame []byte) []byte {
	le := binary.LittleEndian
	u24 := func(b []byte, v int) []byte { return append(b, byte(v), byte(v>>8), byte(v>>16)) }
	// Keep the frame's image chunks (ALPH, VP8, VP8L) and its size.
	var bitstream []byte
	fw, fh := 1, 1
	for rest := frame[12:]; len(rest) >= 8; {
		fourCC, n := string(rest[:4]), int(le.Uint32(rest[4:]))
		data := rest[8 : 8+n]
		switch fourCC {
		case "VP8L":
			bits := le.Uint32(data[1:])
			fw, fh = int(bits&0x3FFF)+1, int(bits>>14&0x3FFF)+1
		case "VP8 ":
			fw, fh = int(le.Uint16(data[6:])&0x3FFF), int(le.Uint16(data[8:])&0x3FFF)
		}
		if fourCC == "ALPH" || fourCC == "VP8L" || fourCC == "VP8 " {
			bitstream = append(bitstream, riffChunk(fourCC, data)...)
		}
		rest = rest[min(len(rest), 8+n+n%2):]
	}
	vp8x := []byte{0x02, 0, 0, 0} // animation flag
	vp8x = u24(vp8x, w-1)
	vp8x = u24(vp8x, h-1)
	anim := []byte{0, 0, 0, 0, 0, 0} // background colour, loop count
	anmf := u24(nil, 0)
	anmf = u24(anmf, 0)
	anmf = u24(anmf, fw-1)
	anmf = u24(anmf, fh-1)
	anmf = u24(anmf, 100)
	anmf = append(anmf, 0)
	anmf = append(anmf, bitstream...)
	body := []byte("WEBP")
	body = append(body, riffChunk("VP8X", vp8x)...)
	body = append(body, riffChunk("ANIM", anim)...)
	body = append(body, riffChunk("ANMF", anmf)...)
	out := []byte("RIFF")
	out = le.AppendUint32(out, uint32(len(body)))
	return append(out, body...)
}

func riffChunk(fourCC string, data []byte) []byte {
	b := append([]byte(fourCC), binary.LittleEndian.AppendUint32(nil, uint32(len(data)))...)
	b = append(b, data...)
	if len(data)%2 == 1 {
		b = append(b, 0)
	}
	return b
}
