package vips_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"math"
	"strings"
	"testing"

	"github.com/h2non/bimg"
	"golang.org/x/image/webp"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/vips"
)

// softCutout returns a size×size product cut-out: a light blue disc whose
// edge is anti-aliased over 1.5 px, on transparent pixels whose colour
// is black, as cut-out tools leave them. Resizing it without
// premultiplying blends that black into the edge: a dark fringe.
func softCutout(size int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	r := float64(size) * 0.35
	for y := range size {
		for x := range size {
			d := math.Hypot(float64(x)+0.5-float64(size)/2, float64(y)+0.5-float64(size)/2)
			a := math.Min(1, math.Max(0, (r-d)/1.5))
			if a > 0 {
				img.SetNRGBA(x, y, color.NRGBA{40, 160, 230, uint8(math.Round(255 * a))})
			}
		}
	}
	return img
}

// boxDown shrinks img by the whole factor f, averaging each f×f block with
// its colour premultiplied by alpha (premultiplied) or not (straight), and
// returns the straight-alpha result.
func boxDown(img *image.NRGBA, f int, premultiplied bool) *image.NRGBA {
	w, h := img.Bounds().Dx()/f, img.Bounds().Dy()/f
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			var r, g, b, a float64
			for j := range f {
				for i := range f {
					c := img.NRGBAAt(x*f+i, y*f+j)
					wt := 1.0
					if premultiplied {
						wt = float64(c.A) / 255
					}
					r, g, b = r+wt*float64(c.R), g+wt*float64(c.G), b+wt*float64(c.B)
					a += float64(c.A)
				}
			}
			n := float64(f * f)
			div := n
			if premultiplied {
				div = a / 255
			}
			if div > 0 {
				out.SetNRGBA(x, y, color.NRGBA{uint8(math.Round(r / div)), uint8(math.Round(g / div)), uint8(math.Round(b / div)), uint8(math.Round(a / n))})
			}
		}
	}
	return out
}

// onto composites the straight-alpha colour c over the opaque colour bg.
func onto(c color.NRGBA, bg [3]float64) [3]float64 {
	a := float64(c.A) / 255
	return [3]float64{float64(c.R)*a + bg[0]*(1-a), float64(c.G)*a + bg[1]*(1-a), float64(c.B)*a + bg[2]*(1-a)}
}

// lab converts an sRGB colour (0-255 a channel) to CIE L*a*b* (D65).
func lab(c [3]float64) [3]float64 {
	var lin [3]float64
	for i, v := range c {
		v /= 255
		if v <= 0.04045 {
			lin[i] = v / 12.92
		} else {
			lin[i] = math.Pow((v+0.055)/1.055, 2.4)
		}
	}
	x := (0.4124*lin[0] + 0.3576*lin[1] + 0.1805*lin[2]) / 0.95047
	y := 0.2126*lin[0] + 0.7152*lin[1] + 0.0722*lin[2]
	z := (0.0193*lin[0] + 0.1192*lin[1] + 0.9505*lin[2]) / 1.08883
	f := func(t float64) float64 {
		if t > 216.0/24389 {
			return math.Cbrt(t)
		}
		return (24389.0/27*t + 16) / 116
	}
	return [3]float64{116*f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))}
}

// deltaE is the CIE76 colour difference.
func deltaE(a, b [3]float64) float64 {
	la, lb := lab(a), lab(b)
	return math.Sqrt((la[0]-lb[0])*(la[0]-lb[0]) + (la[1]-lb[1])*(la[1]-lb[1]) + (la[2]-lb[2])*(la[2]-lb[2]))
}

// disc is the colour of softCutout's disc.
var disc = color.NRGBA{40, 160, 230, 255}

// edgeDiff compares got, a w×h image composited on bg, with what a
// premultiplied resize gives at the same alpha (alpha(x, y)): the disc's own
// colour, composited on bg, since premultiplying keeps the transparent
// pixels' black out of every edge. It compares the edge pixels (neither
// fully transparent nor opaque) and returns the mean and largest ΔE, the
// largest darkening (how much lower L* an edge pixel is than the
// reference) and how many were compared.
func edgeDiff(w, h int, got func(x, y int) [3]float64, alpha func(x, y int) uint8, bg [3]float64) (mean, worst, darker float64, n int) {
	for y := range h {
		for x := range w {
			a := alpha(x, y)
			if a < 8 || a > 247 {
				continue
			}
			ref := disc
			ref.A = a
			g, r := got(x, y), onto(ref, bg)
			d := deltaE(g, r)
			darker = max(darker, lab(r)[0]-lab(g)[0])
			mean += d
			worst = max(worst, d)
			n++
		}
	}
	return mean / float64(max(n, 1)), worst, darker, n
}

