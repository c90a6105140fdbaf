package imaging

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
	"slices"
)

// FormatHEIF is the HEIF container (HEIC: HEVC inside), what phones
// upload. It is a source format only.
const FormatHEIF = "heif"

// heifBrands are the ftyp brands of HEIF still images and sequences.
var heifBrands = []string{"heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1"}

// isHEIF reports whether b starts with an ISO BMFF ftyp box whose major
// brand is a HEIF one.
func isHEIF(b []byte) bool {
	return len(b) >= 12 && string(b[4:8]) == "ftyp" && slices.Contains(heifBrands, string(b[8:12]))
}

// maxHEIFMeta bounds the bytes before the end of a HEIF file's meta box,
// which holds the image's size: phones write it first and small.
const maxHEIFMeta = 1 << 20

// box is one ISO BMFF box: its type and payload.
type box struct {
	typ     string
	payload []byte
}

// nextBox splits the box at the start of b from the rest. A size of 0
// means the box runs to the end; 1, that a 64-bit size follows.
func nextBox(b []byte, f string) (box, []byte, error) {
	if len(b) < 8 {
		return box{}, nil, truncated(f, "box header")
	}
	size, head := uint64(binary.BigEndian.Uint32(b)), uint64(8)
	typ := string(b[4:8])
	switch size {
	case 0:
		size = uint64(len(b))
	case 1:
		if len(b) < 16 {
			return box{}, nil, truncated(f, typ+" box header")
		}
		size, head = binary.BigEndian.Uint64(b[8:16]), 16
	}
	switch {
	case size < head:
		return box{}, nil, corrupt(f, "%q box of %d bytes", typ, size)
	case size > uint64(len(b)):
		return box{}, nil, truncated(f, typ+" box")
	}
	return box{typ: typ, payload: b[head:size]}, b[size:], nil
}

// children returns the boxes that make up b; full boxes (meta) have 4
// bytes of version and flags before them, which the caller skips.
func children(b []byte, f string) ([]box, error) {
	var out []box
	for len(b) > 0 {
		bx, rest, err := nextBox(b, f)
		if err != nil {
			return nil, err
		}
		out = append(out, bx)
		b = rest
	}
	return out, nil
}

func find(bs []box, typ string) (box, bool) {
	for _, b := range bs {
		if b.typ == typ {
			return b, true
		}
	}
	return box{}, false
}

// heifHeader walks the top-level boxes of a HEIF file and returns the
// largest image size its meta box declares (ispe properties: the primary
// image's, its tiles', its thumbnails'): what a decoder may allocate.
func heifHeader(data []byte) (Header, error) {
	const f = FormatHEIF
	top, err := children(data, f)
	if err != nil {
		return Header{}, err
	}
	meta, ok := find(top, "meta")
	if !ok {
		return Header{}, corrupt(f, "no meta box")
	}
	if _, ok := find(top, "mdat"); !ok {
		return Header{}, truncated(f, "file: no mdat box")
	}
	w, h, err := heifSize(meta.payload)
	if err != nil {
		return Header{}, err
	}
	return Header{Width: w, Height: h, Frames: 1, Scans: 1}, nil
}

// heifSize reads the largest ispe property in the meta box payload.
func heifSize(meta []byte) (w, h int, err error) {
	const f = FormatHEIF
	if len(meta) < 4 {
		return 0, 0, truncated(f, "meta box")
	}
	kids, err := children(meta[4:], f)
	if err != nil {
		return 0, 0, err
	}
	iprp, ok := find(kids, "iprp")
	if !ok {
		return 0, 0, corrupt(f, "no item properties (iprp)")
	}
	props, err := children(iprp.payload, f)
	if err != nil {
		return 0, 0, err
	}
	ipco, ok := find(props, "ipco")
	if !ok {
		return 0, 0, corrupt(f, "no property container (ipco)")
	}
	items, err := children(ipco.payload, f)
	if err != nil {
		return 0, 0, err
	}
	for _, p := range items {
		if p.typ != "ispe" {
			continue
		}
		if len(p.payload) < 12 {
			return 0, 0, truncated(f, "ispe property")
		}
		pw, ph := binary.BigEndian.Uint32(p.payload[4:]), binary.BigEndian.Uint32(p.payload[8:])
		if pw > 1<<30 || ph > 1<<30 {
			return 0, 0, corrupt(f, "declares %d×%d pixels", pw, ph)
		}
		if int64(pw)*int64(ph) > int64(w)*int64(h) {
			w, h = int(pw), int(ph)
		}
	}
	if w == 0 || h == 0 {
		return 0, 0, corrupt(f, "no image size (ispe)")
	}
	return w, h, nil
}

// heifConfig reads a HEIF file's size from r as far as its meta box, for
// the fetcher's check before the whole body arrives; see heifHeader.
func heifConfig(r io.Reader) (image.Config, error) {
	var read []byte
	for len(read) < maxHEIFMeta {
		head := make([]byte, 8)
		if _, err := io.ReadFull(r, head); err != nil {
			return image.Config{}, fmt.Errorf("read box header: %w", err)
		}
		size := int64(binary.BigEndian.Uint32(head))
		if size < 8 || size > maxHEIFMeta {
			return image.Config{}, errors.New("meta box not in the first MiB")
		}
		payload := make([]byte, size-8)
		if _, err := io.ReadFull(r, payload); err != nil {
			return image.Config{}, fmt.Errorf("read %q box: %w", head[4:], err)
		}
		read = append(read, head...)
		read = append(read, payload...)
		if string(head[4:]) == "meta" {
			w, h, err := heifSize(payload)
			if err != nil {
				return image.Config{}, err
			}
			return image.Config{Width: w, Height: h}, nil
		}
	}
	return image.Config{}, errors.New("meta box not in the first MiB")
}
