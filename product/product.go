// Package product holds the product catalogue's rules: what a valid product
// is, how it changes, the messages its changes produce, and the storage it
// needs.
package product

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Limits on product input, shared by validation and the API documentation.
const (
	MaxNameLen        = 255
	MaxDescriptionLen = 10_000
	MaxImages         = 20
	MaxURLLen         = 2048
)

// ImageStatus is where an image is in the processing pipeline.
type ImageStatus string

// The image statuses, in pipeline order.
const (
	ImagePending    ImageStatus = "pending"
	ImageProcessing ImageStatus = "processing"
	ImageReady      ImageStatus = "ready"
	ImageFailed     ImageStatus = "failed"
)

// Image is one source image of a product and what became of it.
type Image struct {
	ID        uuid.UUID
	Position  int
	SourceURL string
	Status    ImageStatus
	Attempts  int
	ErrorCode string
	// Variants are the compressed copies of a ready image, one per preset
	// it was made with, the main one first.
	Variants []Variant
	// Source describes the source image, as the worker found it; nil until
	// the image is ready (and for images made before it was recorded).
	Source    *SourceFacts
	UpdatedAt time.Time
}

// SourceFacts describe a source image and how a page stands in for it
// while it loads.
type SourceFacts struct {
	Width, Height int // upright
	Format        string
	Bytes         int64
	ThumbHash     string // a ThumbHash, base64
	Color         string // the dominant colour, #rrggbb
}

// Variant is one compressed copy of an image, made by one imaging preset.
type Variant struct {
	Name   string // the preset's
	URL    string
	Width  int   // 0 when not recorded (copies made before variants were)
	Height int   // 0 when not recorded
	Bytes  int64 // 0 when not recorded
	Format string
}

// Main returns the image's main variant, the one compressed_product_images
// shows, and whether it has one.
func (im Image) Main() (Variant, bool) {
	if len(im.Variants) == 0 {
		return Variant{}, false
	}
	return im.Variants[0], true
}

// Product is a catalogue entry owned by a user.
type Product struct {
	ID          uuid.UUID
	UserID      uuid.UUID
	Name        string
	Description string
	Price       Price
	Images      []Image // in position order
	Version     int
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// SourceURLs returns the images' source URLs in position order.
func (p Product) SourceURLs() []string {
	urls := make([]string, len(p.Images))
	for i, im := range p.Images {
		urls[i] = im.SourceURL
	}
	return urls
}

// CompressedURLs returns the URLs of the ready images' main variants, in
// position order.
func (p Product) CompressedURLs() []string {
	urls := make([]string, 0, len(p.Images))
	for _, im := range p.Images {
		if main, ok := im.Main(); ok && im.Status == ImageReady {
			urls = append(urls, main.URL)
		}
	}
	return urls
}

// Srcset returns an HTML srcset of the image's variants in format: each URL
// with its width descriptor, narrowest first, one candidate per width (the
// first variant listed wins). It is "" when no variant of format has a
// recorded width.
func (im Image) Srcset(format string) string { return string(im.AppendSrcset(nil, format)) }

// AppendSrcset appends the image's Srcset in format to b.
func (im Image) AppendSrcset(b []byte, format string) []byte {
	var buf [16]int   // an image has a handful of variants
	picked := buf[:0] // indexes of the variants in the set, by width
	for i, v := range im.Variants {
		if v.Format != format || v.Width <= 0 {
			continue
		}
		j := 0
		for j < len(picked) && im.Variants[picked[j]].Width < v.Width {
			j++
		}
		if j < len(picked) && im.Variants[picked[j]].Width == v.Width {
			continue
		}
		picked = slices.Insert(picked, j, i)
	}
	for k, i := range picked {
		if k > 0 {
			b = append(b, ", "...)
		}
		b = appendSrcsetURL(b, im.Variants[i].URL)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(im.Variants[i].Width), 10)
		b = append(b, 'w')
	}
	return b
}

// srcsetBreaks are the bytes that end a srcset's URL: HTML's ASCII
// whitespace and the comma between candidates.
const srcsetBreaks = " \t\n\f\r,"

// appendSrcsetURL appends url with every byte of srcsetBreaks
// percent-encoded, so that it cannot break a srcset.
func appendSrcsetURL(b []byte, url string) []byte {
	if !strings.ContainsAny(url, srcsetBreaks) {
		return append(b, url...) // as nearly every URL is
	}
	for i := 0; i < len(url); i++ {
		if c := url[i]; strings.IndexByte(srcsetBreaks, c) >= 0 {
			b = append(b, '%', upperHex[c>>4], upperHex[c&0xf])
		} else {
			b = append(b, c)
		}
	}
	return b
}

const upperHex = "0123456789ABCDEF"
