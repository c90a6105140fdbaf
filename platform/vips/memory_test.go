package vips_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/imaging/imagingtest"
	"github.com/pms-dev/pms/platform/vips"
)

var (
	memImage       = flag.String("memimage", "", "JPEG whose compression TestPeakRSS measures; empty makes a 34 MP one from testdata")
	memOrientation = flag.Int("memorientation", 0, "EXIF orientation to give -memimage (0 keeps its own)")
	memLimitMB     = flag.Int("memlimit", 250, "peak RSS in MB that TestPeakRSS allows")
	memChild       = flag.String("memchild", "", "run as the process that measures: compress these comma-separated files at once")
	memVariants    = flag.Bool("memvariants", false, "make the child make the worker's variants of each file with Variants, not one Compress")
)

// TestPeakRSS compresses -memimage in a fresh process of this test binary,
// with the environment the service runs with, and checks its peak resident
// memory (VmHWM), which includes libvips' start-up.
func TestPeakRSS(t *testing.T) {
	if *memChild != "" {
		peakRSSChild(t)
		return
	}
	image := *memImage
	if image == "" {
		image = bigPhoto(t)
	}
	m := measure(t, *memOrientation, false, image)
	t.Logf("%s → %s: peak RSS %d MB (%d MB before compressing)", image, m.results[0], m.peak>>10, m.before>>10)
	if m.peak>>10 > *memLimitMB {
		t.Errorf("peak RSS = %d MB, want at most %d MB", m.peak>>10, *memLimitMB)
	}
}

// hostileMemory are inputs at the pixel limit (7071² = 49,999,041 of the
// default 50,000,000), one per way a decoder can be made to hold a whole
// image or more: each is what an attacker would send to exhaust memory
// while passing every declared-size check.
var hostileMemory = []struct {
	name string
	make func(t *testing.T, path string)
	code string // "" when it must compress
}{
	{"baseline jpeg", vipsMake("black", "[Q=90]", "--bands", "3"), ""},
	{"progressive jpeg 4:4:4", vipsMake("black", "[interlace,Q=90]", "--bands", "3"), ""},
	{"progressive cmyk jpeg", cmykProgressive, ""},
	{"png rgba 8-bit", fileOf(func() []byte { return imagingtest.PNGZeros(7071, 7071, 8, 6, false) }), ""},
	{"interlaced png rgb 8-bit", fileOf(func() []byte { return imagingtest.PNGZeros(7071, 7071, 8, 2, true) }), ""},
	{"interlaced png rgba 16-bit", fileOf(func() []byte { return imagingtest.PNGZeros(7071, 7071, 16, 6, true) }), vips.CodeTooMuchMemory},
	{"interlaced png rgba 16-bit 30 MP", fileOf(func() []byte { return imagingtest.PNGZeros(5477, 5477, 16, 6, true) }), ""},
	{"png rgba 8-bit 12 MP", fileOf(func() []byte { return imagingtest.PNGZeros(3535, 3535, 8, 6, false) }), ""},
	{"gif canvas grown by its frame", fileOf(func() []byte {
		return imagingtest.GIFFrames(1, 1, imagingtest.Rect{W: 7071, H: 7071})
	}), "decode_failed"},
	{"lossless webp", vipsMake("black", "[lossless]", "--bands", "3"), ""},
	{"animated webp canvas", func(t *testing.T, path string) {
		frame := toWebP(t, imagingtest.JPEG(t, imagingtest.Gradient(64, 64)))
		fileOf(func() []byte { return imagingtest.WebPCanvas(7071, 7071, frame) })(t, path)
	}, ""},
}

