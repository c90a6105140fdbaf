package imaging

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Header is what the structure of a source image says a decoder will do
// with it, read without decoding any pixel.
type Header struct {
	Format string // one of the Format constants
	// Width and Height are the canvas a decoder allocates for the first
	// frame. For a GIF that is the logical screen grown to hold the first
	// frame, as libvips (libnsgif) and browsers do, whatever the screen
	// says.
	Width, Height int
	Frames        int // frames of an animation (GIF, WebP, APNG), else 1
	Scans         int // scans of a JPEG: 1 when baseline, more when progressive
}

// MaxJPEGScans bounds the scans of a progressive JPEG: each scan is a pass
// over the whole image, so thousands of tiny scans make a small file cost
// minutes of CPU. Encoders write about ten.
const MaxJPEGScans = 100

// maxMetadataBytes bounds what the compressed metadata chunks of a PNG
// (zTXt, iTXt, iCCP) may inflate to, in all: the decoder inflates each of
// them whole, so a few kilobytes of zlib would otherwise cost gigabytes.
const maxMetadataBytes = 4 << 20

// Failure codes of ReadHeader.
const (
	CodeNotAnImage       = "not_an_image"
	CodeTruncated        = "truncated_image"
	CodeCorrupt          = "corrupt_image"
	CodeTooManyScans     = "too_many_scans"
	CodeMetadataTooLarge = "metadata_too_large"
)

// ReadHeader walks the whole structure of the image in data (markers,
// chunks or blocks; never pixels) and returns its Header. Errors are
// permanent Failures: not_an_image for anything but JPEG, PNG, WebP, GIF and
// HEIF;
// truncated_image when the data ends inside the structure; corrupt_image
// when the structure is invalid; too_many_scans and metadata_too_large for
// files built to make a decoder work far more than their size suggests.
// Bytes after the end of the image (after a JPEG's EOI, a PNG's IEND, a
// GIF's trailer) are ignored.
func ReadHeader(data []byte) (Header, error) {
	format := sniffFormat(data)
	var h Header
	var err error
	switch format {
	case FormatJPEG:
		h, err = jpegHeader(data)
	case FormatPNG:
		h, err = pngHeader(data)
	case FormatGIF:
		h, err = gifHeader(data)
	case FormatWebP:
		h, err = webpHeader(data)
	case FormatHEIF:
		h, err = heifHeader(data)
	default:
		return Header{}, Permanent(CodeNotAnImage, errors.New("not a jpeg, png, webp, gif or heif image"))
	}
	if err != nil {
		return Header{}, err
	}
	h.Format = format
	if h.Width <= 0 || h.Height <= 0 {
		return Header{}, corrupt(format, "declares %d×%d pixels", h.Width, h.Height)
	}
	return h, nil
}

func corrupt(format, msg string, args ...any) error {
	return Permanent(CodeCorrupt, fmt.Errorf("%s: "+msg, append([]any{format}, args...)...))
}

func truncated(format, where string) error {
	return Permanent(CodeTruncated, fmt.Errorf("%s: data ends inside the %s", format, where))
}

// reader reads big- or little-endian fields from data, remembering when it
// ran past the end, so parsers check once per structure.
type reader struct {
	data  []byte
	pos   int
	short bool
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || r.pos+n > len(r.data) || r.pos+n < r.pos {
		r.short = true
		r.pos = len(r.data)
		return make([]byte, max(n, 0))
	}
	b := r.data[r.pos : r.pos+n]
	r.pos += n
	return b
}

func (r *reader) skip(n int)        { r.bytes(n) }
func (r *reader) u8() int           { return int(r.bytes(1)[0]) }
func (r *reader) be16() int         { return int(binary.BigEndian.Uint16(r.bytes(2))) }
func (r *reader) le16() int         { return int(binary.LittleEndian.Uint16(r.bytes(2))) }
func (r *reader) be32() uint32      { return binary.BigEndian.Uint32(r.bytes(4)) }
func (r *reader) le32() uint32      { return binary.LittleEndian.Uint32(r.bytes(4)) }
func (r *reader) remaining() int    { return len(r.data) - r.pos }
func (r *reader) at(off int) []byte { return r.data[off:] }

// le24 reads a 24-bit little-endian number, as WebP stores sizes.
func (r *reader) le24() int {
	b := r.bytes(3)
	return int(b[0]) | int(b[1])<<8 | int(b[2])<<16
}

