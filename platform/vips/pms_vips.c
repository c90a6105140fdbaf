#include "pms_vips.h"

#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

// loader_for names the only libvips loader each kind may reach.
static const char *
loader_for(int kind)
{
	switch (kind) {
	case PMS_JPEG: return "VipsForeignLoadJpegBuffer";
	case PMS_PNG:  return "VipsForeignLoadPngBuffer";
	case PMS_WEBP: return "VipsForeignLoadWebpBuffer";
	case PMS_GIF:  return "VipsForeignLoadNsgifBuffer";
	case PMS_HEIF: return "VipsForeignLoadHeifBuffer";
	}
	return NULL;
}

int
pms_can_load(int kind)
{
	const char *name = loader_for(kind);

	return name && g_type_from_name(name) != 0;
}

// check_loader fails unless libvips would give buf to the loader of kind:
// the Go side sniffed the bytes, and this makes sure libvips agrees, so no
// other loader (and none of its parsers) ever sees a source.
static int
check_loader(const void *buf, size_t len, int kind)
{
	const char *want = loader_for(kind);
	const char *got;

	if (!want) {
		vips_error("pms", "unsupported image kind %d", kind);
		return -1;
	}
	if (!(got = vips_foreign_find_load_buffer(buf, len)))
		return -1;
	if (strcmp(got, want) != 0) {
		vips_error("pms", "libvips would load this with %s, not %s", got, want);
		return -1;
	}
	return 0;
}

static int
load_header(const void *buf, size_t len, int kind, int fail_on, VipsImage **im)
{
	// The loaders read buf without keeping it: the operation cache, which
	// could hold a reference, is off (see New in vips.go).
	void *b = (void *) buf;

	switch (kind) {
	case PMS_JPEG: return vips_jpegload_buffer(b, len, im, "fail_on", fail_on, NULL);
	case PMS_PNG:  return vips_pngload_buffer(b, len, im, "fail_on", fail_on, NULL);
	case PMS_WEBP: return vips_webpload_buffer(b, len, im, "fail_on", fail_on, NULL);
	case PMS_GIF:  return vips_gifload_buffer(b, len, im, "fail_on", fail_on, NULL);
	// libheif applies the HEIF transforms (irot, imir) as it decodes,
	// and libvips then reports orientation 1.
	case PMS_HEIF: return vips_heifload_buffer(b, len, im, "fail_on", fail_on, NULL);
	}
	vips_error("pms", "unsupported image kind %d", kind);
	return -1;
}

int
pms_probe(const void *buf, size_t len, int kind, int fail_on, pms_header *h)
{
	VipsImage *im = NULL;
	int interlaced = 0;

	if (check_loader(buf, len, kind) || load_header(buf, len, kind, fail_on, &im))
		return -1;
	h->width = vips_image_get_width(im);
	h->height = vips_image_get_page_height(im);
	h->bands = vips_image_get_bands(im);
	h->bytes = (int) vips_format_sizeof(vips_image_get_format(im));
	h->alpha = vips_image_hasalpha(im);
	h->orientation = vips_image_get_orientation(im);
	h->pages = vips_image_get_n_pages(im);
	if (vips_image_get_typeof(im, "interlaced"))
		(void) vips_image_get_int(im, "interlaced", &interlaced);
	h->interlaced = interlaced;
	h->icc = vips_image_get_typeof(im, VIPS_META_ICC_NAME) != 0;
	h->animated = vips_image_get_typeof(im, "delay") != 0;
	g_object_unref(im);
	return 0;
}

// on_eval stops the computation of image once the stop flag is set;
// libvips calls it as each part of the image is computed.
static void
on_eval(VipsImage *image, VipsProgress *progress, void *data)
{
	pms_thumb *t = data;

	(void) progress;
	if (__atomic_load_n(&t->stop, __ATOMIC_RELAXED))
		vips_image_set_kill(image, TRUE);
}

// write_memory computes lazy into a new memory image, where the work can
// be stopped (see on_eval), so the encoders that follow read finished
// pixels and decoding errors surface now. It unrefs lazy.
static int
write_memory(VipsImage *lazy, pms_thumb *t, VipsImage **out)
{
	VipsImage *mem = vips_image_new_memory();
	int rc;

	vips_image_set_progress(mem, TRUE);
	g_signal_connect(mem, "eval", G_CALLBACK(on_eval), t);
	rc = vips_image_write(lazy, mem);
	g_object_unref(lazy);
	g_signal_handlers_disconnect_by_func(mem, G_CALLBACK(on_eval), t);
	vips_image_set_progress(mem, FALSE);
	if (rc) {
		g_object_unref(mem);
		return -1;
	}
	*out = mem;
	return 0;
}

