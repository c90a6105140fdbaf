// Command imagebench measures, side by side in one run, the cost per source
// image of the worker's whole default variant set (imaging.DefaultPresets,
// then imaging.DefaultLadder's rungs: ten variants) made by pms's
// compressor (platform/vips), by one vipsthumbnail process per variant and
// by an imgproxy server asked for the same ten resizes over loopback HTTP.
// Runs are interleaved (pms, vipsthumbnail, imgproxy; -rounds times) and
// each tool runs as its own process, so that its peak RSS is its own. It
// prints, per tool and concurrency, the median images/s, CPU time per
// image, wall time per variant, peak RSS, output bytes, and how many
// outputs differ in pixel size from pms's. See BENCHMARKS.md.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pms-dev/pms/imaging"
)

// result is one timed run of one tool over the corpus.
type result struct {
	Tool    string
	Conc    int
	Seconds float64 // wall time
	CPU     float64 // user+sys seconds of the tool's processes
	PeakKB  int64   // peak RSS of the tool's largest process
	Outputs []output
}

// output is one variant a tool made.
type output struct {
	Image, Preset string
	Width, Height int
	Bytes         int
	Format        string
}

func main() {
	corpus := flag.String("corpus", "/work/shared/images", "directory of source images")
	imgproxy := flag.String("imgproxy", "", "imgproxy binary (built from source); empty skips imgproxy")
	rounds := flag.Int("rounds", 3, "interleaved rounds; medians are printed")
	concs := flag.String("conc", "1,2", "concurrencies")
	child := flag.Int("pms-child", 0, "internal: run the pms side at this concurrency and print its result")
	flag.Parse()
	imgs, err := loadCorpus(*corpus)
	if err != nil {
		fail(err)
	}
	if *child > 0 {
		r, err := runPMS(imgs, *child)
		if err != nil {
			fail(err)
		}
		if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
			fail(err)
		}
		return
	}
	var cs []int
	for _, s := range strings.Split(*concs, ",") {
		var c int
		if _, err := fmt.Sscan(s, &c); err != nil || c < 1 {
			fail(fmt.Errorf("-conc: %q is not a concurrency", s))
		}
		cs = append(cs, c)
	}
	var all []result
	for round := range *rounds {
		for _, c := range cs {
			r, err := pmsProcess(*corpus, c)
			if err != nil {
				fail(fmt.Errorf("round %d, pms: %w", round+1, err))
			}
			all = append(all, r)
			plan := r.Outputs
			if r, err = runVipsthumbnail(imgs, plan, c); err != nil {
				fail(fmt.Errorf("round %d, vipsthumbnail: %w", round+1, err))
			}
			all = append(all, r)
			if *imgproxy != "" {
				if r, err = runImgproxy(*imgproxy, *corpus, plan, c); err != nil {
					fail(fmt.Errorf("round %d, imgproxy: %w", round+1, err))
				}
				all = append(all, r)
			}
			fmt.Fprintf(os.Stderr, "round %d conc %d done\n", round+1, c)
		}
	}
	report(os.Stdout, all, len(imgs))
}

// presets are the worker's default variants, in the worker's order.
func presets() []imaging.Preset {
	return append(imaging.DefaultPresets(), imaging.DefaultLadder().Presets()...)
}

// source is one corpus image. Each tool reads it when it makes its
// variants, as the worker holds only the sources in flight.
type source struct {
	name string
	path string
}

func loadCorpus(dir string) ([]source, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read corpus: %w", err)
	}
	var out []source
	for _, e := range entries {
		if !slices.Contains([]string{".jpg", ".jpeg", ".png", ".webp"}, strings.ToLower(filepath.Ext(e.Name()))) {
			continue
		}
		out = append(out, source{e.Name(), filepath.Join(dir, e.Name())})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no images in %s", dir)
	}
	return out, nil
}

// measured returns an output's pixel size and format read from its bytes.
func measured(img, preset string, data []byte) (output, error) {
	h, err := imaging.ReadHeader(data)
	if err != nil {
		return output{}, fmt.Errorf("%s %s: read output: %w", img, preset, err)
	}
	return output{Image: img, Preset: preset, Width: h.Width, Height: h.Height, Bytes: len(data), Format: h.Format}, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "imagebench:", err)
	os.Exit(1)
}
