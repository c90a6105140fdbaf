package imaging

import (
	"encoding/base64"
	"fmt"
)

// Sample is a small copy of a source image, as a decoder shows it (upright,
// sRGB), for what a page needs before the image loads.
type Sample struct {
	// Width and Height are the source's, upright.
	Width, Height int
	// W and H are the sample's size, at most MaxThumbHashSide on each side,
	// in the source's aspect; Pix its non-premultiplied RGBA pixels.
	W, H int
	Pix  []byte
}

// SourceFacts describe a source image and how to stand in for it while it
// loads: its size, format and bytes, a ThumbHash (base64) and its dominant
// colour (#rrggbb).
type SourceFacts struct {
	Width, Height int // upright
	Format        string
	Bytes         int64
	ThumbHash     string
	Color         string
}

// Facts returns the facts of the source src, of which s is a sample.
func Facts(src Source, s Sample) (SourceFacts, error) {
	hash, err := ThumbHash(s.W, s.H, s.Pix)
	if err != nil {
		return SourceFacts{}, err
	}
	return SourceFacts{
		Width: s.Width, Height: s.Height, Format: src.Header.Format, Bytes: int64(len(src.Data)),
		ThumbHash: base64.StdEncoding.EncodeToString(hash), Color: DominantColor(s.Pix),
	}, nil
}

// DominantColor returns the most common colour of the RGBA pixels, as
// #rrggbb: pixels are counted, weighted by their alpha, in buckets of 16
// levels a channel, and the answer is the mean colour of the fullest
// bucket. Fully transparent pixels do not count; with none left, it is
// #ffffff.
func DominantColor(rgba []byte) string {
	type bucket struct{ weight, r, g, b float64 }
	var buckets [4096]bucket
	best := -1
	for i := 0; i+3 < len(rgba); i += 4 {
		a := float64(rgba[i+3]) / 255
		if a == 0 {
			continue
		}
		k := int(rgba[i]>>4)<<8 | int(rgba[i+1]>>4)<<4 | int(rgba[i+2]>>4)
		b := &buckets[k]
		b.weight += a
		b.r += a * float64(rgba[i])
		b.g += a * float64(rgba[i+1])
		b.b += a * float64(rgba[i+2])
		if best < 0 || b.weight > buckets[best].weight {
			best = k
		}
	}
	if best < 0 {
		return "#ffffff"
	}
	b := buckets[best]
	return fmt.Sprintf("#%02x%02x%02x", round(b.r/b.weight), round(b.g/b.weight), round(b.b/b.weight))
}
