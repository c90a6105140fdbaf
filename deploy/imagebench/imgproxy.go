package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/freeport"
)

// runImgproxy starts imgproxy on loopback with conc workers (one libvips
// thread each, its default), serving the corpus as local files, and asks
// it for what plan lists, conc images at a time; it stops imgproxy after,
// so each run's peak RSS is its own.
func runImgproxy(bin, corpus string, plan []output, conc int) (result, error) {
	root, err := filepath.Abs(corpus)
	if err != nil {
		return result{}, err
	}
	addr, err := freeport.Addr()
	if err != nil {
		return result{}, err
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "IMGPROXY_BIND="+addr, "IMGPROXY_LOCAL_FILESYSTEM_ROOT="+root,
		"IMGPROXY_WORKERS="+strconv.Itoa(conc), "IMGPROXY_KEEP_COPYRIGHT=false", "IMGPROXY_STRIP_METADATA=true",
		"IMGPROXY_LOG_LEVEL=error", "IMGPROXY_MAX_SRC_RESOLUTION=100")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return result{}, fmt.Errorf("start imgproxy: %w", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ps := presets()
	names := uniqueImages(plan)
	get := func(i int) ([]output, error) {
		var outs []output
		for j, p := range ps {
			o, err := fetchVariant(addr, names[i], p, plan[i*len(ps)+j].Format)
			if err != nil {
				return nil, err
			}
			outs = append(outs, o)
		}
		return outs, nil
	}
	if err := waitReady(addr); err != nil {
		return result{}, err
	}
	if _, err := get(0); err != nil { // warm up, as pms does
		return result{}, err
	}
	r := result{Tool: "imgproxy", Conc: conc}
	cpu0, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	r.Outputs, err = pool(len(names), conc, get)
	r.Seconds = time.Since(start).Seconds()
	if err != nil {
		return result{}, err
	}
	cpu1, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return result{}, err
	}
	r.CPU = cpu1 - cpu0
	r.PeakKB, err = vmHWM(cmd.Process.Pid)
	return r, err
}

func uniqueImages(plan []output) []string {
	var names []string
	for _, o := range plan {
		if len(names) == 0 || names[len(names)-1] != o.Image {
			names = append(names, o.Image)
		}
	}
	return names
}

// fetchVariant asks imgproxy for img fitted inside p's box, never
// enlarged, at p's quality, in format, metadata stripped (unsigned URL: no
// key is configured).
func fetchVariant(addr, img string, p imaging.Preset, format string) (output, error) {
	f := "jpg"
	if format == imaging.FormatWebP {
		f = "webp"
	}
	url := fmt.Sprintf("http://%s/insecure/rs:fit:%d:%d:0/q:%d/f:%s/sm:1/plain/local:///%s", addr, p.MaxWidth, p.MaxHeight, p.Quality, f, img)
	resp, err := http.Get(url)
	if err != nil {
		return output{}, fmt.Errorf("imgproxy %s: %w", url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return output{}, fmt.Errorf("imgproxy %s: %s %v: %.200s", url, resp.Status, err, data)
	}
	return measured(img, p.Name, data)
}

func waitReady(addr string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("imgproxy on %s not ready after 20 s", addr)
}

// procCPU returns the user+sys CPU seconds of process pid.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

// vmHWM returns process pid's peak RSS in KiB.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM for pid %d", pid)
}
