package vips

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/pms-dev/pms/imaging"
)

// Variants returns what Compress makes of src for each preset of presets,
// in the presets' order, and what Sample makes of it, from one decode of
// src: one header check, one libvips slot and one reservation from the
// memory budget (see variantCost) for the whole set. Each output has the
// size Compress would give it, and the format, orientation, colours and
// stripped metadata of Compress's. src is decoded fitted inside the box
// whose output is the largest; each smaller size is resized from that
// image in memory, alpha premultiplied, and the sample from the smallest
// image it fits in. Presets whose outputs have one size share one image,
// and those that also share a format and a quality share one encoding
// (their Data is the same slice). Variants fails as Compress does, on the
// first failure, and with no outputs: a preset that Compress would refuse
// fails the whole call before src is decoded.
func (c *Compressor) Variants(ctx context.Context, src imaging.Source, presets []imaging.Preset) ([]imaging.Output, imaging.Sample, error) {
	qualities := make([]int, len(presets))
	for i, p := range presets {
		q, err := presetQuality(p)
		if err != nil {
			return nil, imaging.Sample{}, err
		}
		qualities[i] = q
	}
	format, h, err := c.open(ctx, src)
	if err != nil {
		return nil, imaging.Sample{}, err
	}
	defer c.release()
	l, err := planLadder(src.Data, format, h, presets, c.failOn)
	if err != nil {
		return nil, imaging.Sample{}, sourceError(err)
	}
	free, err := c.hold(ctx, format, h, l.cost(format, h))
	if err != nil {
		return nil, imaging.Sample{}, err
	}
	defer free()
	return c.makeLadder(ctx, src.Data, format, h, l, presets, qualities)
}

// size is an image's width and height in pixels.
type size struct{ w, h int }

func (s size) pixels() int64     { return int64(s.w) * int64(s.h) }
func (s size) holds(t size) bool { return s.w >= t.w && s.h >= t.h }
func (s size) String() string    { return fmt.Sprintf("%d×%d", s.w, s.h) }

// compareSizes orders sizes largest first.
func compareSizes(a, b size) int {
	return cmp.Or(cmp.Compare(b.pixels(), a.pixels()), cmp.Compare(b.w, a.w), cmp.Compare(b.h, a.h))
}

func boxOf(p imaging.Preset) size { return size{p.MaxWidth, p.MaxHeight} }
func sampleBox() size             { return size{imaging.MaxThumbHashSide, imaging.MaxThumbHashSide} }

// ladder is how Variants makes a source's outputs.
type ladder struct {
	box    size   // the box src is decoded into: sizes[0] comes out
	sizes  []size // the outputs' distinct sizes, largest first
	of     []int  // of[i] is the index in sizes of preset i's output
	sample size   // the sample's size
}

func (l ladder) top() size       { return l.sizes[0] }
func (l ladder) smaller() []size { return l.sizes[1:] }

// planLadder returns the ladder of presets for data, whose format and
// header are given: the size each output and the sample will have, read
// from libvips' thumbnail pipeline for each distinct box (see fit), so
// that every size is the one Compress and Sample would give.
func planLadder(data []byte, format string, h header, presets []imaging.Preset, failOn string) (ladder, error) {
	fitted := map[size]size{}
	sizeOf := func(box size) (size, error) {
		if s, ok := fitted[box]; ok {
			return s, nil
		}
		w, ht, err := fit(data, format, h, box.w, box.h, failOn)
		if err != nil {
			return size{}, fmt.Errorf("fit inside %s: %w", box, err)
		}
		fitted[box] = size{w, ht}
		return size{w, ht}, nil
	}
	l := ladder{box: sampleBox(), of: make([]int, len(presets))}
	var err error
	if l.sample, err = sizeOf(sampleBox()); err != nil {
		return ladder{}, err
	}
	largest := l.sample
	outs := make([]size, len(presets))
	for i, p := range presets {
		if outs[i], err = sizeOf(boxOf(p)); err != nil {
			return ladder{}, err
		}
		if compareSizes(outs[i], largest) < 0 {
			l.box, largest = boxOf(p), outs[i]
		}
	}
	l.sizes = append(slices.Clone(outs), largest)
	slices.SortFunc(l.sizes, compareSizes)
	l.sizes = slices.Compact(l.sizes)
	for i, s := range outs {
		l.of[i] = slices.Index(l.sizes, s)
	}
	return l, nil
}