// thumbnail_lazy builds the pipeline of pms_thumbnail without computing a
// pixel. With rotate unset, the EXIF orientation is not applied: that is
// the only step of vips_thumbnail that computes at build time (it copies
// the image to memory to turn it).
static int
thumbnail_lazy(const void *buf, size_t len, pms_thumb *t, int width, int height, int rotate, VipsImage **lazy)
{
	char options[64];

	// libvips 8.14's thumbnail_buffer does not hand its fail_on to the
	// loader: only option_string reaches it.
	g_snprintf(options, sizeof(options), "fail_on=%s",
		vips_enum_nick(VIPS_TYPE_FAIL_ON, t->fail_on));
	// size=down: fit inside the box, never upscale. export_profile: the
	// embedded ICC profile is applied and the result is sRGB; libvips 8.14
	// shifts the colours of an image without a profile when it is set. Alpha
	// is premultiplied while resizing, so edges keep their colour.
	return vips_thumbnail_buffer((void *) buf, len, lazy, width,
		"height", height,
		"size", VIPS_SIZE_DOWN,
		"no_rotate", !rotate,
		"option_string", options,
		"export_profile", t->icc ? "srgb" : NULL,
		NULL);
}

int
pms_thumbnail(const void *buf, size_t len, int kind, pms_thumb *t, VipsImage **out)
{
	VipsImage *lazy = NULL;

	*out = NULL;
	if (check_loader(buf, len, kind) ||
			thumbnail_lazy(buf, len, t, t->width, t->height, 1, &lazy))
		return -1;
	return write_memory(lazy, t, out);
}

int
pms_fit(const void *buf, size_t len, int kind, pms_thumb *t, int swap, int *width, int *height)
{
	VipsImage *lazy = NULL;

	if (check_loader(buf, len, kind))
		return -1;
	// Unturned, the box is turned instead: vips_thumbnail fits the stored
	// image into the box swapped when the orientation swaps the sides.
	if (thumbnail_lazy(buf, len, t, swap ? t->height : t->width, swap ? t->width : t->height, 0, &lazy))
		return -1;
	*width = swap ? lazy->Ysize : lazy->Xsize;
	*height = swap ? lazy->Xsize : lazy->Ysize;
	g_object_unref(lazy);
	return 0;
}

int
pms_resize(VipsImage *in, pms_thumb *t, VipsImage **out)
{
	VipsImage *x[4] = { NULL, NULL, NULL, NULL };
	VipsImage *im = in;
	VipsBandFormat format = vips_image_get_format(in);
	int premultiply = vips_image_hasalpha(in);
	int rc = -1;

	*out = NULL;
	// As vips_thumbnail does: alpha premultiplied (in floats) while
	// resizing, so the colour of transparent pixels stays out of the edges,
	// then back to straight alpha in the input's format.
	if (premultiply) {
		if (vips_premultiply(im, &x[0], NULL))
			goto out;
		im = x[0];
	}
	if (vips_resize(im, &x[1], (double) t->width / in->Xsize,
			"vscale", (double) t->height / in->Ysize,
			NULL))
		goto out;
	im = x[1];
	if (premultiply) {
		if (vips_unpremultiply(im, &x[2], NULL) ||
				vips_cast(x[2], &x[3], format, NULL))
			goto out;
		im = x[3];
	}
	if (im->Xsize != t->width || im->Ysize != t->height) {
		vips_error("pms", "resize made %dx%d, not %dx%d", im->Xsize, im->Ysize, t->width, t->height);
		goto out;
	}
	g_object_ref(im);
	rc = write_memory(im, t, out);
out:
	for (int i = 0; i < 4; i++)
		if (x[i])
			g_object_unref(x[i]);
	return rc;
}