// jpegHeader walks the markers of a JPEG up to its EOI, skipping the
// entropy-coded data of each scan.
func jpegHeader(data []byte) (Header, error) {
	const f = FormatJPEG
	r := &reader{data: data, pos: 2} // after SOI
	var h Header
	frame := false
	for {
		// A marker is 0xFF, any number of 0xFF fill bytes, then its code.
		if r.remaining() < 2 {
			return Header{}, truncated(f, "markers (no EOI)")
		}
		// libjpeg skips (and warns about) stray bytes before a marker; so
		// does this, and libvips' fail-on level decides about the warning.
		i := bytes.IndexByte(r.at(r.pos), 0xFF)
		if i < 0 {
			return Header{}, truncated(f, "markers (no EOI)")
		}
		r.pos += i + 1
		m := r.u8()
		for m == 0xFF && !r.short {
			m = r.u8()
		}
		switch {
		case r.short:
			return Header{}, truncated(f, "markers (no EOI)")
		case m == 0xD9: // EOI
			if !frame || h.Scans == 0 {
				return Header{}, corrupt(f, "EOI before a frame and a scan")
			}
			return h, nil
		case m == 0x01 || (m >= 0xD0 && m <= 0xD7): // TEM, RSTn: no length
			continue
		case m == 0xD8 || m == 0x00:
			return Header{}, corrupt(f, "unexpected marker 0x%02X at byte %d", m, r.pos-1)
		}
		start := r.pos
		n := r.be16()
		if n < 2 {
			return Header{}, corrupt(f, "marker 0x%02X has length %d", m, n)
		}
		seg := r.bytes(n - 2)
		if r.short {
			return Header{}, truncated(f, fmt.Sprintf("segment of marker 0x%02X at byte %d", m, start-2))
		}
		switch {
		case isSOF(m):
			if frame {
				return Header{}, corrupt(f, "more than one frame")
			}
			if err := jpegFrame(m, seg, &h); err != nil {
				return Header{}, err
			}
			frame = true
		case m == 0xDA: // SOS, then entropy-coded data up to the next marker
			if !frame {
				return Header{}, corrupt(f, "scan before the frame header")
			}
			if len(seg) < 1 || len(seg) != 1+2*int(seg[0])+3 {
				return Header{}, corrupt(f, "malformed scan header")
			}
			if h.Scans++; h.Scans > MaxJPEGScans {
				return Header{}, Permanent(CodeTooManyScans, fmt.Errorf("jpeg: more than %d scans", MaxJPEGScans))
			}
			if !skipEntropyData(r) {
				return Header{}, truncated(f, "scan data (no EOI)")
			}
		}
	}
}

// isSOF reports whether m starts a frame (SOF0–SOF15 but DHT, JPG, DAC).
func isSOF(m int) bool { return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC }

// jpegFrame reads a frame header. libjpeg decodes 8-bit baseline,
// extended and progressive frames, Huffman or arithmetic coded; lossless and
// hierarchical frames are refused.
func jpegFrame(m int, seg []byte, h *Header) error {
	const f = FormatJPEG
	switch m {
	case 0xC0, 0xC1, 0xC2, 0xC9, 0xCA:
	default:
		return corrupt(f, "unsupported coding process (marker 0x%02X)", m)
	}
	if len(seg) < 6 {
		return corrupt(f, "short frame header")
	}
	precision, height, width, comps := int(seg[0]), int(binary.BigEndian.Uint16(seg[1:])), int(binary.BigEndian.Uint16(seg[3:])), int(seg[5])
	switch {
	case precision != 8:
		return corrupt(f, "%d-bit samples", precision)
	case height == 0:
		return corrupt(f, "height defined by a DNL marker")
	case comps != 1 && comps != 3 && comps != 4:
		return corrupt(f, "%d components", comps)
	case len(seg) != 6+3*comps:
		return corrupt(f, "frame header of %d bytes for %d components", len(seg), comps)
	}
	for i := range comps {
		hv := seg[6+3*i+1]
		if hs, vs := hv>>4, hv&0x0F; hs < 1 || hs > 4 || vs < 1 || vs > 4 {
			return corrupt(f, "sampling factors %d×%d", hs, vs)
		}
	}
	h.Width, h.Height, h.Frames = width, height, 1
	return nil
}