// TestPeakRSSHostile measures, in a fresh process each, the peak memory of
// compressing every input of hostileMemory, and checks that it stays within
// the estimate the memory budget reserved for it. Then it compresses the two
// costliest inputs that are accepted, twice each, at once (concurrency 2, as
// the worker runs) and checks the process stays within its RSS before
// compressing plus vips.max_memory.
func TestPeakRSSHostile(t *testing.T) {
	switch {
	case *memChild != "" || testing.Short():
		t.Skip("measures in child processes; skipped with -short")
	case raceEnabled:
		t.Skip("skipped under the race detector; make test runs it without")
	}
	if _, err := exec.LookPath("vips"); err != nil {
		t.Fatalf("the vips command makes some inputs (apt-get install libvips-tools): %v", err)
	}
	dir := t.TempDir()
	type measured struct {
		path     string
		estimate int64
	}
	var accepted []measured
	for _, in := range hostileMemory {
		path := filepath.Join(dir, strings.ReplaceAll(in.name, " ", "-"))
		in.make(t, path)
		for _, variants := range []bool{false, true} {
			way := "Compress"
			if variants {
				way = "Variants"
			}
			m := measure(t, 0, variants, path)
			extra := int64(m.peak-m.before) << 10
			t.Logf("%-30s %-8s %-60.60s peak %4d MB, +%4d MB over %d MB, estimated %4d MB", in.name, way, m.results[0], m.peak>>10, extra>>20, m.before>>10, m.estimate>>20)
			if code := failureCode(m.results[0]); code != in.code {
				t.Errorf("%s: %s() = %s, want code %q", in.name, way, m.results[0], in.code)
			}
			if in.code == "" {
				if extra > m.estimate {
					t.Errorf("%s: %s took %d MB over the baseline, more than the %d MB the budget reserved", in.name, way, extra>>20, m.estimate>>20)
				}
				if variants {
					accepted = append(accepted, measured{path, m.estimate})
				}
			}
		}
	}
	// The two costliest accepted inputs, twice each, on two slots, as the
	// worker makes them.
	slices.SortFunc(accepted, func(a, b measured) int { return cmp.Compare(b.estimate, a.estimate) })
	files := []string{accepted[0].path, accepted[1].path, accepted[0].path, accepted[1].path}
	m := measure(t, 0, true, files...)
	budget := testConfig(2).MaxMemory
	t.Logf("concurrency 2, %d inputs: peak RSS %d MB, %d MB before compressing, budget %d MB", len(files), m.peak>>10, m.before>>10, budget>>20)
	if limit := int64(m.before)<<10 + budget; int64(m.peak)<<10 > limit {
		t.Errorf("peak RSS = %d MB, want at most %d MB (before + vips.max_memory)", m.peak>>10, limit>>20)
	}
}

// failureCode returns the failure code in a child's result line, or "".
func failureCode(result string) string {
	code, ok := strings.CutPrefix(result, "error ")
	if !ok {
		return ""
	}
	code, _, _ = strings.Cut(code, ":")
	return code
}

// vipsMake returns a maker of a 7071² image made by the vips command line.
func vipsMake(op, saveOptions string, args ...string) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		t.Helper()
		v := path + ".v"
		runVips(t, append([]string{op, v, "7071", "7071"}, args...)...)
		ext := ".jpg"
		if strings.Contains(saveOptions, "lossless") {
			ext = ".webp"
		}
		runVips(t, "copy", v, path+ext+saveOptions)
		if err := os.Rename(path+ext, path); err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(v)
	}
}

func cmykProgressive(t *testing.T, path string) {
	t.Helper()
	v, cmyk := path+".v", path+"-cmyk.v"
	runVips(t, "black", v, "7071", "7071", "--bands", "4")
	runVips(t, "copy", v, cmyk, "--interpretation", "cmyk")
	runVips(t, "copy", cmyk, path+".jpg[interlace,Q=90]")
	if err := os.Rename(path+".jpg", path); err != nil {
		t.Fatal(err)
	}
	_, _ = os.Remove(v), os.Remove(cmyk)
}