// jpegsave_opaque encodes im as JPEG, flattening an alpha channel onto
// the background colour bg (libvips' default would be black). A grey image
// is flattened onto bg's mean.
static int
jpegsave_opaque(VipsImage *im, int quality, const double bg[3], void **buf, size_t *len)
{
	VipsImage *flat = NULL;
	int rc;

	if (vips_image_hasalpha(im)) {
		VipsArrayDouble *back = vips_image_get_bands(im) >= 4
			? vips_array_double_newv(3, bg[0], bg[1], bg[2])
			: vips_array_double_newv(1, (bg[0] + bg[1] + bg[2]) / 3);

		rc = vips_flatten(im, &flat, "background", back, NULL);
		vips_area_unref(VIPS_AREA(back));
		if (rc)
			return -1;
		im = flat;
	}
	// A cut-out flattened onto a plain background has hard colour edges,
	// which 4:2:0 chroma subsampling smears into a halo: keep full chroma
	// for those (about a tenth more bytes).
	rc = vips_jpegsave_buffer(im, buf, len,
		"Q", quality,
		"strip", TRUE,
		"optimize_coding", TRUE,
		"subsample_mode", flat ? VIPS_FOREIGN_SUBSAMPLE_OFF : VIPS_FOREIGN_SUBSAMPLE_AUTO,
		NULL);
	if (flat)
		g_object_unref(flat);
	return rc;
}

int
pms_save(VipsImage *im, int format, int quality, const double bg[3], void **buf, size_t *len)
{
	switch (format) {
	case PMS_OUT_JPEG:
		return jpegsave_opaque(im, quality, bg, buf, len);
	case PMS_OUT_WEBP:
		// libvips 8.14 ignores strip here (libvips#3340): the Go side
		// removes the metadata chunks.
		return vips_webpsave_buffer(im, buf, len,
			"Q", quality,
			"strip", TRUE,
			NULL);
	case PMS_OUT_AVIF:
		// effort 2 of 0-9: 1600 px in about 0.3 s here, against 1.3 s at
		// the default 4, for 5% more bytes.
		return vips_heifsave_buffer(im, buf, len,
			"Q", quality,
			"compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1,
			"effort", 2,
			"strip", TRUE,
			NULL);
	}
	vips_error("pms", "unsupported output format %d", format);
	return -1;
}

int
pms_rgba(VipsImage *im, void **buf, size_t *len)
{
	VipsImage *t[3] = { NULL, NULL, NULL };
	VipsImage *x;
	int rc = -1;

	*buf = NULL;
	if (vips_colourspace(im, &t[0], VIPS_INTERPRETATION_sRGB, NULL))
		goto out;
	x = t[0];
	if (!vips_image_hasalpha(x)) {
		if (vips_bandjoin_const1(x, &t[1], 255.0, NULL))
			goto out;
		x = t[1];
	}
	if (vips_cast_uchar(x, &t[2], NULL))
		goto out;
	if ((*buf = vips_image_write_to_memory(t[2], len)))
		rc = 0;
out:
	for (int i = 0; i < 3; i++)
		if (t[i])
			g_object_unref(t[i]);
	return rc;
}

// set_tile_height sets libvips' tile height the only way 8.14 offers: its
// (hidden) --vips-tile-height command-line option, parsed from a made-up
// command line.
static int
set_tile_height(int height)
{
	char arg[48];
	char *argv[] = { "pms", arg, NULL };
	char **args = argv;
	int argc = 2;
	GOptionContext *context = g_option_context_new(NULL);
	GOptionGroup *group = g_option_group_new("vips", "libvips", "libvips", NULL, NULL);
	GError *error = NULL;
	gboolean ok;

	g_snprintf(arg, sizeof(arg), "--vips-tile-height=%d", height);
	vips_add_option_entries(group);
	g_option_context_set_main_group(context, group); // the context owns group
	ok = g_option_context_parse(context, &argc, &args, &error);
	g_option_context_free(context);
	if (!ok) {
		vips_error("pms", "set tile height: %s", error ? error->message : "refused");
		g_clear_error(&error);
		return -1;
	}
	return 0;
}

int
pms_tune_memory(int mmap_threshold, int trim_threshold, int tile_height)
{
#ifdef __GLIBC__
	// mallopt returns 1 on success.
	if (mallopt(M_MMAP_THRESHOLD, mmap_threshold) != 1 ||
			mallopt(M_TRIM_THRESHOLD, trim_threshold) != 1) {
		vips_error("pms", "mallopt refused the mmap or trim threshold");
		return -1;
	}
#else
	(void) mmap_threshold;
	(void) trim_threshold;
#endif
	return set_tile_height(tile_height);
}

char *
pms_take_error(void)
{
	char *msg = g_strdup(vips_error_buffer());

	vips_error_clear();
	return msg;
}

static void
drop_log(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
	(void) domain;
	(void) level;
	(void) message;
	(void) data;
}

void
pms_quiet_warnings(void)
{
	g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO, drop_log, NULL);
}
