package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/pms-dev/pms/imaging"
)

// runVipsthumbnail makes what plan lists (pms's outputs, for their format)
// with one vipsthumbnail process per output, limited to one libvips
// thread, conc images at a time.
func runVipsthumbnail(imgs []source, plan []output, conc int) (result, error) {
	dir, err := os.MkdirTemp("", "imagebench-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	ps := presets()
	var mu sync.Mutex
	r := result{Tool: "vipsthumbnail", Conc: conc}
	start := time.Now()
	outs, err := pool(len(imgs), conc, func(i int) ([]output, error) {
		var outs []output
		for j, p := range ps {
			o, cpu, kb, err := vipsthumbnail(dir, imgs[i], p, plan[i*len(ps)+j].Format)
			if err != nil {
				return nil, err
			}
			mu.Lock()
			r.CPU += cpu
			r.PeakKB = max(r.PeakKB, kb)
			mu.Unlock()
			outs = append(outs, o)
		}
		return outs, nil
	})
	r.Seconds = time.Since(start).Seconds()
	r.Outputs = outs
	return r, err
}

func vipsthumbnail(dir string, img source, p imaging.Preset, format string) (output, float64, int64, error) {
	ext := ".jpg"
	if format == imaging.FormatWebP {
		ext = ".webp"
	}
	out := filepath.Join(dir, img.name+"-"+p.Name+ext)
	cmd := exec.Command("vipsthumbnail", img.path,
		"--size", fmt.Sprintf("%dx%d>", p.MaxWidth, p.MaxHeight), "-o", fmt.Sprintf("%s[Q=%d,strip]", out, p.Quality))
	cmd.Env = append(os.Environ(), "VIPS_CONCURRENCY=1")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return output{}, 0, 0, fmt.Errorf("vipsthumbnail %s: %w: %s", img.name, err, msg)
	}
	u := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	data, err := os.ReadFile(out)
	if err != nil {
		return output{}, 0, 0, err
	}
	o, err := measured(img.name, p.Name, data)
	return o, tv(u.Utime) + tv(u.Stime), u.Maxrss, err
}
