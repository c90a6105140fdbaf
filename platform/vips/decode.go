package vips

/*
#cgo pkg-config: vips
#include "pms_vips.h"
*/
import "C"

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/pms-dev/pms/imaging"
)

// header is what libvips reads from a source before decoding it.
type header struct {
	width, height int // the first frame, as decoded: before the EXIF orientation
	bands         int
	sampleBytes   int // 1, or 2 for 16-bit samples
	alpha         bool
	orientation   int // EXIF orientation, 1–8
	pages         int
	interlaced    bool // progressive JPEG or interlaced PNG: decoded whole
	icc           bool // has an embedded ICC profile
	animated      bool // frames are composited on a canvas
}

var kinds = map[string]C.int{
	imaging.FormatJPEG: C.PMS_JPEG,
	imaging.FormatPNG:  C.PMS_PNG,
	imaging.FormatWebP: C.PMS_WEBP,
	imaging.FormatGIF:  C.PMS_GIF,
	imaging.FormatHEIF: C.PMS_HEIF,
}

// canLoad reports whether this libvips can decode format (HEIF needs
// libvips built with libheif). Tests replace it.
var canLoad = func(format string) bool {
	kind, ok := kinds[format]
	return ok && C.pms_can_load(kind) != 0
}

// failOnLevels are the libvips fail-on levels, by config name.
var failOnLevels = map[string]C.int{
	"none":      C.VIPS_FAIL_ON_NONE,
	"truncated": C.VIPS_FAIL_ON_TRUNCATED,
	"error":     C.VIPS_FAIL_ON_ERROR,
	"warning":   C.VIPS_FAIL_ON_WARNING,
}

// probe reads the header of data, which has the given format (an
// imaging.Format constant), without decoding pixels. It goes to libvips
// directly because bimg's Metadata and Size leak C memory on every call
// (h2non/bimg#483).
func probe(data []byte, format, failOn string) (header, error) {
	kind, ok := kinds[format]
	if !ok || len(data) == 0 {
		return header{}, errors.New("unsupported image format")
	}
	// libvips keeps per-thread buffers; free them before the goroutine moves on.
	defer C.vips_thread_shutdown()
	var h C.pms_header
	rc := C.pms_probe(unsafe.Pointer(&data[0]), C.size_t(len(data)), kind, failOnLevels[failOn], &h)
	runtime.KeepAlive(data)
	if rc != 0 {
		return header{}, takeError()
	}
	o := int(h.orientation)
	if o < 1 || o > 8 {
		o = 1
	}
	return header{
		width: int(h.width), height: int(h.height), bands: int(h.bands), sampleBytes: int(h.bytes),
		alpha: h.alpha != 0, orientation: o, pages: int(h.pages), interlaced: h.interlaced != 0,
		icc: h.icc != 0, animated: h.animated != 0,
	}, nil
}

// image is a decoded image in memory, owned by libvips.
type image struct{ p *C.VipsImage }

func (im image) width() int  { return int(C.vips_image_get_width(im.p)) }
func (im image) height() int { return int(C.vips_image_get_height(im.p)) }
func (im image) alpha() bool { return C.vips_image_hasalpha(im.p) != 0 }
func (im image) close()      { C.g_object_unref(C.gpointer(im.p)) }

// errStopped is returned by thumbnail when ctx ended while libvips worked.
var errStopped = errors.New("libvips stopped")

// thumbnail decodes the first frame of data, whose header is h, and fits it
// inside w×h (see pms_thumbnail). When ctx ends, libvips stops at its next progress report
// and thumbnail returns an error wrapping errStopped and ctx.Err().
func thumbnail(ctx context.Context, data []byte, format string, h header, w, ht int, failOn string) (image, error) {
	return stoppable(ctx, thumb(h, w, ht, failOn), func(t *C.pms_thumb, out **C.VipsImage) C.int {
		rc := C.pms_thumbnail(unsafe.Pointer(&data[0]), C.size_t(len(data)), kinds[format], t, out)
		runtime.KeepAlive(data)
		return rc
	})
}

// fit returns the size thumbnail would make of data, whose header is h,
// fitted inside w×h, reading only headers (see pms_fit).
func fit(data []byte, format string, h header, w, ht int, failOn string) (int, int, error) {
	defer C.vips_thread_shutdown()
	t := thumb(h, w, ht, failOn)
	// The embedded profile's transform comes after every resize and never
	// changes the size, and building it costs lcms a millisecond or more.
	t.icc = 0
	var fw, fh C.int
	swap := C.int(0)
	if h.orientation >= 5 {
		swap = 1
	}
	rc := C.pms_fit(unsafe.Pointer(&data[0]), C.size_t(len(data)), kinds[format], &t, swap, &fw, &fh)
	runtime.KeepAlive(data)
	if rc != 0 {
		return 0, 0, takeError()
	}
	return int(fw), int(fh), nil
}

// resize returns im resized to exactly w×h, alpha premultiplied while
// resizing (see pms_resize); it stops as thumbnail does when ctx ends.
func resize(ctx context.Context, im image, w, h int) (image, error) {
	t := C.pms_thumb{width: C.int(w), height: C.int(h)}
	return stoppable(ctx, t, func(t *C.pms_thumb, out **C.VipsImage) C.int { return C.pms_resize(im.p, t, out) })
}

