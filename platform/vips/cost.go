package vips

import "github.com/pms-dev/pms/imaging"

// decodeCost estimates the peak bytes that decoding an image with header h
// and fitting it inside maxW×maxH holds, beyond the process's baseline. The
// model follows how libvips 8.14 and its codecs work, with terms measured
// on 50 MP inputs by TestPeakRSSHostile (which checks that every estimate
// stays above what the process really took), plus a tenth for safety:
//
//   - Sequential sources (baseline JPEG, non-interlaced PNG) stream: a strip
//     of the source, then the output in memory.
//   - A progressive JPEG keeps every DCT coefficient of the image, two
//     bytes per sample of each component, whatever the shrink-on-load.
//   - An interlaced PNG is decoded whole, at its full size and depth.
//   - A GIF frame is rendered into a canvas of 4 bytes a pixel.
//   - A still WebP is decoded at its scaled-on-load size; an animation is
//     composited on a canvas of 4 bytes a pixel.
//   - A HEIF image is decoded whole by libheif: YUV planes and RGB(A),
//     not measured, an estimate from how libheif works.
//   - Alpha is premultiplied in floats before the resize: about 3 bytes a
//     source pixel for PNG, and 16 bytes an output pixel for every format.
func decodeCost(format string, h header, maxW, maxH int) int64 {
	const fixed = 16 << 20 // codec state, libvips buffers, the encoder's output
	w, ht := int64(h.width), int64(h.height)
	pixels := w * ht
	box := max(fitted(w, ht, int64(maxW), int64(maxH)), fitted(ht, w, int64(maxW), int64(maxH))) // either way up
	sample := int64(h.bands * h.sampleBytes)
	cost := fixed + box*4*2 + w*sample*64 // the output and what it is resized from; a strip of the source
	switch {
	case format == imaging.FormatJPEG && h.interlaced:
		cost += pixels * 2 * int64(h.bands)
	case format == imaging.FormatPNG && h.interlaced:
		cost += pixels * sample
	case format == imaging.FormatGIF:
		cost += pixels * 4
	case format == imaging.FormatWebP && h.animated:
		cost += pixels * 4
	case format == imaging.FormatHEIF:
		// libheif decodes the whole image: HEVC's 4:2:0 planes, then
		// interleaved RGB(A), which libvips reads from.
		cost += pixels * (2 + int64(h.bands))
	}
	if h.alpha {
		cost += box * 16
		if format == imaging.FormatPNG || format == imaging.FormatGIF {
			cost += pixels * 3
		}
	}
	return cost + cost/10
}

// fitted returns the pixels of a w×h image fitted inside maxW×maxH, never
// upscaled: a ladder rung's box is tall (its width alone decides), so the
// box itself would overstate the output many times.
func fitted(w, h, maxW, maxH int64) int64 {
	if w <= 0 || h <= 0 {
		return 0
	}
	if w <= maxW && h <= maxH {
		return w * h
	}
	if w*maxH > h*maxW { // width decides
		return maxW * max(h*maxW/w, 1)
	}
	return max(w*maxH/h, 1) * maxH
}
