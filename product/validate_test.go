package product_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/product"
)

func validDraft() product.Draft {
	return product.Draft{
		UserID: uuid.New(), Name: "Lamp", Description: "A lamp", Price: 1250,
		ImageURLs: []string{"https://example.com/a.jpg", "http://example.com/b.png"},
	}
}

func TestDraftValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*product.Draft)
		want string // "" when valid
	}{
		{"ok", func(*product.Draft) {}, ""},
		{"no images", func(d *product.Draft) { d.ImageURLs = nil }, ""},
		{"no owner", func(d *product.Draft) { d.UserID = uuid.Nil }, "user_id: is required"},
		{"blank name", func(d *product.Draft) { d.Name = "  " }, "product_name: is required"},
		{"255 runes", func(d *product.Draft) { d.Name = strings.Repeat("é", 255) }, ""},
		{"256 runes", func(d *product.Draft) { d.Name = strings.Repeat("é", 256) }, "product_name: must be at most 255 characters"},
		{"invalid utf-8", func(d *product.Draft) { d.Name = "a\xffb" }, "product_name: must be valid UTF-8"},
		{"negative price", func(d *product.Draft) { d.Price = -1 }, "product_price: must be at least 0"},
		{"huge price", func(d *product.Draft) { d.Price = product.MaxPrice + 1 }, "product_price: must be less than 10000000000"},
		{"long description", func(d *product.Draft) { d.Description = strings.Repeat("x", 10_001) }, "product_description: must be at most 10000 characters"},
		{"21 images", func(d *product.Draft) { d.ImageURLs = manyURLs(21) }, "product_images: must have at most 20 images"},
		{"20 images", func(d *product.Draft) { d.ImageURLs = manyURLs(20) }, ""},
		{"ftp", func(d *product.Draft) { d.ImageURLs[1] = "ftp://example.com/a.jpg" }, "product_images[1]: must be an http or https URL"},
		{"relative", func(d *product.Draft) { d.ImageURLs[0] = "/a.jpg" }, "product_images[0]: must be an http or https URL"},
		{"no host", func(d *product.Draft) { d.ImageURLs[0] = "https:///a.jpg" }, "product_images[0]: must name a host"},
		{"credentials", func(d *product.Draft) { d.ImageURLs[0] = "https://u:p@example.com/a.jpg" }, "product_images[0]: must not contain credentials"},
		{"too long", func(d *product.Draft) { d.ImageURLs[0] = "https://example.com/" + strings.Repeat("a", 2029) }, "product_images[0]: must be at most 2048 characters"},
		{"duplicate", func(d *product.Draft) { d.ImageURLs[1] = d.ImageURLs[0] }, "product_images[1]: repeats an earlier image"},
		{"several", func(d *product.Draft) { d.Name, d.Price = "", -5 }, "product_name: is required; product_price: must be at least 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := validDraft()
			tt.edit(&d)
			got := strings.TrimPrefix(errText(d.Validate()), "invalid input: ")
			if got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
}

func manyURLs(n int) []string {
	urls := make([]string, n)
	for i := range urls {
		urls[i] = "https://example.com/" + strings.Repeat("x", i+1) + ".jpg"
	}
	return urls
}
