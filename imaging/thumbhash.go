package imaging

import (
	"errors"
	"fmt"
	"math"
)

// The ThumbHash format (Evan Wallace, https://evanw.github.io/thumbhash/,
// MIT): a DCT of the image's luminance, two chroma channels and alpha, a
// handful of coefficients each, packed into about 25 bytes with the
// image's approximate aspect ratio and average colour. This is a port of
// the reference encoder and decoder.

// MaxThumbHashSide is the largest side ThumbHash encodes.
const MaxThumbHashSide = 100

// ThumbHash returns the ThumbHash of the w×h image in rgba (non-premultiplied
// RGBA, 4 bytes a pixel, rows top to bottom). It fails when a side is 0 or
// more than MaxThumbHashSide, or rgba is not w×h×4 bytes.
func ThumbHash(w, h int, rgba []byte) ([]byte, error) {
	if w < 1 || h < 1 || w > MaxThumbHashSide || h > MaxThumbHashSide {
		return nil, fmt.Errorf("thumbhash of %d×%d: sides must be 1 to %d", w, h, MaxThumbHashSide)
	}
	if len(rgba) != w*h*4 {
		return nil, fmt.Errorf("thumbhash of %d×%d: %d bytes of pixels, want %d", w, h, len(rgba), w*h*4)
	}
	var avgR, avgG, avgB, avgA float64
	for i := 0; i < w*h; i++ {
		alpha := float64(rgba[i*4+3]) / 255
		avgR += alpha / 255 * float64(rgba[i*4])
		avgG += alpha / 255 * float64(rgba[i*4+1])
		avgB += alpha / 255 * float64(rgba[i*4+2])
		avgA += alpha
	}
	if avgA > 0 {
		avgR, avgG, avgB = avgR/avgA, avgG/avgA, avgB/avgA
	}
	hasAlpha := avgA < float64(w*h)
	lLimit := 7.0
	if hasAlpha {
		lLimit = 5
	}
	longest := float64(max(w, h))
	lx := max(1, int(math.Round(lLimit*float64(w)/longest)))
	ly := max(1, int(math.Round(lLimit*float64(h)/longest)))
	n := w * h
	l, p, q, a := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		alpha := float64(rgba[i*4+3]) / 255
		r := avgR*(1-alpha) + alpha/255*float64(rgba[i*4])
		g := avgG*(1-alpha) + alpha/255*float64(rgba[i*4+1])
		b := avgB*(1-alpha) + alpha/255*float64(rgba[i*4+2])
		l[i], p[i], q[i], a[i] = (r+g+b)/3, (r+g)/2-b, r-g, alpha
	}
	lDC, lAC, lScale := encodeChannel(l, w, h, max(3, lx), max(3, ly))
	pDC, pAC, pScale := encodeChannel(p, w, h, 3, 3)
	qDC, qAC, qScale := encodeChannel(q, w, h, 3, 3)
	landscape := w > h
	header24 := round(63*lDC) | round(31.5+31.5*pDC)<<6 | round(31.5+31.5*qDC)<<12 | round(31*lScale)<<18
	if hasAlpha {
		header24 |= 1 << 23
	}
	header16 := ly
	if !landscape {
		header16 = lx
	}
	header16 |= round(63*pScale)<<3 | round(63*qScale)<<9
	if landscape {
		header16 |= 1 << 15
	}
	hash := []byte{byte(header24), byte(header24 >> 8), byte(header24 >> 16), byte(header16), byte(header16 >> 8)}
	acs := [][]float64{lAC, pAC, qAC}
	if hasAlpha {
		aDC, aAC, aScale := encodeChannel(a, w, h, 5, 5)
		hash = append(hash, byte(round(15*aDC)|round(15*aScale)<<4))
		acs = append(acs, aAC)
	}
	start, index := len(hash), 0
	for _, ac := range acs {
		for _, f := range ac {
			if start+index>>1 >= len(hash) {
				hash = append(hash, 0)
			}
			hash[start+index>>1] |= byte(round(15*f) << ((index & 1) << 2))
			index++
		}
	}
	return hash, nil
}

func round(f float64) int { return int(math.Round(f)) }

// encodeChannel returns the DC coefficient, the AC coefficients scaled
// into 0–1, and their scale, of the nx×ny lowest frequencies of channel (a
// w×h image), taking only the triangle cx·ny < nx·(ny−cy).
func encodeChannel(channel []float64, w, h, nx, ny int) (dc float64, ac []float64, scale float64) {
	fx := make([]float64, w)
	for cy := range ny {
		for cx := 0; cx*ny < nx*(ny-cy); cx++ {
			var f float64
			for x := range w {
				fx[x] = math.Cos(math.Pi / float64(w) * float64(cx) * (float64(x) + 0.5))
			}
			for y := range h {
				fy := math.Cos(math.Pi / float64(h) * float64(cy) * (float64(y) + 0.5))
				for x := range w {
					f += channel[x+y*w] * fx[x] * fy
				}
			}
			f /= float64(w * h)
			if cx > 0 || cy > 0 {
				ac = append(ac, f)
				scale = max(scale, math.Abs(f))
			} else {
				dc = f
			}
		}
	}
	if scale > 0 {
		for i := range ac {
			ac[i] = 0.5 + 0.5/scale*ac[i]
		}
	}
	return dc, ac, scale
}

