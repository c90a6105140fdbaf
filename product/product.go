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

// srcsetURL keeps a URL from breaking a srcset, whose candidates are
// separated by commas and whitespace.
var srcsetURL = strings.NewReplacer(" ", "%20", "\t", "%09", "\n", "%0A", ",", "%2C")

// Srcset returns an HTML srcset of the image's variants in format: each URL
// with its width descriptor, narrowest first, one candidate per width (the
// first variant listed wins). It is "" when no variant of format has a
// recorded width.
func (im Image) Srcset(format string) string {
	var picked []Variant
	for _, v := range im.Variants {
		if v.Format == format && v.Width > 0 && !slices.ContainsFunc(picked, func(p Variant) bool { return p.Width == v.Width }) {
			picked = append(picked, v)
		}
	}
	slices.SortStableFunc(picked, func(a, b Variant) int { return a.Width - b.Width })
	parts := make([]string, len(picked))
	for i, v := range picked {
		parts[i] = srcsetURL.Replace(v.URL) + " " + strconv.Itoa(v.Width) + "w"
	}
	return strings.Join(parts, ", ")
}
