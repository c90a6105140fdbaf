// Package product holds the product catalogue's rules: what a valid product
// is, how it changes, the messages its changes produce, and the storage it
// needs.
package product

import (
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
	ID            uuid.UUID
	Position      int
	SourceURL     string
	Status        ImageStatus
	Attempts      int
	ErrorCode     string
	CompressedURL string
	Width         int
	Height        int
	Bytes         int64
	Format        string
	UpdatedAt     time.Time
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

// CompressedURLs returns the compressed URLs of the ready images, in position order.
func (p Product) CompressedURLs() []string {
	urls := make([]string, 0, len(p.Images))
	for _, im := range p.Images {
		if im.Status == ImageReady && im.CompressedURL != "" {
			urls = append(urls, im.CompressedURL)
		}
	}
	return urls
}

// User owns products.
type User struct {
	ID        uuid.UUID
	Email     string
	Name      string
	Admin     bool
	CreatedAt time.Time
}
