package imaging

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/webp"
)

// headerDecoders read an image's size from its header without decoding
// pixels. Importing the packages also registers them with image.Decode.
var headerDecoders = map[string]func(io.Reader) (image.Config, error){
	FormatJPEG: jpeg.DecodeConfig,
	FormatPNG:  png.DecodeConfig,
	FormatGIF:  gif.DecodeConfig,
	FormatWebP: webp.DecodeConfig,
	FormatHEIF: heifConfig,
}

// sniffLen is how many bytes sniffFormat needs to recognise every format.
const sniffLen = 12

// sniffFormat returns the format whose magic number starts b, or "".
func sniffFormat(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\xff\xd8\xff")):
		return FormatJPEG
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return FormatPNG
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return FormatGIF
	case len(b) >= sniffLen && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return FormatWebP
	case isHEIF(b):
		return FormatHEIF
	}
	return ""
}

// readImage reads an image body of at most MaxBytes. It checks the type and
// the declared size as soon as the header has arrived, before reading the
// rest, then walks the whole structure (ReadHeader) and checks the canvas a
// decoder would allocate, which can be larger than the declared one (a GIF
// frame grows its screen). It never decodes pixels. size is the declared
// Content-Length (-1 when unknown); it is only a hint. Failures are
// returned as *Failure; read errors are returned as they are, for the
// caller to classify.
func (f *Fetcher) readImage(body io.Reader, size int64) (Source, error) {
	limited := &readErrRecorder{r: io.LimitReader(body, f.cfg.MaxBytes+1)}
	var buf bytes.Buffer
	if size > 0 {
		buf.Grow(int(min(size, f.cfg.MaxBytes)))
	}
	// Everything the header decoder reads, including what it buffers ahead,
	// lands in buf; the rest of the body is appended after it.
	tee := io.TeeReader(limited, &buf)
	head := make([]byte, sniffLen)
	n, _ := io.ReadFull(tee, head)
	head = head[:n]
	if limited.err != nil {
		return Source{}, fmt.Errorf("read body: %w", limited.err)
	}
	format := sniffFormat(head)
	if format == "" {
		return Source{}, Permanent(CodeNotAnImage, fmt.Errorf("content (%d bytes seen) is not a jpeg, png, webp, gif or heif image", n))
	}
	cfg, err := headerDecoders[format](io.MultiReader(bytes.NewReader(head), tee))
	switch {
	case limited.err != nil:
		return Source{}, fmt.Errorf("read body: %w", limited.err)
	case int64(buf.Len()) > f.cfg.MaxBytes:
		return Source{}, f.tooLarge()
	case err != nil:
		return Source{}, Permanent(CodeNotAnImage, fmt.Errorf("read %s header: %w", format, err))
	case cfg.Width <= 0 || cfg.Height <= 0:
		return Source{}, Permanent(CodeNotAnImage, fmt.Errorf("%s header declares %d×%d pixels", format, cfg.Width, cfg.Height))
	}
	if err := f.limits.Check(format, cfg.Width, cfg.Height); err != nil {
		return Source{}, err
	}
	if _, err := buf.ReadFrom(limited); err != nil {
		return Source{}, fmt.Errorf("read body: %w", err)
	}
	if int64(buf.Len()) > f.cfg.MaxBytes {
		return Source{}, f.tooLarge()
	}
	h, err := ReadHeader(buf.Bytes())
	if err != nil {
		return Source{}, err
	}
	if err := f.limits.Check(format, h.Width, h.Height); err != nil {
		return Source{}, err
	}
	return Source{Data: buf.Bytes(), Header: h}, nil
}

func (f *Fetcher) tooLarge() error {
	return Permanent("too_large", fmt.Errorf("body is more than %d bytes", f.cfg.MaxBytes))
}

// readErrRecorder keeps the first error other than io.EOF from r, so a
// header that fails to decode because the connection broke is not mistaken
// for a file that is not an image.
type readErrRecorder struct {
	r   io.Reader
	err error
}

func (r *readErrRecorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && r.err == nil {
		r.err = err
	}
	return n, err
}
