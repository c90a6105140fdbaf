package imaging_test

import (
	"math"
	"testing"

	"github.com/pms-dev/pms/imaging"
)

// gradient returns a w×h image, red on the left turning blue on the right,
// its alpha falling from opaque at the top to transparent at the bottom
// when fade is set.
func gradient(w, h int, fade bool) []byte {
	pix := make([]byte, w*h*4)
	for y := range h {
		for x := range w {
			i := (y*w + x) * 4
			pix[i] = byte(255 * (w - 1 - x) / max(1, w-1))
			pix[i+2] = byte(255 * x / max(1, w-1))
			pix[i+3] = 255
			if fade {
				pix[i+3] = byte(255 * (h - 1 - y) / max(1, h-1))
			}
		}
	}
	return pix
}

// checkThumbHashAspect fails unless hash decodes to an image of the w×h
// source's aspect, to within ThumbHash's rounding: the short side is kept
// in whole steps of the long side's 7 (5 with alpha), so it may be half a
// step off, and the decoded pixels another pixel.
func checkThumbHashAspect(t *testing.T, what string, hash []byte, w, h int, alpha bool) {
	t.Helper()
	steps := 7.0
	if alpha {
		steps = 5
	}
	ratio, err := imaging.ThumbHashAspect(hash)
	if err != nil {
		t.Fatalf("%s: ThumbHashAspect() error = %v", what, err)
	}
	long, short, got := float64(max(w, h)), float64(min(w, h)), ratio
	if h > w {
		got = 1 / ratio
	}
	if (w > h) != (ratio > 1) && w != h {
		t.Errorf("%s: aspect %.3f, want the %d×%d source's orientation", what, ratio, w, h)
	}
	if diff := math.Abs(steps*short/long - steps/got); diff > 0.5+1e-9 {
		t.Errorf("%s: aspect %.3f, want %.3f to within half a step (off by %.2f steps)", what, ratio, float64(w)/float64(h), diff)
	}
	dw, dh, pix, err := imaging.DecodeThumbHash(hash)
	if err != nil {
		t.Fatalf("%s: DecodeThumbHash() error = %v", what, err)
	}
	if len(pix) != dw*dh*4 || max(dw, dh) != 32 || math.Abs(float64(dw)/float64(dh)-ratio)*float64(min(dw, dh)) > ratio+1 {
		t.Errorf("%s: decodes to %d×%d (%d bytes), want 32 px on the long side at aspect %.3f", what, dw, dh, len(pix), ratio)
	}
}

func TestThumbHashRoundTrip(t *testing.T) {
	tests := []struct {
		w, h int
		fade bool
	}{{100, 50, false}, {50, 100, false}, {100, 75, false}, {100, 100, false}, {100, 8, false}, {1, 1, false}, {100, 60, true}, {30, 90, true}}
	for _, tt := range tests {
		hash, err := imaging.ThumbHash(tt.w, tt.h, gradient(tt.w, tt.h, tt.fade))
		if err != nil {
			t.Fatalf("ThumbHash(%d×%d) error = %v", tt.w, tt.h, err)
		}
		if len(hash) > 30 {
			t.Errorf("ThumbHash(%d×%d) = %d bytes, want a compact hash", tt.w, tt.h, len(hash))
		}
		checkThumbHashAspect(t, "gradient", hash, tt.w, tt.h, tt.fade)
		dw, dh, pix, err := imaging.DecodeThumbHash(hash)
		if err != nil || tt.w < 8 {
			continue
		}
		at := func(x, y int) []byte { i := (y*dw + x) * 4; return pix[i : i+4] }
		left, right := at(1, dh/4), at(dw-2, dh/4)
		if left[0] < left[2]+60 || right[2] < right[0]+60 {
			t.Errorf("%d×%d: decoded left %v, right %v; want red on the left, blue on the right", tt.w, tt.h, left, right)
		}
		top, bottom := at(dw/2, 0)[3], at(dw/2, dh-1)[3]
		if tt.fade && (top < 150 || bottom > 100) {
			t.Errorf("%d×%d faded: decoded alpha %d at the top, %d at the bottom; want opaque falling to transparent", tt.w, tt.h, top, bottom)
		}
		if !tt.fade && (top < 250 || bottom < 250) {
			t.Errorf("%d×%d opaque: decoded alpha %d, %d; want opaque", tt.w, tt.h, top, bottom)
		}
	}
}

func TestThumbHashRefused(t *testing.T) {
	for _, tt := range []struct{ w, h, n int }{{0, 1, 0}, {101, 1, 404}, {2, 2, 15}} {
		if _, err := imaging.ThumbHash(tt.w, tt.h, make([]byte, tt.n)); err == nil {
			t.Errorf("ThumbHash(%d×%d, %d bytes) = nil error, want one", tt.w, tt.h, tt.n)
		}
	}
	for _, hash := range [][]byte{nil, {1, 2, 3, 4}, {0xff, 0xff, 0xff, 0x05, 0x80}} {
		if _, _, _, err := imaging.DecodeThumbHash(hash); err == nil {
			t.Errorf("DecodeThumbHash(%x) = nil error, want one", hash)
		}
	}
}

func TestDominantColor(t *testing.T) {
	mostlyGreen := make([]byte, 0, 40)
	for range 7 {
		mostlyGreen = append(mostlyGreen, 10, 200, 20, 255)
	}
	for range 3 {
		mostlyGreen = append(mostlyGreen, 250, 250, 250, 255)
	}
	tests := []struct {
		name string
		pix  []byte
		want string
	}{
		{"mostly green", mostlyGreen, "#0ac814"},
		{"transparent pixels do not count", append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 200, 0, 0, 255), "#c80000"},
		{"all transparent", []byte{0, 0, 0, 0}, "#ffffff"},
	}
	for _, tt := range tests {
		if got := imaging.DominantColor(tt.pix); got != tt.want {
			t.Errorf("%s: DominantColor() = %s, want %s", tt.name, got, tt.want)
		}
	}
}
