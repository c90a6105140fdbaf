package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pms-dev/pms/platform/freeport"
)

// TestFirstRun does what a newcomer does: clone pms into a directory under
// a private parent (as /root/pms is, for root), run `make run`, paste the
// curl it prints, and see the product's image processed; then Ctrl-C,
// `make run` again (the same key comes back) and `make stop`. Every port is
// a free loopback one and the sample image is served on loopback, so
// nothing leaves the machine. It runs the committed tree (a clone).
func TestFirstRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make run from a fresh clone")
	}
	if os.Getuid() != 0 {
		t.Log("not root: the private parent is the test user's own, which PostgreSQL can reach anyway")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	top := strings.TrimSpace(output(t, "", "git", "rev-parse", "--show-toplevel"))
	parent := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	clone := filepath.Join(parent, "pms")
	output(t, "", "git", "clone", "--quiet", "--no-hardlinks", top, clone)

	img := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		_, _ = w.Write(sampleJPEG(t))
	}))
	defer img.Close()
	env := newcomerEnv(map[string]string{
		"PMS_HTTP_ADDR":         "127.0.0.1:" + freePort(t),
		"PMS_OPS_ADDR":          "127.0.0.1:" + freePort(t),
		"PMS_DEV_KAFKA_ADDR":    "127.0.0.1:" + freePort(t),
		"PMS_DEV_S3_ADDR":       "127.0.0.1:" + freePort(t),
		"PMS_DEV_POSTGRES_PORT": freePort(t),
		"PMS_DEV_REDIS_PORT":    freePort(t),
		// The one difference from a newcomer's run: the sample image is
		// served here, on loopback, which the fetcher then has to allow.
		"PMS_DEV_SAMPLE_IMAGE_URL":                 img.URL + "/lamp.jpg",
		"PMS_IMAGING_FETCH_ALLOW_PRIVATE_NETWORKS": "true",
	})
	var pgDirs []string
	t.Cleanup(func() {
		cmd := exec.Command("make", "--no-print-directory", "stop")
		cmd.Dir, cmd.Env = clone, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("make stop: %v\n%s", err, out)
		}
		for _, d := range pgDirs {
			_ = os.RemoveAll(filepath.Dir(d))
		}
	})

	first := startRun(ctx, t, clone, env)
	pgDirs = append(pgDirs, first.pgDir)
	if os.Getuid() == 0 && !strings.HasPrefix(first.pgDir, "/var/lib/pms-dev/") {
		t.Errorf("as root under a private parent, PostgreSQL's data is in %q, want a directory under /var/lib/pms-dev", first.pgDir)
	}
	if !regexp.MustCompile(`^pms_[A-Za-z0-9_-]{12}_[A-Za-z0-9_-]{43}$`).MatchString(first.key) {
		t.Errorf("the welcome's API key is %q, want pms_<prefix>_<secret>", first.key)
	}
	for _, l := range first.logs {
		if strings.HasPrefix(l, "{") {
			t.Errorf("a JSON log line in make run, want console format: %s", l)
			break
		}
	}
	created := output(t, clone, "bash", "-c", first.curl)
	var p struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(created), &p); err != nil || p.ID == "" {
		t.Fatalf("the welcome's curl answered %q (%v), want a created product", created, err)
	}
	waitReady(ctx, t, first.api, first.key, p.ID)
	if resp, err := http.Get(first.api + "/docs"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET the welcome's docs URL = %v, %v; want 200", resp, err)
	} else {
		resp.Body.Close()
	}
	first.stop(t)
	t.Logf("the first make run said:\n%s", first.output())

	second := startRun(ctx, t, clone, env)
	pgDirs = append(pgDirs, second.pgDir)
	if second.key != first.key {
		t.Errorf("the second make run printed key %q, want the first one, %q, kept with the dev state", second.key, first.key)
	}
	second.stop(t)
}