// skipEntropyData moves r past the entropy-coded data of a scan, to the
// 0xFF of the next marker other than a restart, and reports whether one
// was found.
func skipEntropyData(r *reader) bool {
	for {
		i := bytes.IndexByte(r.at(r.pos), 0xFF)
		if i < 0 {
			return false
		}
		r.pos += i
		next := r.pos + 1
		for next < len(r.data) && r.data[next] == 0xFF {
			next++ // fill bytes
		}
		if next >= len(r.data) {
			return false
		}
		switch b := r.data[next]; {
		case b == 0x00 || (b >= 0xD0 && b <= 0xD7): // stuffed 0xFF, RSTn
			r.pos = next + 1
		default:
			r.pos = next - 1 // at the last 0xFF before the marker code
			return true
		}
	}
}

// pngHeader walks the chunks of a PNG up to IEND, checking each CRC.
func pngHeader(data []byte) (Header, error) {
	const f = FormatPNG
	r := &reader{data: data, pos: 8}
	var h Header
	metadata := 0 // bytes the compressed metadata chunks inflate to
	idat := false
	for first := true; ; first = false {
		start := r.pos
		n, typ := r.be32(), string(r.bytes(4))
		if r.short {
			return Header{}, truncated(f, "chunks (no IEND)")
		}
		if n > 1<<31-1 || !isChunkType(typ) {
			return Header{}, corrupt(f, "malformed chunk at byte %d", start)
		}
		body := r.bytes(int(n))
		crc := r.be32()
		if r.short {
			return Header{}, truncated(f, fmt.Sprintf("%s chunk at byte %d", typ, start))
		}
		if crc32.ChecksumIEEE(data[start+4:start+8+int(n)]) != crc {
			return Header{}, corrupt(f, "bad CRC in %s chunk at byte %d", typ, start)
		}
		if first != (typ == "IHDR") {
			return Header{}, corrupt(f, "IHDR is not the first chunk")
		}
		switch typ {
		case "IHDR":
			if err := pngIHDR(body, &h); err != nil {
				return Header{}, err
			}
		case "acTL":
			if len(body) != 8 {
				return Header{}, corrupt(f, "malformed acTL chunk")
			}
			h.Frames = max(1, int(binary.BigEndian.Uint32(body)))
		case "IDAT":
			idat = true
		case "zTXt", "iTXt", "iCCP":
			k, err := inflatedSize(typ, body, maxMetadataBytes-metadata)
			if err != nil {
				return Header{}, err
			}
			metadata += k
		case "IEND":
			if !idat {
				return Header{}, corrupt(f, "no image data")
			}
			return h, nil
		}
	}
}

