package vips_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/vips"
)

var corpusDir = flag.String("corpus", "../../testdata", "directory of JPEG, PNG, WebP and GIF images for the benchmarks, e.g. ../../../shared/images")

// benchPreset matches the vipsthumbnail command line in BenchmarkVipsthumbnailCLI.
var benchPreset = imaging.Preset{Name: "bench", MaxWidth: 1600, MaxHeight: 1600, Quality: 80}

type corpusImage struct {
	path string
	data []byte
}

func loadCorpus(b *testing.B) []corpusImage {
	b.Helper()
	entries, err := os.ReadDir(*corpusDir)
	if err != nil {
		b.Fatalf("read corpus: %v", err)
	}
	var imgs []corpusImage
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".jpg", ".jpeg", ".png", ".webp", ".gif":
		default:
			continue
		}
		path, err := filepath.Abs(filepath.Join(*corpusDir, e.Name()))
		if err != nil {
			b.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		imgs = append(imgs, corpusImage{path, data})
	}
	if len(imgs) == 0 {
		b.Fatalf("no images in %s", *corpusDir)
	}
	return imgs
}

// runCorpus compresses the whole corpus once per iteration with conc
// workers and reports the time per image, images per second and the mean
// output size. compress returns the output's size in bytes.
func runCorpus(b *testing.B, imgs []corpusImage, conc int, compress func(i int, img corpusImage) (int, error)) {
	var outBytes atomic.Int64
	b.ResetTimer()
	for range b.N {
		next := make(chan int, len(imgs))
		for i := range imgs {
			next <- i
		}
		close(next)
		var wg sync.WaitGroup
		for range conc {
			wg.Go(func() {
				for i := range next {
					n, err := compress(i, imgs[i])
					if err != nil {
						b.Errorf("%s: %v", filepath.Base(imgs[i].path), err)
						return
					}
					outBytes.Add(int64(n))
				}
			})
		}
		wg.Wait()
	}
	b.StopTimer()
	n := float64(b.N * len(imgs))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/image")
	b.ReportMetric(n/b.Elapsed().Seconds(), "images/s")
	b.ReportMetric(float64(outBytes.Load())/n, "out-B/image")
}

// BenchmarkCompress fits every corpus image in 1600×1600 as JPEG q80 (WebP
// with alpha), one and two at a time.
func BenchmarkCompress(b *testing.B) {
	imgs := loadCorpus(b)
	for _, conc := range []int{1, 2} {
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) {
			c := newCompressor(b, conc)
			runCorpus(b, imgs, conc, func(_ int, img corpusImage) (int, error) {
				out, err := c.Compress(context.Background(), imaging.Source{Data: img.data}, benchPreset)
				return len(out.Data), err
			})
		})
	}
}

// BenchmarkVipsthumbnailCLI does what BenchmarkCompress does with one
// vipsthumbnail process per image, limited to one libvips thread like bimg.
// "1600x1600>" only shrinks, as Compress does.
func BenchmarkVipsthumbnailCLI(b *testing.B) {
	if _, err := exec.LookPath("vipsthumbnail"); err != nil {
		b.Skip("vipsthumbnail is not installed (Debian libvips-tools)")
	}
	imgs := loadCorpus(b)
	for _, conc := range []int{1, 2} {
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) {
			dir := b.TempDir()
			runCorpus(b, imgs, conc, func(i int, img corpusImage) (int, error) {
				out := filepath.Join(dir, fmt.Sprintf("%d.jpg", i))
				cmd := exec.Command("vipsthumbnail", img.path, "--size", "1600x1600>", "-o", out+"[Q=80,strip]")
				cmd.Env = append(os.Environ(), "VIPS_CONCURRENCY=1")
				if msg, err := cmd.CombinedOutput(); err != nil {
					return 0, fmt.Errorf("vipsthumbnail: %w: %s", err, msg)
				}
				st, err := os.Stat(out)
				if err != nil {
					return 0, err
				}
				return int(st.Size()), nil
			})
		})
	}
}

// BenchmarkLadder makes what the worker makes of every corpus image (the
// default presets, then the default ladder's rungs), one and two images at
// a time: "per-variant" with one Sample and one Compress per variant (a
// decode each), "variants" with one Variants call (one decode). It reports
// images per second and the time per variant.
func BenchmarkLadder(b *testing.B) {
	imgs := loadCorpus(b)
	presets := append(imaging.DefaultPresets(), imaging.DefaultLadder().Presets()...)
	ways := []struct {
		name string
		make func(c *vips.Compressor, src imaging.Source) (int, error)
	}{
		{"per-variant", func(c *vips.Compressor, src imaging.Source) (int, error) {
			if _, err := c.Sample(context.Background(), src); err != nil {
				return 0, err
			}
			n := 0
			for _, p := range presets {
				out, err := c.Compress(context.Background(), src, p)
				if err != nil {
					return 0, err
				}
				n += len(out.Data)
			}
			return n, nil
		}},
		{"variants", func(c *vips.Compressor, src imaging.Source) (int, error) {
			outs, _, err := c.Variants(context.Background(), src, presets)
			n := 0
			for _, out := range outs {
				n += len(out.Data)
			}
			return n, err
		}},
	}
	for _, conc := range []int{1, 2} {
		for _, way := range ways {
			b.Run(fmt.Sprintf("conc=%d/%s", conc, way.name), func(b *testing.B) {
				c := newCompressor(b, conc)
				runCorpus(b, imgs, conc, func(_ int, img corpusImage) (int, error) {
					return way.make(c, imaging.Source{Data: img.data})
				})
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(imgs)*len(presets)), "ns/variant")
			})
		}
	}
}
