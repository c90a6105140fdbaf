package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/vips"
)

// pmsProcess runs the pms side as a child process of this binary at
// concurrency conc and returns its result with the child's peak RSS.
func pmsProcess(corpus string, conc int) (result, error) {
	self, err := os.Executable()
	if err != nil {
		return result{}, fmt.Errorf("find this binary: %w", err)
	}
	cmd := exec.Command(self, "-corpus", corpus, "-pms-child", strconv.Itoa(conc))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("run pms child: %w", err)
	}
	var r result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return result{}, fmt.Errorf("read pms child's result: %w", err)
	}
	r.PeakKB = cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
	return r, nil
}

// runPMS makes every preset of every image with the worker's call (one
// Variants: one decode, then each variant resized from the larger ones),
// conc images at a time, after one untimed image to warm up.
func runPMS(imgs []source, conc int) (result, error) {
	cfg := vips.DefaultConfig()
	cfg.MaxConcurrent = conc
	c, err := vips.New(cfg, imaging.DefaultLimits)
	if err != nil {
		return result{}, err
	}
	if _, err := pmsImage(c, imgs[0]); err != nil {
		return result{}, err
	}
	r := result{Tool: "pms", Conc: conc}
	cpu0 := cpuSeconds(syscall.RUSAGE_SELF)
	start := time.Now()
	outs, err := pool(len(imgs), conc, func(i int) ([]output, error) { return pmsImage(c, imgs[i]) })
	r.Seconds = time.Since(start).Seconds()
	r.CPU = cpuSeconds(syscall.RUSAGE_SELF) - cpu0
	r.Outputs = outs
	return r, err
}

// pmsImage reads img and makes its variants, as the worker does with a
// fetched source.
func pmsImage(c *vips.Compressor, img source) ([]output, error) {
	data, err := os.ReadFile(img.path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", img.name, err)
	}
	outs, _, err := c.Variants(context.Background(), imaging.Source{Data: data}, presets())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", img.name, err)
	}
	res := make([]output, len(outs))
	for i, out := range outs {
		res[i] = output{Image: img.name, Preset: out.Preset, Width: out.Width, Height: out.Height, Bytes: len(out.Data), Format: out.Format}
	}
	return res, nil
}

// pool runs do for 0..n-1, conc at a time, and returns the outputs in
// index order, or the first error.
func pool(n, conc int, do func(i int) ([]output, error)) ([]output, error) {
	res := make([][]output, n)
	errs := make([]error, n)
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for i := range next {
				res[i], errs[i] = do(i)
			}
		})
	}
	wg.Wait()
	var all []output
	for i := range n {
		if errs[i] != nil {
			return nil, errs[i]
		}
		all = append(all, res[i]...)
	}
	return all, nil
}

// cpuSeconds returns the user+sys CPU time of who (RUSAGE_SELF or
// RUSAGE_CHILDREN).
func cpuSeconds(who int) float64 {
	var u syscall.Rusage
	_ = syscall.Getrusage(who, &u)
	return tv(u.Utime) + tv(u.Stime)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
