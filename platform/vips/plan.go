package vips

import (
	"github.com/h2non/bimg"

	"github.com/pms-dev/pms/imaging"
)

// plan is what to do with one source for one preset.
type plan struct {
	resize                    bool
	storedWidth, storedHeight int        // target size before rotating, when resize
	rotate                    bimg.Angle // clockwise, applied before flip
	flip                      bool       // mirror left to right
	format                    string     // imaging.FormatJPEG or imaging.FormatWebP
	quality                   int
}

// newPlan fits the upright image inside maxW×maxH without upscaling.
func newPlan(h header, maxW, maxH, quality int) plan {
	pl := plan{format: imaging.FormatJPEG, quality: quality}
	if h.alpha {
		pl.format = imaging.FormatWebP
	}
	pl.rotate, pl.flip = orient(h.orientation)

	// Orientations 5–8 turn the image a quarter: the box applies to the
	// stored height as width.
	w, h2 := h.width, h.height
	swapped := h.orientation >= 5
	if swapped {
		w, h2 = h2, w
	}
	tw, th := fit(w, h2, maxW, maxH)
	if tw == w && th == h2 {
		return pl
	}
	pl.resize = true
	pl.storedWidth, pl.storedHeight = tw, th
	if swapped {
		pl.storedWidth, pl.storedHeight = th, tw
	}
	return pl
}

// fit returns the size of a w×h image scaled to fit inside maxW×maxH,
// keeping its aspect ratio and never upscaling. The constraining side gets
// the box's size exactly; the other is rounded and at least 1.
func fit(w, h, maxW, maxH int) (int, int) {
	if w <= maxW && h <= maxH {
		return w, h
	}
	// maxW/w <= maxH/h, in integers.
	if int64(maxW)*int64(h) <= int64(maxH)*int64(w) {
		return maxW, max(1, roundDiv(int64(h)*int64(maxW), int64(w)))
	}
	return max(1, roundDiv(int64(w)*int64(maxH), int64(h))), maxH
}

func roundDiv(a, b int64) int { return int((2*a + b) / (2 * b)) }

// orient returns how to turn an image with the given EXIF orientation
// upright: rotate clockwise, then mirror left to right.
func orient(orientation int) (bimg.Angle, bool) {
	switch orientation {
	case 2:
		return bimg.D0, true
	case 3:
		return bimg.D180, false
	case 4:
		return bimg.D180, true
	case 5:
		return bimg.D90, true
	case 6:
		return bimg.D90, false
	case 7:
		return bimg.D270, true
	case 8:
		return bimg.D270, false
	}
	return bimg.D0, false
}

func (pl plan) bimgType() bimg.ImageType {
	if pl.format == imaging.FormatWebP {
		return bimg.WEBP
	}
	return bimg.JPEG
}
