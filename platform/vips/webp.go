package vips

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// VP8X flags that announce metadata chunks (WebP container specification).
const (
	vp8xICC  = 0x20
	vp8xEXIF = 0x08
	vp8xXMP  = 0x04
)

// stripWebPMetadata returns a copy of the WebP file data without its EXIF,
// XMP and ICCP chunks, with the VP8X flags and the RIFF size to match; every
// other chunk is kept in order. Without ICCP a viewer assumes sRGB, so the
// image must already be sRGB. It fails on data that is not a well-formed
// RIFF WebP file.
func stripWebPMetadata(data []byte) ([]byte, error) {
	if len(data) < 12 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WEBP" {
		return nil, errors.New("not a RIFF WebP file")
	}
	size := int64(binary.LittleEndian.Uint32(data[4:8]))
	if size < 4 || size+8 > int64(len(data)) {
		return nil, fmt.Errorf("RIFF size %d does not match %d bytes of data", size, len(data))
	}
	body := data[12 : 8+size] // bytes after the RIFF payload are not part of the file
	out := make([]byte, 12, len(data))
	copy(out, data[:12])
	vp8x := -1
	for len(body) > 0 {
		if len(body) < 8 {
			return nil, fmt.Errorf("truncated chunk header at byte %d", len(data)-len(body))
		}
		fourCC := string(body[:4])
		n := int64(binary.LittleEndian.Uint32(body[4:8]))
		if 8+n > int64(len(body)) {
			return nil, fmt.Errorf("chunk %q of %d bytes overruns the file", fourCC, n)
		}
		chunk := body[:8+n]
		padded := n%2 == 1
		body = body[8+n:]
		if padded && len(body) > 0 {
			body = body[1:] // the pad byte; a writer may omit it after the last chunk
		}
		switch fourCC {
		case "EXIF", "XMP ", "ICCP":
			continue
		case "VP8X":
			if n < 10 {
				return nil, fmt.Errorf("VP8X chunk of %d bytes, want 10", n)
			}
			vp8x = len(out)
		}
		out = append(out, chunk...)
		if padded {
			out = append(out, 0)
		}
	}
	if vp8x >= 0 {
		out[vp8x+8] &^= vp8xICC | vp8xEXIF | vp8xXMP
	}
	binary.LittleEndian.PutUint32(out[4:8], uint32(len(out)-8))
	return out, nil
}
