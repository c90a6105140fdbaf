package vips

/*
#cgo pkg-config: vips
#include <stdlib.h>
#include <vips/vips.h>

typedef struct {
	int width;
	int height;
	int alpha;
	int orientation;
} pms_header;

enum { PMS_JPEG = 1, PMS_PNG, PMS_WEBP, PMS_GIF };

// pms_probe reads the header of an image with the loader for its kind; the
// pixels are not decoded. It returns non-zero on failure, with the reason in
// the libvips error buffer.
static int
pms_probe(void *buf, size_t len, int kind, pms_header *h)
{
	VipsImage *im = NULL;
	int err = -1;

	switch (kind) {
	case PMS_JPEG: err = vips_jpegload_buffer(buf, len, &im, NULL); break;
	case PMS_PNG:  err = vips_pngload_buffer(buf, len, &im, NULL); break;
	case PMS_WEBP: err = vips_webpload_buffer(buf, len, &im, NULL); break;
	case PMS_GIF:  err = vips_gifload_buffer(buf, len, &im, NULL); break;
	default: vips_error("pms", "unsupported image kind"); break;
	}
	if (err != 0)
		return -1;
	h->width = vips_image_get_width(im);
	h->height = vips_image_get_height(im);
	h->alpha = vips_image_hasalpha(im);
	h->orientation = vips_image_get_orientation(im);
	g_object_unref(im);
	return 0;
}

static char *
pms_take_error(void)
{
	char *msg = g_strdup(vips_error_buffer());
	vips_error_clear();
	return msg;
}
*/
import "C"

import (
	"errors"
	"runtime"
	"strings"
	"unsafe"

	"github.com/pms-dev/pms/imaging"
)

// header is what Compress needs to know about a source before resizing it.
type header struct {
	width, height int  // as stored, before the EXIF orientation is applied
	alpha         bool // the image has an alpha channel
	orientation   int  // EXIF orientation, 1–8
}

var kinds = map[string]C.int{
	imaging.FormatJPEG: C.PMS_JPEG,
	imaging.FormatPNG:  C.PMS_PNG,
	imaging.FormatWebP: C.PMS_WEBP,
	imaging.FormatGIF:  C.PMS_GIF,
}

// probe reads the header of data, which has the given format (a
// imaging.Format constant). It goes to libvips directly because bimg's
// Metadata and Size leak C memory on every call (h2non/bimg#483).
func probe(data []byte, format string) (header, error) {
	kind, ok := kinds[format]
	if !ok || len(data) == 0 {
		return header{}, errors.New("unsupported image format")
	}
	// libvips keeps per-thread buffers; free them before the goroutine moves on.
	defer C.vips_thread_shutdown()
	var h C.pms_header
	// libvips reads data only during the call: the operation cache, which
	// could keep a reference, is off (see New).
	rc := C.pms_probe(unsafe.Pointer(&data[0]), C.size_t(len(data)), kind, &h)
	runtime.KeepAlive(data)
	if rc != 0 {
		return header{}, takeError()
	}
	o := int(h.orientation)
	if o < 1 || o > 8 {
		o = 1
	}
	return header{width: int(h.width), height: int(h.height), alpha: h.alpha != 0, orientation: o}, nil
}

// takeError returns and clears the libvips error buffer.
func takeError() error {
	msg := C.pms_take_error()
	defer C.g_free(C.gpointer(msg))
	s := strings.TrimSpace(C.GoString(msg))
	if s == "" {
		s = "libvips failed without a message"
	}
	return errors.New(s)
}

// blockUntrusted stops libvips from using its loaders that are not fuzzed
// for hostile input (ImageMagick, poppler, …), as VIPS_BLOCK_UNTRUSTED=1 does.
func blockUntrusted() { C.vips_block_untrusted_set(C.TRUE) }