// makeLadder decodes data as l says and makes the outputs of presets
// (encoded at qualities) and the sample, holding at most the largest image,
// one smaller one and the sample's source at once.
func (c *Compressor) makeLadder(ctx context.Context, data []byte, format string, h header, l ladder, presets []imaging.Preset, qualities []int) ([]imaging.Output, imaging.Sample, error) {
	top, err := thumbnail(ctx, data, format, h, l.box.w, l.box.h, c.failOn)
	if err != nil {
		return nil, imaging.Sample{}, sourceError(err)
	}
	defer top.close()
	if got := (size{top.width(), top.height()}); got != l.top() {
		return nil, imaging.Sample{}, fmt.Errorf("libvips decoded %s, planned %s", got, l.top())
	}
	outs := make([]imaging.Output, len(presets))
	from := top // the smallest image made so far that the sample fits in
	defer func() {
		if from != top {
			from.close()
		}
	}()
	for i, s := range l.sizes {
		im := top
		if i > 0 {
			if im, err = resize(ctx, top, s.w, s.h); err != nil {
				return nil, imaging.Sample{}, sourceError(err)
			}
		}
		err := c.encodeAll(ctx, im, i, l, presets, qualities, outs)
		switch {
		case im == top:
		case s.holds(l.sample):
			if from != top {
				from.close()
			}
			from = im
		default:
			im.close()
		}
		if err != nil {
			return nil, imaging.Sample{}, err
		}
	}
	sample, err := c.sampleFrom(ctx, from, l.sample, h)
	if err != nil {
		return nil, imaging.Sample{}, err
	}
	return outs, sample, nil
}

// encodeAll encodes im into outs for every preset whose output is l's
// size i; presets of one format and quality share one encoding.
func (c *Compressor) encodeAll(ctx context.Context, im image, i int, l ladder, presets []imaging.Preset, qualities []int, outs []imaging.Output) error {
	type encoding struct {
		format  string
		quality int
	}
	done := map[encoding]imaging.Output{}
	for j, p := range presets {
		if l.of[j] != i {
			continue
		}
		e := encoding{outputFormat(p.Format, im.alpha()), qualities[j]}
		if out, ok := done[e]; ok {
			out.Preset = p.Name
			outs[j] = out
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("encode %s: %w", p.Name, err)
		}
		out, err := c.encode(im, p, qualities[j])
		if err != nil {
			return fmt.Errorf("encode %s: %w", p.Name, err)
		}
		done[e], outs[j] = out, out
	}
	return nil
}

// sampleFrom returns the sample of a source whose header is h, made from
// im (which it fits in) at size s.
func (c *Compressor) sampleFrom(ctx context.Context, im image, s size, h header) (imaging.Sample, error) {
	if (size{im.width(), im.height()}) != s {
		small, err := resize(ctx, im, s.w, s.h)
		if err != nil {
			return imaging.Sample{}, sourceError(err)
		}
		defer small.close()
		im = small
	}
	return sampleOf(im, h)
}

// cost estimates the peak bytes that Variants holds to make l from a
// source whose header is h, beyond the process's baseline: what decoding
// into l's largest size holds (decodeCost), then, while each smaller size
// is made from it, the largest smaller image and what its resize and
// encoders hold (as decodeCost counts an output: the image, and its
// premultiplied floats with alpha), and every output's encoding, at most
// a byte a pixel, held until Variants returns; plus a tenth for safety.
func (l ladder) cost(format string, h header) int64 {
	cost := decodeCost(format, h, l.box.w, l.box.h)
	var extra int64
	if smaller := l.smaller(); len(smaller) > 0 {
		second := smaller[0].pixels()
		extra += second * 4 * int64(max(h.sampleBytes, 1)) * 2
		if h.alpha {
			extra += second * 16
		}
	}
	for _, i := range l.of {
		extra += l.sizes[i].pixels()
	}
	return cost + extra + extra/10
}
