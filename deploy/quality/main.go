// Command quality prints the size and SSIM (luma, 8×8 windows every 4 px)
// of encoded images against a lossless reference: quality REF.png FILE...
// An AVIF FILE is read from FILE.png, its decoded copy. deploy/quality/run.sh
// runs it over a corpus, README "Quality per format" has the results.
package main

import (
	"fmt"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"math"
	"os"

	_ "golang.org/x/image/webp"
)

func load(p string) image.Image {
	f, err := os.Open(p)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		panic(fmt.Sprint(p, err))
	}
	return img
}

func luma(img image.Image) ([]float64, int, int) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]float64, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, bb, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			out[y*w+x] = (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(bb)) / 257
		}
	}
	return out, w, h
}

func ssim(a, b []float64, w, h int) float64 {
	const c1, c2 = 6.5025, 58.5225
	var sum float64
	var n int
	for y := 0; y+8 <= h; y += 4 {
		for x := 0; x+8 <= w; x += 4 {
			var ma, mb float64
			for j := 0; j < 8; j++ {
				for i := 0; i < 8; i++ {
					ma += a[(y+j)*w+x+i]
					mb += b[(y+j)*w+x+i]
				}
			}
			ma /= 64
			mb /= 64
			var va, vb, cov float64
			for j := 0; j < 8; j++ {
				for i := 0; i < 8; i++ {
					da, db := a[(y+j)*w+x+i]-ma, b[(y+j)*w+x+i]-mb
					va += da * da
					vb += db * db
					cov += da * db
				}
			}
			va, vb, cov = va/63, vb/63, cov/63
			sum += ((2*ma*mb + c1) * (2*cov + c2)) / ((ma*ma + mb*mb + c1) * (va + vb + c2))
			n++
		}
	}
	return sum / float64(n)
}

func main() {
	ref, w, h := luma(load(os.Args[1]))
	for _, p := range os.Args[2:] {
		var img []float64
		if len(p) > 5 && p[len(p)-5:] == ".avif" {
			img, _, _ = luma(load(p + ".png"))
		} else {
			img, _, _ = luma(load(p))
		}
		st, _ := os.Stat(p)
		s := ssim(ref, img, w, h)
		fmt.Printf("%s %d %.5f %.3f\n", p, st.Size(), s, -10*math.Log10(1-s))
	}
}
