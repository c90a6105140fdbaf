// The C side of package vips: libvips calls that bimg does not offer
// (loader checks, fail-on levels, premultiplied thumbnails, deadlines).
#ifndef PMS_VIPS_H
#define PMS_VIPS_H

#include <stdlib.h>
#include <vips/vips.h>

// Source kinds; the Go side maps imaging formats to these.
enum { PMS_JPEG = 1, PMS_PNG, PMS_WEBP, PMS_GIF, PMS_HEIF };

// Output encodings.
enum { PMS_OUT_JPEG = 1, PMS_OUT_WEBP, PMS_OUT_AVIF };

// pms_header is what libvips reads from a source's header, before it
// decodes any pixel: the size it will allocate for the first frame.
typedef struct {
	int width;
	int height;      // of the first page (frame): what is decoded
	int bands;
	int bytes;       // per band sample: 1, or 2 for 16-bit sources
	int alpha;
	int orientation; // EXIF, 1-8
	int pages;       // frames or pages in the file
	int interlaced;  // progressive JPEG or interlaced PNG
	int icc;         // has an embedded ICC profile
	int animated;    // frames are composited on a canvas (GIF, WebP animation)
} pms_header;

// pms_probe reads the header of buf with the loader for kind, refusing
// bytes that libvips would give to any other loader.
int pms_probe(const void *buf, size_t len, int kind, int fail_on, pms_header *h);

// pms_thumb says how to make a thumbnail.
typedef struct {
	int width, height; // the box to fit inside (never upscaled), or pms_resize's size
	int fail_on;       // a VipsFailOn
	int icc;           // apply the embedded ICC profile
	int stop;          // set (atomically, by another thread) to stop the work
} pms_thumb;

// pms_thumbnail decodes the first frame of buf, fits it inside the box
// (shrink-on-load, alpha premultiplied while resizing), turns it upright,
// converts it to sRGB and returns it in memory in *out, which the caller
// unrefs. Setting t->stop makes it fail at libvips' next progress report.
int pms_thumbnail(const void *buf, size_t len, int kind, pms_thumb *t, VipsImage **out);

// pms_fit returns in *width and *height the size pms_thumbnail would make
// of buf for t's box, turned upright, reading only headers: swap says
// whether buf's EXIF orientation swaps its sides.
int pms_fit(const void *buf, size_t len, int kind, pms_thumb *t, int swap, int *width, int *height);

// pms_resize resizes in, an image in memory, to exactly t->width by
// t->height (alpha premultiplied while resizing, as pms_thumbnail does)
// and returns the result in memory in *out, which the caller unrefs.
// Setting t->stop makes it fail at libvips' next progress report.
int pms_resize(VipsImage *in, pms_thumb *t, VipsImage **out);

// pms_save encodes im without metadata, as JPEG flattening any alpha onto
// the sRGB colour bg (0-255 a channel); the caller frees *buf with g_free.
int pms_save(VipsImage *im, int format, int quality, const double bg[3], void **buf, size_t *len);

// pms_rgba writes im as 8-bit sRGB with alpha (opaque when im has none)
// into *buf, 4 bytes a pixel; the caller frees *buf with g_free.
int pms_rgba(VipsImage *im, void **buf, size_t *len);

// pms_can_load reports whether this libvips has the loader for kind.
int pms_can_load(int kind);

// pms_quiet_warnings stops libvips from printing its warnings on stderr,
// outside the structured log: at the strictest fail-on level each one fails
// the image and its text reaches the error instead.
void pms_quiet_warnings(void);

// pms_tune_memory sets, for the whole process, glibc malloc's mmap and
// trim thresholds (bytes; fixed values also stop glibc from raising them
// as large blocks are freed) and the height of libvips' tiles and strips
// (its --vips-tile-height option). It returns 0, or -1 when a setting was
// refused.
int pms_tune_memory(int mmap_threshold, int trim_threshold, int tile_height);

// pms_take_error returns and clears the libvips error buffer; g_free it.
char *pms_take_error(void);

#endif
