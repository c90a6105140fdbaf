package product_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pms-dev/pms/product"
)

// candidate is one image candidate of a srcset with a width descriptor, as
// the HTML standard parses it: a URL without whitespace that neither starts
// nor ends with a comma, whitespace, and a positive integer followed by w.
var candidate = regexp.MustCompile(`^([^\s,][^\s]*[^\s,]|[^\s,]) ([1-9][0-9]*)w$`)

// checkSrcset fails unless set is a valid srcset of width descriptors, with
// no width twice, and returns its URLs and widths in order.
func checkSrcset(t *testing.T, set string) (urls []string, widths []int) {
	t.Helper()
	seen := map[int]bool{}
	for _, c := range strings.Split(set, ", ") {
		m := candidate.FindStringSubmatch(c)
		if m == nil {
			t.Errorf("srcset %q: candidate %q is not <url> <width>w", set, c)
			continue
		}
		w, _ := strconv.Atoi(m[2])
		if seen[w] {
			t.Errorf("srcset %q: width %d twice", set, w)
		}
		seen[w] = true
		urls, widths = append(urls, m[1]), append(widths, w)
	}
	return urls, widths
}

func TestImageSrcset(t *testing.T) {
	im := product.Image{Variants: []product.Variant{
		{Name: "main", URL: "https://cdn/m.jpg", Width: 1600, Height: 1200, Format: "jpeg"},
		{Name: "thumbnail", URL: "https://cdn/t.jpg", Width: 320, Height: 240, Format: "jpeg"},
		{Name: "jpeg-320", URL: "https://cdn/j320.jpg", Width: 320, Height: 240, Format: "jpeg"},
		{Name: "jpeg-640", URL: "https://cdn/a,b c\t\n\f\r.jpg", Width: 640, Height: 480, Format: "jpeg"},
		{Name: "webp-320", URL: "https://cdn/w320.webp", Width: 320, Height: 240, Format: "webp"},
		{Name: "old", URL: "https://cdn/old.webp", Format: "webp"},
	}}
	tests := []struct{ format, want string }{
		{"jpeg", "https://cdn/t.jpg 320w, https://cdn/a%2Cb%20c%09%0A%0C%0D.jpg 640w, https://cdn/m.jpg 1600w"},
		{"webp", "https://cdn/w320.webp 320w"},
		{"avif", ""},
	}
	for _, tt := range tests {
		got := im.Srcset(tt.format)
		if got != tt.want {
			t.Errorf("Srcset(%q) = %q, want %q", tt.format, got, tt.want)
		}
		if got != "" {
			checkSrcset(t, got)
		}
	}
}