// thumb returns the settings of a thumbnail of a source whose header is h,
// fitted inside w×ht.
func thumb(h header, w, ht int, failOn string) C.pms_thumb {
	t := C.pms_thumb{width: C.int(w), height: C.int(ht), fail_on: failOnLevels[failOn]}
	if h.icc {
		t.icc = 1
	}
	return t
}

// stoppable runs run with a copy of settings in C memory whose stop flag
// is set when ctx ends, so that libvips stops at its next progress report;
// then the error wraps errStopped and ctx.Err().
func stoppable(ctx context.Context, settings C.pms_thumb, run func(*C.pms_thumb, **C.VipsImage) C.int) (image, error) {
	defer C.vips_thread_shutdown()
	// The stop flag lives in C memory, so libvips can read it while Go sets it.
	t := (*C.pms_thumb)(C.calloc(1, C.size_t(unsafe.Sizeof(C.pms_thumb{}))))
	defer C.free(unsafe.Pointer(t))
	*t = settings
	stop := (*int32)(unsafe.Pointer(&t.stop))
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			atomic.StoreInt32(stop, 1)
		case <-done:
		}
	}()
	var out *C.VipsImage
	if run(t, &out) != 0 {
		err := takeError()
		if atomic.LoadInt32(stop) != 0 {
			return image{}, errors.Join(errStopped, ctx.Err(), err)
		}
		return image{}, err
	}
	return image{out}, nil
}

// save encodes im as JPEG (an alpha channel flattened onto the sRGB colour
// bg), WebP or AVIF at quality, without metadata.
func save(im image, format string, quality int, bg [3]float64) ([]byte, error) {
	defer C.vips_thread_shutdown()
	out := C.int(C.PMS_OUT_JPEG)
	switch format {
	case imaging.FormatWebP:
		out = C.PMS_OUT_WEBP
	case imaging.FormatAVIF:
		out = C.PMS_OUT_AVIF
	}
	var buf unsafe.Pointer
	var n C.size_t
	cbg := [3]C.double{C.double(bg[0]), C.double(bg[1]), C.double(bg[2])}
	if C.pms_save(im.p, out, C.int(quality), &cbg[0], &buf, &n) != 0 {
		return nil, takeError()
	}
	defer C.g_free(C.gpointer(buf))
	return C.GoBytes(buf, C.int(n)), nil
}

// rgba returns the pixels of im as 8-bit sRGB RGBA, 4 bytes a pixel.
func rgba(im image) ([]byte, error) {
	defer C.vips_thread_shutdown()
	var buf unsafe.Pointer
	var n C.size_t
	if C.pms_rgba(im.p, &buf, &n) != 0 {
		return nil, takeError()
	}
	defer C.g_free(C.gpointer(buf))
	if want := im.width() * im.height() * 4; int(n) != want {
		return nil, errors.New("libvips wrote an unexpected number of RGBA bytes")
	}
	return C.GoBytes(buf, C.int(n)), nil
}

// takeError returns and clears the libvips error buffer. The buffer is
// shared by the whole process, so under concurrency a message may carry
// another image's words too: callers classify failures by where they
// happened, never by this text, except for running out of memory.
func takeError() error {
	msg := C.pms_take_error()
	defer C.g_free(C.gpointer(msg))
	s := strings.TrimSpace(C.GoString(msg))
	if s == "" {
		s = "libvips failed without a message"
	}
	return errors.New(s)
}

// quietWarnings keeps libvips' warnings off stderr (see pms_quiet_warnings).
func quietWarnings() { C.pms_quiet_warnings() }

// blockUntrusted stops libvips from using its loaders that are not fuzzed
// for hostile input (ImageMagick, poppler, …), as VIPS_BLOCK_UNTRUSTED=1 does.
func blockUntrusted() { C.vips_block_untrusted_set(C.TRUE) }

// The process-wide memory settings New applies (see tuneMemory), chosen by
// measuring the worker's ten default variants of 29 photos (BENCHMARKS.md).
const (
	// mmapThreshold: blocks from 256 KiB up (strips, decoded images, codec
	// buffers) get their own mapping, handed back to the kernel when
	// freed. glibc's default starts at 128 KiB but rises to the size of
	// each large block freed, up to 32 MiB, after which such blocks are
	// carved from the arenas and their pages stay resident once freed:
	// 40–60 MB of free memory kept after a few images.
	mmapThreshold = 256 << 10
	// trimThreshold: an arena keeps at most 1 MiB of free memory at its
	// top (128 KiB by default), so that a block that comes and goes with
	// each strip does not cost fresh pages every time.
	trimThreshold = 1 << 20
	// tileHeight: libvips 8.14's tiles and strips are 128 lines high by
	// default, and its line caches on a sequential source (shrinking a
	// 6000-pixel-wide JPEG to 1600) grow to about eight of them: 18 MB.
	// At 32 lines they hold a quarter of that, for the same pixels and no
	// more CPU.
	tileHeight = 32
)

// tuneMemory applies the settings above to the whole process.
func tuneMemory() error {
	if C.pms_tune_memory(mmapThreshold, trimThreshold, tileHeight) != 0 {
		return takeError()
	}
	return nil
}