// ThumbHashAspect returns the aspect ratio (width / height) that hash
// records, rounded as ThumbHash rounds it (to the nearest of 7 steps on
// the short side, 5 when the image has alpha).
func ThumbHashAspect(hash []byte) (float64, error) {
	if len(hash) < 5 {
		return 0, errors.New("thumbhash: shorter than its 5-byte header")
	}
	header := int(hash[3])
	hasAlpha := hash[2]&0x80 != 0
	landscape := hash[4]&0x80 != 0
	long := 7
	if hasAlpha {
		long = 5
	}
	lx, ly := header&7, long
	if landscape {
		lx, ly = long, header&7
	}
	if lx == 0 || ly == 0 {
		return 0, errors.New("thumbhash: no size in its header")
	}
	return float64(lx) / float64(ly), nil
}

// DecodeThumbHash renders hash as an image at most 32 px on its long side,
// in its recorded aspect: width, height and non-premultiplied RGBA pixels.
func DecodeThumbHash(hash []byte) (w, h int, rgba []byte, err error) {
	ratio, err := ThumbHashAspect(hash)
	if err != nil {
		return 0, 0, nil, err
	}
	header24 := int(hash[0]) | int(hash[1])<<8 | int(hash[2])<<16
	header16 := int(hash[3]) | int(hash[4])<<8
	lDC := float64(header24&63) / 63
	pDC := float64((header24>>6)&63)/31.5 - 1
	qDC := float64((header24>>12)&63)/31.5 - 1
	lScale := float64((header24>>18)&31) / 31
	hasAlpha := header24>>23 != 0
	pScale := float64((header16>>3)&63) / 63
	qScale := float64((header16>>9)&63) / 63
	landscape := header16>>15 != 0
	long := 7
	if hasAlpha {
		long = 5
	}
	lx, ly := max(3, header16&7), max(3, long)
	if landscape {
		lx, ly = max(3, long), max(3, header16&7)
	}
	aDC, aScale := 1.0, 0.0
	start := 5
	if hasAlpha {
		if len(hash) < 6 {
			return 0, 0, nil, errors.New("thumbhash: no alpha byte")
		}
		aDC, aScale, start = float64(hash[5]&15)/15, float64(hash[5]>>4)/15, 6
	}
	index := 0
	short := false
	decode := func(nx, ny int, scale float64) []float64 {
		var ac []float64
		for cy := range ny {
			cx := 0
			if cy == 0 {
				cx = 1
			}
			for ; cx*ny < nx*(ny-cy); cx++ {
				at := start + index>>1
				if at >= len(hash) {
					short = true
					return ac
				}
				ac = append(ac, (float64((hash[at]>>((index&1)<<2))&15)/7.5-1)*scale)
				index++
			}
		}
		return ac
	}
	lAC := decode(lx, ly, lScale)
	pAC := decode(3, 3, pScale*1.25)
	qAC := decode(3, 3, qScale*1.25)
	var aAC []float64
	if hasAlpha {
		aAC = decode(5, 5, aScale)
	}
	if short {
		return 0, 0, nil, errors.New("thumbhash: truncated")
	}
	w, h = 32, 32
	if ratio > 1 {
		h = round(32 / ratio)
	} else {
		w = round(32 * ratio)
	}
	rgba = make([]byte, w*h*4)
	fx, fy := make([]float64, max(lx, 5)), make([]float64, max(ly, 5))
	for y := range h {
		for x := range w {
			l, p, q, a := lDC, pDC, qDC, aDC
			for cx := range fx {
				fx[cx] = math.Cos(math.Pi / float64(w) * (float64(x) + 0.5) * float64(cx))
			}
			for cy := range fy {
				fy[cy] = math.Cos(math.Pi / float64(h) * (float64(y) + 0.5) * float64(cy))
			}
			l += sumAC(lAC, fx, fy, lx, ly)
			p += sumAC(pAC, fx, fy, 3, 3)
			q += sumAC(qAC, fx, fy, 3, 3)
			if hasAlpha {
				a += sumAC(aAC, fx, fy, 5, 5)
			}
			b := l - 2.0/3*p
			r := (3*l - b + q) / 2
			g := r - q
			i := (y*w + x) * 4
			rgba[i], rgba[i+1], rgba[i+2], rgba[i+3] = unit(r), unit(g), unit(b), unit(a)
		}
	}
	return w, h, rgba, nil
}

// sumAC adds up the AC terms of one channel at a pixel, over the triangle
// the encoder kept: cx·ny < nx·(ny−cy).
func sumAC(ac, fx, fy []float64, nx, ny int) float64 {
	var v float64
	j := 0
	for cy := range ny {
		cx := 0
		if cy == 0 {
			cx = 1
		}
		for ; cx*ny < nx*(ny-cy); cx++ {
			v += ac[j] * fx[cx] * fy[cy] * 2
			j++
		}
	}
	return v
}

func unit(f float64) byte { return byte(max(0, math.Min(255, math.Round(255*f)))) }