func fileOf(data func() []byte) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		t.Helper()
		if err := os.WriteFile(path, data(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// runVips runs the vips command line, which makes some inputs through .v
// files: libvips counts their loader as untrusted, so it runs without
// VIPS_BLOCK_UNTRUSTED, which make test sets for pms.
func runVips(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("vips", args...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "VIPS_BLOCK_UNTRUSTED=") })
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vips %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// bigPhoto makes a 7350×4594 (34 MP) JPEG, EXIF-rotated, from the test
// photo with the vips command line.
func bigPhoto(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "big.jpg")
	runVips(t, "resize", filepath.Join("..", "..", "testdata", "rot6-Dune.jpg"), out+"[Q=90]", "4.375")
	return out
}

// measurement is what a child process reported, in kB but for estimate.
type measurement struct {
	before, peak int
	estimate     int64 // bytes the budget reserved, summed over the files
	results      []string
}

// measure compresses files at once in a fresh process of this test binary,
// with the environment the service runs with (with Variants, into the
// worker's presets, or with one Compress each), and returns its RSS before
// compressing and at its peak (VmHWM, libvips' start-up included).
func measure(t *testing.T, orientation int, variants bool, files ...string) measurement {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPeakRSS$", "-memchild="+strings.Join(files, ","),
		"-memorientation="+strconv.Itoa(orientation), "-memvariants="+strconv.FormatBool(variants))
	cmd.Env = append(os.Environ(), "MALLOC_ARENA_MAX=2", "VIPS_BLOCK_UNTRUSTED=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var m measurement
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "rss_before_kb":
			m.before, _ = strconv.Atoi(v)
		case "peak_rss_kb":
			m.peak, _ = strconv.Atoi(v)
		case "estimate_bytes":
			m.estimate, _ = strconv.ParseInt(v, 10, 64)
		case "result":
			m.results = append(m.results, v)
		}
	}
	if m.peak == 0 || len(m.results) != len(files) {
		t.Fatalf("child printed no peak_rss_kb or too few results:\n%s", out)
	}
	return m
}

// peakRSSChild compresses the -memchild files at once on a Compressor with
// the production settings and two slots (with Variants under
// -memvariants), and prints what measure reads.
func peakRSSChild(t *testing.T) {
	files := strings.Split(*memChild, ",")
	srcs := make([][]byte, len(files))
	var estimate int64
	for i, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if *memOrientation != 0 {
			src = withJPEGMetadata(src, *memOrientation)
		}
		srcs[i] = src
		if *memVariants {
			estimate += vips.EstimateVariantsCost(src, workerPresets())
		} else {
			estimate += vips.EstimateCost(src, benchPreset)
		}
	}
	c := newCompressor(t, 2)
	fmt.Printf("rss_before_kb=%d\n", vips.ProcStatusKB(t, "VmRSS"))
	fmt.Printf("estimate_bytes=%d\n", estimate)
	results := make([]string, len(srcs))
	var wg sync.WaitGroup
	for i, src := range srcs {
		wg.Go(func() {
			out, err := compressChild(c, src)
			var f *imaging.Failure
			switch {
			case errors.As(err, &f):
				results[i] = "error " + f.Code + ": " + strings.ReplaceAll(f.Error(), "\n", " ")
			case err != nil:
				results[i] = "error " + strings.ReplaceAll(err.Error(), "\n", " ")
			default:
				results[i] = fmt.Sprintf("%s %d×%d %d bytes", out.Format, out.Width, out.Height, len(out.Data))
			}
		})
	}
	wg.Wait()
	for _, r := range results {
		fmt.Printf("result=%s\n", r)
	}
	fmt.Printf("peak_rss_kb=%d\n", vips.ProcStatusKB(t, "VmHWM"))
}

// compressChild makes src as -memvariants says: the worker's variants with
// Variants (returning the main one), or benchPreset with Compress.
func compressChild(c *vips.Compressor, src []byte) (imaging.Output, error) {
	if !*memVariants {
		return c.Compress(context.Background(), imaging.Source{Data: src}, benchPreset)
	}
	outs, _, err := c.Variants(context.Background(), imaging.Source{Data: src}, workerPresets())
	if err != nil {
		return imaging.Output{}, err
	}
	return outs[0], nil
}