func isChunkType(t string) bool {
	for i := range len(t) {
		if c := t[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// pngDepths are the bit depths each PNG colour type allows.
var pngDepths = map[byte][]byte{0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}

// pngIHDR reads the image header chunk.
func pngIHDR(b []byte, h *Header) error {
	const f = FormatPNG
	if len(b) != 13 {
		return corrupt(f, "IHDR of %d bytes", len(b))
	}
	w, hh := binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
	depth, colour, compression, filter, interlace := b[8], b[9], b[10], b[11], b[12]
	switch {
	case w > 1<<31-1 || hh > 1<<31-1:
		return corrupt(f, "declares %d×%d pixels", w, hh)
	case !bytes.Contains(pngDepths[colour], []byte{depth}):
		return corrupt(f, "bit depth %d with colour type %d", depth, colour)
	case compression != 0 || filter != 0 || interlace > 1:
		return corrupt(f, "unknown compression, filter or interlace method")
	}
	h.Width, h.Height, h.Frames = int(w), int(hh), 1
	return nil
}

// inflatedSize returns how many bytes the zlib stream of a compressed
// metadata chunk inflates to, refusing it once that passes budget. A chunk
// that is not compressed (an iTXt with its flag off) counts nothing.
func inflatedSize(typ string, body []byte, budget int) (int, error) {
	const f = FormatPNG
	// keyword\0 comes first; iTXt then has a flag, a method, a language tag
	// and a translated keyword; zTXt and iCCP a method.
	kw := bytes.IndexByte(body, 0)
	if kw < 1 || kw > 79 || kw+2 > len(body) {
		return 0, corrupt(f, "malformed %s chunk", typ)
	}
	rest := body[kw+1:]
	if typ == "iTXt" {
		if rest[0] == 0 {
			return 0, nil
		}
		if len(rest) < 2 {
			return 0, corrupt(f, "malformed iTXt chunk")
		}
		rest = rest[2:]
		for range 2 { // language tag, translated keyword
			i := bytes.IndexByte(rest, 0)
			if i < 0 {
				return 0, corrupt(f, "malformed iTXt chunk")
			}
			rest = rest[i+1:]
		}
	} else {
		if rest[0] != 0 {
			return 0, corrupt(f, "unknown compression method in %s chunk", typ)
		}
		rest = rest[1:]
	}
	zr, err := zlib.NewReader(bytes.NewReader(rest))
	if err != nil {
		return 0, corrupt(f, "%s chunk: %v", typ, err)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(zr, int64(budget)+1))
	switch {
	case n > int64(budget):
		return 0, Permanent(CodeMetadataTooLarge, fmt.Errorf("png: metadata chunks inflate to more than %d bytes", maxMetadataBytes))
	case err != nil:
		return 0, corrupt(f, "%s chunk: %v", typ, err)
	}
	return int(n), nil
}

// gifHeader walks the blocks of a GIF. The canvas is the logical screen
// grown to hold the first frame, as libnsgif grows it; later frames are
// clipped to it. Data may end after a whole frame without the trailer, as
// many GIFs do; inside a frame, it is truncated.
func gifHeader(data []byte) (Header, error) {
	const f = FormatGIF
	r := &reader{data: data, pos: 6}
	h := Header{Width: r.le16(), Height: r.le16()}
	flags := r.u8()
	r.skip(2) // background colour, aspect ratio
	if flags&0x80 != 0 {
		r.skip(3 << (flags&7 + 1)) // global colour table
	}
	if r.short {
		return Header{}, truncated(f, "screen descriptor")
	}
	for {
		if r.remaining() == 0 {
			if h.Frames == 0 {
				return Header{}, truncated(f, "blocks (no image)")
			}
			return h, nil
		}
		switch b := r.u8(); b {
		case 0x3B: // trailer
			if h.Frames == 0 {
				return Header{}, corrupt(f, "no image")
			}
			return h, nil
		case 0x21: // extension: label, then data sub-blocks
			r.skip(1)
			if !skipSubBlocks(r) {
				return Header{}, truncated(f, "extension")
			}
		case 0x2C: // image descriptor
			x, y, w, hh := r.le16(), r.le16(), r.le16(), r.le16()
			fl := r.u8()
			if fl&0x80 != 0 {
				r.skip(3 << (fl&7 + 1)) // local colour table
			}
			if lzw := r.u8(); !r.short && (lzw < 1 || lzw > 11) {
				return Header{}, corrupt(f, "LZW code size %d", lzw)
			}
			if r.short || !skipSubBlocks(r) {
				return Header{}, truncated(f, "image data")
			}
			if h.Frames == 0 {
				h.Width, h.Height = max(h.Width, x+w), max(h.Height, y+hh)
			}
			h.Frames++
		default:
			return Header{}, corrupt(f, "unknown block 0x%02X at byte %d", b, r.pos-1)
		}
	}
}

// skipSubBlocks moves r past a chain of data sub-blocks and its
// terminator, and reports whether the chain ended before the data did.
func skipSubBlocks(r *reader) bool {
	for {
		n := r.u8()
		if r.short {
			return false
		}
		if n == 0 {
			return true
		}
		r.skip(n)
	}
}

// webpHeader walks the chunks of a WebP file: a simple lossy (VP8) or
// lossless (VP8L) image, or an extended (VP8X) one whose canvas every
// animation frame must fit.
func webpHeader(data []byte) (Header, error) {
	const f = FormatWebP
	r := &reader{data: data, pos: 4}
	size := int(r.le32())
	switch {
	case size < 4:
		return Header{}, corrupt(f, "RIFF size %d", size)
	case size+8 > len(data):
		return Header{}, truncated(f, "RIFF container")
	}
	r.data = data[:size+8] // bytes after the RIFF payload are not part of the file
	r.pos = 12
	var h Header
	extended, bitstream := false, false
	for r.remaining() > 0 {
		start := r.pos
		fourCC, n := string(r.bytes(4)), int(r.le32())
		body := r.bytes(n)
		if r.short {
			return Header{}, truncated(f, fmt.Sprintf("chunk at byte %d", start))
		}
		if n%2 == 1 {
			r.skip(1) // padding
		}
		first := start == 12
		switch fourCC {
		case "VP8X":
			if !first || len(body) < 10 {
				return Header{}, corrupt(f, "misplaced or short VP8X chunk")
			}
			br := &reader{data: body, pos: 4}
			h.Width, h.Height, h.Frames = br.le24()+1, br.le24()+1, 1
			extended = true
		case "VP8 ", "VP8L":
			w, hh, err := webpBitstreamSize(fourCC, body)
			if err != nil {
				return Header{}, err
			}
			if !extended {
				if !first {
					return Header{}, corrupt(f, "bitstream after other chunks")
				}
				return Header{Width: w, Height: hh, Frames: 1}, nil
			}
			if w != h.Width || hh != h.Height {
				return Header{}, corrupt(f, "%d×%d bitstream in a %d×%d canvas", w, hh, h.Width, h.Height)
			}
			bitstream = true
		case "ANMF":
			if !extended || len(body) < 16 {
				return Header{}, corrupt(f, "misplaced or short ANMF chunk")
			}
			br := &reader{data: body}
			x, y, w, hh := 2*br.le24(), 2*br.le24(), br.le24()+1, br.le24()+1
			if x+w > h.Width || y+hh > h.Height {
				return Header{}, corrupt(f, "frame %d×%d at %d,%d outside the %d×%d canvas", w, hh, x, y, h.Width, h.Height)
			}
			if !bitstream {
				h.Frames = 0
			}
			bitstream = true
			h.Frames++
		default:
			if first {
				return Header{}, corrupt(f, "first chunk is %q", fourCC)
			}
		}
	}
	if !bitstream {
		return Header{}, corrupt(f, "no image data")
	}
	return h, nil
}

// webpBitstreamSize reads the size from a VP8 key frame or a VP8L header.
func webpBitstreamSize(fourCC string, b []byte) (int, int, error) {
	const f = FormatWebP
	if fourCC == "VP8L" {
		if len(b) < 5 || b[0] != 0x2F {
			return 0, 0, corrupt(f, "malformed VP8L header")
		}
		bits := binary.LittleEndian.Uint32(b[1:])
		return int(bits&0x3FFF) + 1, int(bits>>14&0x3FFF) + 1, nil
	}
	if len(b) < 10 || b[0]&1 != 0 || b[3] != 0x9D || b[4] != 0x01 || b[5] != 0x2A {
		return 0, 0, corrupt(f, "malformed VP8 key frame")
	}
	return int(binary.LittleEndian.Uint16(b[6:]) & 0x3FFF), int(binary.LittleEndian.Uint16(b[8:]) & 0x3FFF), nil
}

// Limits bound the images a worker decodes, by what a decoder would
// allocate (see Header), not by what a header declares.
type Limits struct {
	// MaxPixels caps width × height of the decoded canvas.
	MaxPixels int64 `mapstructure:"max_pixels"`
	// MaxSide caps either side, so that a long thin strip within MaxPixels
	// cannot make a decoder's line buffers huge.
	MaxSide int `mapstructure:"max_side"`
}

// Validate reports every problem with the limits.
func (l Limits) Validate() error {
	var errs []error
	if l.MaxPixels < 1 {
		errs = append(errs, errors.New("imaging.limits.max_pixels: must be at least 1"))
	}
	if l.MaxSide < 1 {
		errs = append(errs, errors.New("imaging.limits.max_side: must be at least 1"))
	}
	return errors.Join(errs...)
}

// Failure codes of Limits.Check.
const (
	CodeTooManyPixels = "too_many_pixels"
	CodeSideTooLong   = "side_too_long"
)

// Check returns a permanent Failure, too_many_pixels or side_too_long, when
// a w×h canvas breaks a limit, else nil.
func (l Limits) Check(format string, w, h int) error {
	switch {
	case int64(w)*int64(h) > l.MaxPixels:
		return Permanent(CodeTooManyPixels, fmt.Errorf("%s is %d×%d pixels, more than %d", format, w, h, l.MaxPixels))
	case w > l.MaxSide || h > l.MaxSide:
		return Permanent(CodeSideTooLong, fmt.Errorf("%s is %d×%d pixels, a side longer than %d", format, w, h, l.MaxSide))
	}
	return nil
}

// DefaultLimits are the limits pms runs with unless configured otherwise:
// 50 MP, as a 48 MP phone photo needs, and 20000 px a side.
var DefaultLimits = Limits{MaxPixels: 50_000_000, MaxSide: 20_000}
