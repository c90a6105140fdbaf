package product_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pms-dev/pms/product"
)

// TestCompressedURLs: compressed_product_images lists the main (first)
// variant of each ready image, in position order, and nothing for images
// that are not ready or have no variant.
func TestCompressedURLs(t *testing.T) {
	variants := func(urls ...string) []product.Variant {
		out := make([]product.Variant, len(urls))
		for i, u := range urls {
			out[i] = product.Variant{Name: "v" + u, URL: u, Format: "jpeg"}
		}
		return out
	}
	p := product.Product{Images: []product.Image{
		{Position: 0, Status: product.ImageReady, Variants: variants("a-main", "a-thumb")},
		{Position: 1, Status: product.ImagePending},
		{Position: 2, Status: product.ImageReady},
		{Position: 3, Status: product.ImageFailed, Variants: variants("stale")},
		{Position: 4, Status: product.ImageReady, Variants: variants("e-main")},
	}}
	if diff := cmp.Diff([]string{"a-main", "e-main"}, p.CompressedURLs()); diff != "" {
		t.Errorf("CompressedURLs() (-want +got):\n%s", diff)
	}
	if main, ok := p.Images[0].Main(); !ok || main.URL != "a-main" {
		t.Errorf("Main() of a ready image = %+v, %t; want its first variant", main, ok)
	}
	if main, ok := p.Images[1].Main(); ok {
		t.Errorf("Main() of a pending image = %+v, true; want none", main)
	}
}
