package cmd

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/imaging/imagingtest"
	"github.com/pms-dev/pms/platform/redis/redistest"
	"github.com/pms-dev/pms/platform/vips"
	"github.com/pms-dev/pms/product"
)

// hostileImage is a source image and what the worker must make of it: a
// failure code, or a ready copy of the given size.
type hostileImage struct {
	name          string
	data          []byte
	code          string
	width, height int
}

// hostileImages are one crafted file per class of hostile input: image
// bombs that declare little and decode to much, files that make a decoder
// work far more than their size, truncated and corrupt files, inputs at the
// pixel limit that a decoder must hold whole, and legitimate extremes.
func hostileImages(t *testing.T) []hostileImage {
	t.Helper()
	photo, err := os.ReadFile(filepath.Join("..", "testdata", "rot6-Dune.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	png := imagingtest.PNG(t, imagingtest.Gradient(300, 200))
	dir := t.TempDir()
	return []hostileImage{
		{"gif-canvas-bomb", imagingtest.GIFFrames(1, 1, imagingtest.Rect{W: 20000, H: 20000}), imaging.CodeTooManyPixels, 0, 0},
		{"gif-canvas-at-limit", imagingtest.GIFFrames(1, 1, imagingtest.Rect{W: 7071, H: 7071}), "decode_failed", 0, 0},
		{"png-declaring-100000", imagingtest.PNGDeclaring(100000, 100000), imaging.CodeTooManyPixels, 0, 0},
		{"png-side-30000", imagingtest.PNGDeclaring(30000, 10), imaging.CodeSideTooLong, 0, 0},
		{"png-metadata-zlib-bomb", imagingtest.PNGMetadataBomb(4, 2<<20), imaging.CodeMetadataTooLarge, 0, 0},
		{"webp-canvas-16384", imagingtest.WebPCanvas(16384, 16384, vipsFile(t, dir, "frame.webp", "black", "64", "64")), imaging.CodeTooManyPixels, 0, 0},
		{"jpeg-1000-scans", imagingtest.JPEGScans(t, 1000), imaging.CodeTooManyScans, 0, 0},
		{"jpeg-truncated", photo[:len(photo)*6/10], imaging.CodeTruncated, 0, 0},
		{"jpeg-corrupt", imagingtest.CorruptJPEGData(photo), "decode_failed", 0, 0},
		{"png-truncated", png[:len(png)/2], imaging.CodeTruncated, 0, 0},
		{"png-corrupt", imagingtest.CorruptPNGData(png), "decode_failed", 0, 0},
		{"jpeg-progressive-cmyk-50mp", vipsFile(t, dir, "cmyk.jpg[interlace,Q=90]", "black", "7071", "7071", "--bands", "4"), "", 1600, 1600},
		{"png-interlaced-16bit-rgba-50mp", vipsFile(t, dir, "p16.png[interlace]", "black", "7071", "7071", "--bands", "4"), vips.CodeTooMuchMemory, 0, 0},
		{"png-interlaced-16bit-rgba-30mp", vipsFile(t, dir, "p16s.png[interlace]", "black", "5477", "5477", "--bands", "4"), "", 1600, 1600},
		{"png-rgba-50mp", imagingtest.PNGZeros(7071, 7071, 8, 6, false), "", 1600, 1600},
		{"banner-8000x3", imagingtest.JPEG(t, imagingtest.Gradient(8000, 3)), "", 1600, 1},
		{"strip-3x8000", imagingtest.PNG(t, imagingtest.Gradient(3, 8000)), "", 1, 1600},
		{"animated-gif", imagingtest.AnimatedGIF(t, 40, 30, 3), "", 40, 30},
	}
}

// vipsFile makes an image with the vips command line, from `vips op` with
// args into a temporary .v file, then saved as name (with save options in
// brackets): an ushort cast gives a 16-bit PNG. It returns the file's bytes.
func vipsFile(t *testing.T, dir, name string, op string, args ...string) []byte {
	t.Helper()
	run := func(args ...string) {
		// The .v files go through a loader libvips counts as untrusted, so
		// the command runs without VIPS_BLOCK_UNTRUSTED, which make test sets.
		cmd := exec.Command("vips", args...)
		cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "VIPS_BLOCK_UNTRUSTED=") })
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("vips %s (apt-get install libvips-tools): %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	v := filepath.Join(dir, name+".v")
	run(append([]string{op, v}, args...)...)
	if strings.Contains(name, "p16") {
		u := filepath.Join(dir, name+"-16.v")
		run("cast", v, u, "ushort")
		run("copy", u, v, "--interpretation", "rgb16")
	}
	if strings.Contains(name, "cmyk") {
		c := filepath.Join(dir, name+"-cmyk.v")
		run("copy", v, c, "--interpretation", "cmyk")
		v = c
	}
	out := filepath.Join(dir, name)
	run("copy", v, out)
	file, _, _ := strings.Cut(out, "[")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestWorkerHostileImages runs the real `pms worker` on hostileImages, two
// tasks at a time as on a 2-core machine, and checks that every image ends
// as it must and that the worker's peak memory (VmHWM) stays within its
// memory at rest plus vips.max_memory plus the source bytes of the tasks in
// flight.
func TestWorkerHostileImages(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: builds and runs pms worker")
	}
	t.Parallel()
	bin := buildPMS(t)
	r := newRig(t)
	hostile := hostileImages(t)
	src := newSource(t, func(w http.ResponseWriter, req *http.Request, n int) {
		i := slices.IndexFunc(hostile, func(im hostileImage) bool { return "/"+im.name == req.URL.Path })
		if i < 0 {
			http.NotFound(w, req)
			return
		}
		w.Write(hostile[i].data)
	})
	var urls []string
	for _, im := range hostile {
		urls = append(urls, src.URL("/"+im.name))
	}
	store, ps := publishProducts(t, r, "hostile-images", [][]string{urls})

	const concurrency, maxMemory, maxBytes = 2, 512 << 20, 25 << 20
	ops := freeAddr(t)
	env := r.env(map[string]string{
		"PMS_IMAGING_FETCH_ALLOW_PRIVATE_NETWORKS": "true", // the source is on loopback
		"PMS_KAFKA_CONCURRENCY":                    strconv.Itoa(concurrency),
		"PMS_VIPS_MAX_CONCURRENT":                  strconv.Itoa(concurrency),
		"PMS_VIPS_MAX_MEMORY":                      strconv.Itoa(maxMemory),
		"PMS_IMAGING_FETCH_MAX_BYTES":              strconv.Itoa(maxBytes),
		"PMS_KAFKA_MAX_WAIT_TIME":                  "50ms",
		"PMS_KAFKA_RETRY_BACKOFF":                  "100ms",
		"PMS_REDIS_ADDR":                           redistest.Addr(t),
		"PMS_OPS_ADDR":                             ops,
	})
	w := startProcess(t, bin, env, "worker", "--config", filepath.Join("..", "config.yaml"))
	waitUntil(t, 60*time.Second, "the worker to be ready", func() bool {
		resp, err := http.Get("http://" + ops + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	rest := pidStatus(t, w.cmd.Process.Pid, "VmRSS")
	start := time.Now()
	// A deadline, not a speed claim: 18 images take about 50 s here, several
	// times that while the machine is busy with other builds.
	waitUntil(t, 6*time.Minute, "every image to settle", func() bool {
		return !slices.ContainsFunc(images(t, store, ps[0]), func(im product.Image) bool {
			return im.Status != product.ImageReady && im.Status != product.ImageFailed
		})
	})
	peak := pidStatus(t, w.cmd.Process.Pid, "VmHWM")
	bound := rest + maxMemory + concurrency*maxBytes
	t.Logf("%d images settled in %v; worker RSS at rest %d MB, peak %d MB, bound %d MB",
		len(hostile), time.Since(start).Round(time.Millisecond), rest>>20, peak>>20, bound>>20)

	for i, got := range images(t, store, ps[0]) {
		want := hostile[i]
		main, _ := got.Main()
		switch {
		case want.code != "" && (got.Status != product.ImageFailed || got.ErrorCode != want.code):
			t.Errorf("%s: %s/%s after %d attempts, want failed/%s", want.name, got.Status, got.ErrorCode, got.Attempts, want.code)
		case want.code != "" && got.Attempts != 1:
			t.Errorf("%s: %d attempts, want 1: a permanent failure is not retried", want.name, got.Attempts)
		case want.code == "" && (got.Status != product.ImageReady || main.Width != want.width || main.Height != want.height):
			t.Errorf("%s: %s/%s %d×%d, want ready %d×%d", want.name, got.Status, got.ErrorCode, main.Width, main.Height, want.width, want.height)
		}
	}
	if peak > bound {
		t.Errorf("worker peak RSS = %d MB, want at most %d MB (at rest + vips.max_memory + %d × max_bytes)", peak>>20, bound>>20, concurrency)
	}
}