// TestAlphaEdgesNoFringe measures the fringe: a cut-out shrunk 4× by the
// ladder's WebP rung (alpha kept) and JPEG rung (flattened onto
// vips.background), composited on that background, must match the
// premultiplied reference (the disc's colour at each edge pixel's alpha)
// within a small ΔE on every edge pixel, while a straight-alpha resize (a
// box filter that does not premultiply: the dark fringe) must not: the
// measurement tells the two apart.
func TestAlphaEdgesNoFringe(t *testing.T) {
	t.Parallel()
	const size, factor = 400, 4
	src := softCutout(size)
	naive := boxDown(src, factor, false)
	data := encodePNG(t, src)
	white := [3]float64{255, 255, 255}
	w := size / factor

	naiveMean, naiveWorst, naiveDarker, _ := edgeDiff(w, w, func(x, y int) [3]float64 { return onto(naive.NRGBAAt(x, y), white) },
		func(x, y int) uint8 { return naive.NRGBAAt(x, y).A }, white)
	if naiveWorst < 10 {
		t.Fatalf("a straight-alpha resize is only %.1f ΔE off at worst: the cut-out shows no fringe to measure", naiveWorst)
	}
	t.Logf("straight-alpha resize (the fringe): edge ΔE mean %.1f, worst %.1f, darker by %.1f L*", naiveMean, naiveWorst, naiveDarker)
	c := newCompressor(t, 1)
	lossless, err := bimg.Resize(data, bimg.Options{Type: bimg.WEBP, Lossless: true})
	if err != nil {
		t.Fatalf("make a lossless webp cut-out: %v", err)
	}
	var px func(x, y int) color.NRGBA // the PNG's resize, whose alpha the encoders get
	for _, in := range []struct {
		name string
		data []byte
	}{{"webp", lossless}, {"png", data}, {"webp via Variants", lossless}, {"png via Variants", data}} {
		s, err := c.Sample(context.Background(), imaging.Source{Data: in.data})
		if strings.HasSuffix(in.name, "via Variants") {
			// The sample comes from the w×w rung, resized from the 3w×3w
			// one in memory.
			_, s, err = c.Variants(context.Background(), imaging.Source{Data: in.data}, []imaging.Preset{{MaxWidth: 3 * w, MaxHeight: 3 * w}, {MaxWidth: w, MaxHeight: w}})
		}
		if err != nil || s.W != w || s.H != w {
			t.Fatalf("Sample(%s) = %d×%d, %v; want %d×%d", in.name, s.W, s.H, err, w, w)
		}
		at := func(x, y int) color.NRGBA {
			i := (y*w + x) * 4
			return color.NRGBA{s.Pix[i], s.Pix[i+1], s.Pix[i+2], s.Pix[i+3]}
		}
		if in.name == "png" {
			px = at
		}
		rm, rw, rd, rn := edgeDiff(w, w, func(x, y int) [3]float64 { return onto(at(x, y), white) }, func(x, y int) uint8 { return at(x, y).A }, white)
		t.Logf("libvips resize of the %s before encoding: %d edge pixels, ΔE mean %.2f, worst %.2f, darker by %.2f L*", in.name, rn, rm, rw, rd)
		if rn < 100 || rm > 0.5 || rw > 2 || rd > 1 {
			t.Errorf("libvips resize of the %s: %d edge pixels, ΔE mean %.2f, worst %.2f, darker by %.2f L*; want at most 0.5, 2 and 1 (a straight-alpha resize: %.1f, %.1f, %.1f)",
				in.name, rn, rm, rw, rd, naiveMean, naiveWorst, naiveDarker)
		}
	}

	// The encoders add their own error at a hard edge (JPEG's and WebP's
	// quantisation, WebP's 4:2:0 chroma): each output is compared with the
	// premultiplied reference put through the same encoder at its own size,
	// so that only what the resize added counts.
	ref := encodePNG(t, boxDown(src, factor, true))
	for _, tt := range []struct {
		format string
		bg     string
		rgb    [3]float64
	}{
		{imaging.FormatWebP, "#ffffff", white},
		{imaging.FormatJPEG, "#ffffff", white},
		{imaging.FormatJPEG, "#f0e6d2", [3]float64{0xf0, 0xe6, 0xd2}},
	} {
		cfg := testConfig(1)
		cfg.Background = tt.bg
		c, err := vips.New(cfg, imaging.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		ladder := imaging.DefaultLadder()
		rung := ladder.Presets()[0]
		rung.Format, rung.MaxWidth, rung.Quality = tt.format, w, ladder.JPEGQuality
		if tt.format == imaging.FormatWebP {
			rung.Quality = ladder.WebPQuality
		}
		for _, way := range []string{"Compress", "Variants"} {
			checkEncodedFringe(t, c, way, rung, data, ref, tt.rgb, tt.bg, px)
		}
	}
}

// checkEncodedFringe makes rung (w×w) of data, the 4w×4w cut-out, and of
// ref, its premultiplied reference, with Compress or with Variants (where
// the w×w output is resized in memory from the decoded 4w×4w image, by the
// same resize as Compress's), and compares the edges of the output
// composited on rgb with the reference's, put through the same encoder; px
// is the alpha the encoders get. (The samples above check the edges of an
// image resized twice, 4w to 3w to w, before encoding.)
func checkEncodedFringe(t *testing.T, c *vips.Compressor, way string, rung imaging.Preset, data, ref []byte, rgb [3]float64, bg string, px func(x, y int) color.NRGBA) {
	t.Helper()
	w := rung.MaxWidth
	var got [2]struct{ mean, worst, darker float64 }
	for i, in := range [][]byte{data, ref} {
		out, err := c.Compress(context.Background(), imaging.Source{Data: in}, rung)
		if way == "Variants" {
			big := rung
			big.MaxWidth, big.MaxHeight = 4*w, 4*w
			var outs []imaging.Output
			outs, _, err = c.Variants(context.Background(), imaging.Source{Data: in}, []imaging.Preset{big, rung})
			if err == nil {
				out = outs[1]
			}
		}
		if err != nil {
			t.Fatalf("%s(%s) error = %v", way, rung.Format, err)
		}
		if out.Width != w || out.Height != w || out.Format != rung.Format {
			t.Fatalf("%s(%s) = %s %d×%d, want %d×%d", way, rung.Format, out.Format, out.Width, out.Height, w, w)
		}
		at := decodeOnto(t, out, rgb)
		if i == 0 && deltaE(at(0, 0), rgb) > 2 {
			t.Errorf("%s %s on %s: corner is %v, want the background", way, rung.Format, bg, at(0, 0))
		}
		got[i].mean, got[i].worst, got[i].darker, _ = edgeDiff(w, w, at, func(x, y int) uint8 { return px(x, y).A }, rgb)
	}
	o, r := got[0], got[1]
	t.Logf("%s %s q%d on %s: ΔE mean %.2f, worst %.2f, darker by %.2f L*; the reference through the encoder: %.2f, %.2f, %.2f",
		way, rung.Format, rung.Quality, bg, o.mean, o.worst, o.darker, r.mean, r.worst, r.darker)
	if o.mean > r.mean+0.5 || o.worst > r.worst+2 || o.darker > r.darker+1 {
		t.Errorf("%s %s on %s: ΔE mean %.2f, worst %.2f, darker by %.2f; want within 0.5, 2 and 1 of the reference's %.2f, %.2f, %.2f",
			way, rung.Format, bg, o.mean, o.worst, o.darker, r.mean, r.worst, r.darker)
	}
}

// decodeOnto decodes out and returns its pixels composited on bg: a JPEG
// is already opaque; a WebP must keep its alpha (lossy with alpha) and be
// transparent at the corner.
func decodeOnto(t *testing.T, out imaging.Output, bg [3]float64) func(x, y int) [3]float64 {
	t.Helper()
	if out.Format == imaging.FormatJPEG {
		dec, _, err := image.Decode(bytes.NewReader(out.Data))
		if err != nil {
			t.Fatalf("decode jpeg: %v", err)
		}
		return func(x, y int) [3]float64 {
			r, g, b, _ := dec.At(x, y).RGBA()
			return [3]float64{float64(r >> 8), float64(g >> 8), float64(b >> 8)}
		}
	}
	dec, err := webp.Decode(bytes.NewReader(out.Data))
	if err != nil {
		t.Fatalf("decode webp: %v", err)
	}
	if _, ok := dec.(*image.NYCbCrA); !ok {
		t.Fatalf("webp output decodes as %T, want lossy with alpha (NYCbCrA)", dec)
	}
	px := func(x, y int) color.NRGBA { return color.NRGBAModel.Convert(dec.At(x, y)).(color.NRGBA) }
	if a := px(0, 0).A; a != 0 {
		t.Errorf("webp corner alpha = %d, want transparent", a)
	}
	return func(x, y int) [3]float64 { return onto(px(x, y), bg) }
}