// run is one `make run` in progress.
type run struct {
	cmd            *exec.Cmd
	done           chan error
	exited         atomic.Bool // Wait returned: the process group may be gone
	api, key, curl string
	pgDir          string
	logs           []string
	mu             sync.Mutex
	all            bytes.Buffer
	welcome        bool
}

var (
	pgDirLine  = regexp.MustCompile(`PostgreSQL data in (\S+): the postgres user cannot reach`)
	apiLine    = regexp.MustCompile(`^\s+API\s+(http://\S+)/api/v1$`)
	keyLine    = regexp.MustCompile(`^\s+API key\s+(\S+)$`)
	createLine = regexp.MustCompile(`^\s+(curl -s \S+/api/v1/products -H .*-d .*)$`)
)

// startRun runs `make run` in dir and waits until it has printed its
// welcome: the API URL, the key and the curl that creates a product.
func startRun(ctx context.Context, t *testing.T, dir string, env []string) *run {
	t.Helper()
	r := &run{done: make(chan error, 1)}
	r.cmd = exec.Command("make", "--no-print-directory", "run")
	r.cmd.Dir, r.cmd.Env = dir, env
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	r.cmd.Stdout, r.cmd.Stderr = pw, pw
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.kill() })
	go func() { err := r.cmd.Wait(); r.exited.Store(true); pw.Close(); r.done <- err }()
	welcomed := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			r.line(sc.Text(), welcomed)
		}
	}()
	select {
	case <-welcomed:
		return r
	case err := <-r.done:
		t.Fatalf("make run ended (%v) before its welcome:\n%s", err, r.output())
	case <-ctx.Done():
		t.Fatalf("make run printed no welcome in time:\n%s", r.output())
	}
	return nil
}

func (r *run) line(l string, welcomed chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all.WriteString(l + "\n")
	if m := pgDirLine.FindStringSubmatch(l); m != nil {
		r.pgDir = m[1]
	}
	switch {
	case apiLine.MatchString(l):
		r.api = apiLine.FindStringSubmatch(l)[1]
	case keyLine.MatchString(l):
		r.key = keyLine.FindStringSubmatch(l)[1]
	case createLine.MatchString(l):
		r.curl = createLine.FindStringSubmatch(l)[1]
		if !r.welcome {
			r.welcome = true
			close(welcomed)
		}
	case strings.Contains(l, " INF ") || strings.Contains(l, " WRN ") || strings.HasPrefix(l, "{"):
		r.logs = append(r.logs, l)
	}
}

func (r *run) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.all.String()
}

// stop is Ctrl-C: SIGINT to make and pms, which must end within the
// shutdown timeouts.
func (r *run) stop(t *testing.T) {
	t.Helper()
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-r.done:
	case <-time.After(45 * time.Second):
		t.Errorf("make run did not stop within 45s of SIGINT:\n%s", r.output())
		r.kill()
	}
}

func (r *run) kill() {
	if !r.exited.Load() {
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// waitReady polls the product until its image is ready.
func waitReady(ctx context.Context, t *testing.T, api, key, id string) {
	t.Helper()
	var last string
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api+"/api/v1/products/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			var p struct {
				Images []struct{ Status string } `json:"images"`
			}
			if json.Unmarshal(b, &p) == nil && len(p.Images) == 1 {
				switch p.Images[0].Status {
				case "ready":
					return
				case "failed":
					t.Fatalf("the sample image failed: %s", last)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the sample image was not ready in time; last read: %s", last)
}

// newcomerEnv is the test's environment without any PMS_ variable, plus set.
func newcomerEnv(set map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PMS_") {
			env = append(env, kv)
		}
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}

func freePort(t *testing.T) string {
	t.Helper()
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(port)
}

func output(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

func sampleJPEG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for x := range 64 {
		for y := range 48 {
			img.Set(x, y, color.RGBA{uint8(4 * x), uint8(5 * y), 128, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Error(err)
	}
	return b.Bytes()
}
