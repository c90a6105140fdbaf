package vips

import "github.com/pms-dev/pms/imaging"

// decodeCost estimates the peak bytes that decoding an image with header h
// and fitting it inside maxW×maxH holds, beyond the process's baseline. The
// model follows how libvips and its codecs work, and was calibrated by
// measuring peak RSS (see TestDecodeCostBounds):
//
//   - Sequential sources (baseline JPEG, non-interlaced PNG) stream: a few
//     lines of the (shrunk-on-load) source, then the output in memory.
//   - A progressive JPEG keeps every DCT coefficient of the image (two bytes
//     per sample of each component) whatever the shrink.
//   - An interlaced PNG is decoded whole, at its full size and depth.
//   - A GIF frame is rendered into a canvas of 4 bytes a pixel, then copied.
//   - A WebP is decoded whole, at the (scaled-on-load) size for a still
//     image and at canvas size for an animation.
func decodeCost(format string, h header, maxW, maxH int) int64 {
	const fixed = 8 << 20 // codec state, libvips buffers, the encoder's output
	w, ht := int64(h.width), int64(h.height)
	pixels := w * ht
	out := min(int64(maxW)*int64(maxH), pixels) * 4 * 2 // the thumbnail, and the image it is resized from
	sample := int64(h.bands * h.sampleBytes)
	lines := w * sample * 64 // a strip of the source
	switch {
	case format == imaging.FormatJPEG && h.interlaced:
		return fixed + out + pixels*2*int64(h.bands)
	case format == imaging.FormatPNG && h.interlaced:
		return fixed + out + pixels*sample
	case format == imaging.FormatGIF:
		return fixed + out + pixels*4*2
	case format == imaging.FormatWebP && h.pages > 1:
		return fixed + out + pixels*4*2
	case format == imaging.FormatWebP:
		return fixed + out*2 + lines
	}
	return fixed + out + lines
}
