package vips_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pms-dev/pms/imaging"
)

var (
	memImage       = flag.String("memimage", "", "JPEG whose compression TestPeakRSS measures; empty makes a 34 MP one from testdata")
	memOrientation = flag.Int("memorientation", 0, "EXIF orientation to give -memimage (0 keeps its own)")
	memLimitMB     = flag.Int("memlimit", 250, "peak RSS in MB that TestPeakRSS allows")
	memChild       = flag.Bool("memchild", false, "run as the process that TestPeakRSS measures")
)

// TestPeakRSS compresses -memimage in a fresh process of this test binary,
// with the environment the service runs with, and checks its peak resident
// memory (VmHWM), which includes libvips' start-up.
func TestPeakRSS(t *testing.T) {
	if *memChild {
		peakRSSChild(t)
		return
	}
	image := *memImage
	if image == "" {
		image = bigPhoto(t)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPeakRSS$", "-memchild",
		"-memimage="+image, "-memorientation="+strconv.Itoa(*memOrientation))
	cmd.Env = append(os.Environ(), "MALLOC_ARENA_MAX=2", "VIPS_BLOCK_UNTRUSTED=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var before, peak int
	var result string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "rss_before_kb="); ok {
			before, _ = strconv.Atoi(v)
		}
		if v, ok := strings.CutPrefix(sc.Text(), "peak_rss_kb="); ok {
			peak, _ = strconv.Atoi(v)
		}
		if v, ok := strings.CutPrefix(sc.Text(), "result="); ok {
			result = v
		}
	}
	if peak == 0 {
		t.Fatalf("child printed no peak_rss_kb:\n%s", out)
	}
	t.Logf("%s → %s: peak RSS %d MB (%d MB before compressing)", image, result, peak/1024, before/1024)
	if peak/1024 > *memLimitMB {
		t.Errorf("peak RSS = %d MB, want at most %d MB", peak/1024, *memLimitMB)
	}
}

// bigPhoto makes a 7350×4594 (34 MP) JPEG, EXIF-rotated, from the test
// photo with the vips command line.
func bigPhoto(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "big.jpg")
	cmd := exec.Command("vips", "resize", filepath.Join("..", "..", "testdata", "rot6-Dune.jpg"), out+"[Q=90]", "4.375")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make a big photo with vips (apt-get install libvips-tools): %v\n%s", err, msg)
	}
	return out
}

func peakRSSChild(t *testing.T) {
	src, err := os.ReadFile(*memImage)
	if err != nil {
		t.Fatal(err)
	}
	if *memOrientation != 0 {
		src = withJPEGMetadata(src, *memOrientation)
	}
	c := newCompressor(t, 1)
	fmt.Printf("rss_before_kb=%d\n", procStatus(t, "VmRSS"))
	out, err := c.Compress(context.Background(), imaging.Source{Data: src}, benchPreset)
	if err != nil {
		t.Fatalf("Compress() error = %v", err)
	}
	fmt.Printf("result=%s %d×%d %d bytes\n", out.Format, out.Width, out.Height, len(out.Data))
	fmt.Printf("peak_rss_kb=%d\n", procStatus(t, "VmHWM"))
}

// procStatus returns a field of /proc/self/status, in kB.
func procStatus(t *testing.T, field string) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("parse %s: %v", line, err)
			}
			return kb
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}
