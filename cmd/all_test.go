package cmd

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // decodes the compressed output
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	_ "golang.org/x/image/webp" // decodes compressed images with alpha

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/freeport"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/platform/redis/redistest"
	"github.com/pms-dev/pms/product/account"
)

// freeAddr returns a loopback address nothing listens on right now
// ([freeport.Addr]).
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// syncBuffer collects log lines from several goroutines, keeping the first
// logCap bytes: enough for any test, and a load benchmark's millions of
// lines cost no growing and copying.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const logCap = 8 << 20

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len()+len(p) <= logCap {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// stack is `pms all` running in-process on loopback, with its development
// Kafka and S3 stand-ins, on the test database.
type stack struct {
	app  *app
	base string // http://host:port of the API
	ops  string // http://host:port of the operator listener
	key  string // an API key
	logs *syncBuffer
}

// startAll is startAll with a stop func that shuts this `pms all` down as
// SIGTERM would, before the test ends; calling it again does nothing.
// Another test may take one of its ports between freeAddr and pms's bind:
// then it starts again on new ones.
func startAll(t testing.TB, env map[string]string) (*stack, func()) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s, stop, err := tryStartAll(t, env)
		if err == nil {
			return s, stop
		}
		if attempt < 3 && strings.Contains(err.Error(), "address already in use") {
			t.Logf("starting pms all again on other ports: %v", err)
			continue
		}
		t.Fatal(err)
	}
}

// tryStartAll starts pms all on free ports and waits until it is ready, or
// returns why it stopped first.
func tryStartAll(t testing.TB, env map[string]string) (*stack, func(), error) {
	t.Helper()
	vars := map[string]string{
		"PMS_HTTP_ADDR":                            freeAddr(t),
		"PMS_OPS_ADDR":                             freeAddr(t),
		"PMS_DEV_STATE_DIR":                        t.TempDir(),
		"PMS_DEV_KAFKA_ADDR":                       freeAddr(t),
		"PMS_DEV_S3_ADDR":                          freeAddr(t),
		"PMS_IMAGING_FETCH_ALLOW_PRIVATE_NETWORKS": "true", // the sources are on loopback
		"PMS_KAFKA_MAX_WAIT_TIME":                  "50ms",
		"PMS_KAFKA_COMMIT_INTERVAL":                "100ms",
		"PMS_KAFKA_RETRY_BACKOFF":                  "50ms",
		"PMS_RELAY_POLL_INTERVAL":                  "100ms",
		"PMS_LOG_LEVEL":                            "debug",
		"PMS_REDIS_ADDR":                           redistest.Addr(t),
		"PMS_RATE_LIMIT_READ_RATE":                 "10000", // tests poll; rate limits have their own tests
		"PMS_RATE_LIMIT_READ_BURST":                "10000",
	}
	for k, v := range env {
		vars[k] = v
	}
	if _, ok := vars["PMS_POSTGRES_URL"]; !ok {
		// A database of its own: the relay publishes every row of the
		// outbox, and another test's relay must not take this one's.
		vars["PMS_POSTGRES_URL"] = postgrestest.Private(t)
	}
	cfg, err := loadConfig(filepath.Join("..", "config.yaml"), envOf(vars))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	logs := &syncBuffer{}
	a := &app{cfg: cfg, log: zerolog.New(logs).With().Timestamp().Logger()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.runAll(ctx, nil) }()
	var once sync.Once
	early := false // runAll returned while starting: stop has nothing to wait for
	stop := func() {
		once.Do(func() {
			cancel()
			if !early {
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("pms all returned %v, want nil after shutdown", err)
					}
				case <-time.After(30 * time.Second):
					t.Errorf("pms all did not stop within 30s")
				}
			}
			if cerr := a.close(); cerr != nil {
				t.Errorf("close: %v", cerr)
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("pms all (%s) logs:\n%s", cfg.HTTP.Addr, logs.String())
		}
	})
	s := &stack{app: a, base: "http://" + cfg.HTTP.Addr, ops: "http://" + cfg.Ops.Addr, logs: logs}
	if err := s.ready(done); err != nil {
		early = true
		stop()
		return nil, nil, err
	}
	key, err := newTestKey(testAccounts(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	s.key = key
	return s, stop, nil
}

// newTestKey makes a user with an API key and returns the key.
func newTestKey(auth *account.Service) (string, error) {
	u, err := auth.CreateUser(context.Background(), fmt.Sprintf("e2e-%d@example.test", time.Now().UnixNano()), "E2E", false)
	if err != nil {
		return "", err
	}
	key, _, err := auth.CreateKey(context.Background(), u.ID)
	return key, err
}

// testApp is an app of the test's own on cfg, closed when the test ends,
// for reaching the stores a pms process uses without sharing its app.
func testApp(t testing.TB, cfg Config) *app {
	t.Helper()
	a := &app{cfg: cfg, log: zerolog.Nop()}
	t.Cleanup(func() {
		if err := a.close(); err != nil {
			t.Errorf("close test connections: %v", err)
		}
	})
	return a
}

// testRedis is a Redis client on cfg's server, closed when the test ends.
func testRedis(t testing.TB, cfg Config) *redis.Client {
	t.Helper()
	c, err := testApp(t, cfg).openRedis()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testAccounts is the account service on cfg's PostgreSQL and Redis, as a
// pms process builds it.
func testAccounts(t testing.TB, cfg Config) *account.Service {
	t.Helper()
	a := testApp(t, cfg)
	db, err := a.openPool()
	if err != nil {
		t.Fatal(err)
	}
	cache, err := a.openRedis()
	if err != nil {
		t.Fatal(err)
	}
	return a.accounts(db, cache)
}

func (s *stack) waitReady(t testing.TB, done <-chan error) {
	t.Helper()
	if err := s.ready(done); err != nil {
		t.Fatal(err)
	}
}

// ready waits up to a minute for the ops listener's /ready to answer 200,
// and returns why not: the process stopped (sent on done) or the time ran
// out.
func (s *stack) ready(done <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			return fmt.Errorf("pms stopped while starting: %w\n%s", err, s.logs.String())
		default:
		}
		res, err := http.Get(s.ops + "/ready")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pms not ready within 60s (last: %v)\n%s", err, s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// do sends an authenticated JSON request and decodes a JSON response into out.
func (s *stack) do(t testing.TB, method, path, body, requestID string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	if requestID != "" {
		req.Header.Set("X-Request-ID", requestID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s = %d %s: %v", method, path, res.StatusCode, raw, err)
		}
	}
	return res.StatusCode
}

// waitProduct polls the product until done says it is finished.
func (s *stack) waitProduct(t testing.TB, id string, d time.Duration, done func(e2eProduct) bool) e2eProduct {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var p e2eProduct
		if code := s.do(t, http.MethodGet, "/api/v1/products/"+id, "", "", &p); code != http.StatusOK {
			t.Fatalf("GET product %s = %d", id, code)
		}
		if done(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("product %s not finished within %v: %+v", id, d, p)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func settled(p e2eProduct) bool {
	if len(p.Images) == 0 {
		return false
	}
	for _, im := range p.Images {
		if im.Status != "ready" && im.Status != "failed" {
			return false
		}
	}
	return true
}

// serveFiles serves files on loopback, as a shop's image host would.
func serveFiles(t testing.TB, files map[string][]byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// transparentPNG is a noisy 900×600 PNG with an alpha channel, standing in
// for a product cut-out.
func transparentPNG(t *testing.T) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	img := image.NewNRGBA(image.Rect(0, 0, 900, 600))
	for y := range 600 {
		for x := range 900 {
			img.Set(x, y, color.NRGBA{uint8(x) ^ uint8(r.IntN(32)), uint8(y) ^ uint8(r.IntN(32)), 200, uint8(x / 4)})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestAllEndToEnd runs pms all in-process: a product whose images are real
// photos gets compressed copies in S3 that decode, fit the box, are upright
// and carry no metadata; its task's logs carry the request id.
func TestAllEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs pms all")
	}
	rotated, err := os.ReadFile(filepath.Join("..", "testdata", "rot6-Dune.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	heic, err := os.ReadFile(filepath.Join("..", "testdata", "dune-irot.heic"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"dune.jpg": rotated, "cutout.png": transparentPNG(t), "dune.heic": heic}
	src := serveFiles(t, files)
	s, _ := startAll(t, nil)

	body := fmt.Sprintf(`{"product_name":"Dune print","product_price":49.90,"product_images":["%s/dune.jpg","%s/cutout.png","%s/dune.heic"]}`, src, src, src)
	var created e2eProduct
	if code := s.do(t, http.MethodPost, "/api/v1/products", body, "e2e-request-1", &created); code != http.StatusCreated {
		t.Fatalf("POST = %d, want 201", code)
	}
	p := s.waitProduct(t, created.ID, 60*time.Second, func(p e2eProduct) bool { return len(p.CompressedProductImages) == 3 })

	for i, name := range []string{"dune.jpg", "cutout.png", "dune.heic"} {
		data, img, format := fetchImage(t, p.CompressedProductImages[i])
		b := img.Bounds()
		if b.Dx() > 1600 || b.Dy() > 1600 {
			t.Errorf("compressed %s is %dx%d, want it inside 1600x1600", name, b.Dx(), b.Dy())
		}
		if len(data) >= len(files[name]) {
			t.Errorf("compressed %s is %d bytes, not smaller than the source's %d", name, len(data), len(files[name]))
		}
		for _, marker := range []string{"Exif\x00\x00", "http://ns.adobe.com/xap", "GPS", "EXIF", "XMP "} {
			if bytes.Contains(data, []byte(marker)) {
				t.Errorf("compressed %s (%s) still carries %q", name, format, marker)
			}
		}
		switch name {
		case "dune.jpg":
			// The source is stored landscape with EXIF orientation 6: upright is portrait.
			if format != "jpeg" || b.Dy() <= b.Dx() {
				t.Errorf("compressed dune.jpg is a %dx%d %s, want an upright (portrait) JPEG", b.Dx(), b.Dy(), format)
			}
		case "dune.heic":
			// Stored 400×640 with an irot transform: upright it is landscape.
			if format != "jpeg" || b.Dx() != 640 || b.Dy() != 400 {
				t.Errorf("compressed dune.heic is a %dx%d %s, want the upright 640x400 JPEG", b.Dx(), b.Dy(), format)
			}
		case "cutout.png":
			if format != "webp" {
				t.Errorf("compressed cutout.png is %s, want WebP to keep its alpha", format)
			}
		}
	}
	checkVariants(t, p, [][2]int{{1050, 1680}, {900, 600}, {640, 400}}) // the sources, upright
	// The request id follows the task into the worker.
	var workerLines int
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, `"request_id":"e2e-request-1"`) && strings.Contains(line, `"component":"worker"`) {
			workerLines++
		}
	}
	if workerLines < 2 {
		t.Errorf("%d worker log lines carry the request id, want at least one per image", workerLines)
	}
}

// fetchImage reads url as a browser would and decodes it.
func fetchImage(t *testing.T, url string) ([]byte, image.Image, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	data, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", url, res.StatusCode)
	}
	img, format, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s does not decode: %v", url, err)
	}
	return data, img, format
}

// checkVariants checks that each image of p lists the default presets'
// variants, main first, then the default ladder's rungs (JPEG then WebP,
// widths ascending, stopping at the first rung as wide as the upright
// source, sourceSize[i]), each readable from S3 and as the API describes
// it: decoded format, width, height and bytes; presets fitted to their box
// and rungs to their width, never upscaled. The main one is what
// compressed_product_images and the image's own fields show, and each
// format's srcset lists exactly that format's variants by width.
func checkVariants(t *testing.T, p e2eProduct, sourceSize [][2]int) {
	t.Helper()
	boxes := map[string]int{"main": 1600, "thumbnail": 320}
	for i, im := range p.Images {
		srcW, srcH := sourceSize[i][0], sourceSize[i][1]
		want := []string{"main", "thumbnail"}
		for _, f := range []string{"jpeg", "webp"} {
			for _, w := range []int{320, 640, 1024, 1600} {
				want = append(want, fmt.Sprintf("%s-%d", f, w))
				if w >= srcW {
					break
				}
			}
		}
		var names []string
		for _, v := range im.Variants {
			names = append(names, v.Name)
		}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("image %d variants (-want +got):\n%s", i, diff)
			continue
		}
		if src := im.Source; src == nil || src.Width != srcW || src.Height != srcH || src.Bytes <= 0 || src.Format == "" {
			t.Errorf("image %d source = %+v, want the upright %d×%d source with its format and bytes", i, src, srcW, srcH)
		}
		if hash, err := base64.StdEncoding.DecodeString(im.ThumbHash); err != nil {
			t.Errorf("image %d thumbhash %q: %v", i, im.ThumbHash, err)
		} else if ratio, err := imaging.ThumbHashAspect(hash); err != nil || (ratio > 1) != (srcW > srcH) {
			t.Errorf("image %d thumbhash %q has aspect %.2f (%v), want the %d×%d source's orientation", i, im.ThumbHash, ratio, err, srcW, srcH)
		}
		if len(im.DominantColor) != 7 || im.DominantColor[0] != '#' {
			t.Errorf("image %d dominant_color = %q, want #rrggbb", i, im.DominantColor)
		}
		main := im.Variants[0]
		if main.URL != p.CompressedProductImages[i] || main.URL != im.CompressedURL || main.Width != im.Width ||
			main.Height != im.Height || main.Bytes != im.Bytes || main.Format != im.Format {
			t.Errorf("image %d: main variant %+v, want the image's compressed_url, size and format (%+v) and compressed_product_images[%d] %s",
				i, main, im, i, p.CompressedProductImages[i])
		}
		byWidth := map[string]map[int]string{}
		for _, v := range im.Variants {
			data, img, format := fetchImage(t, v.URL)
			b := img.Bounds()
			if b.Dx() != v.Width || b.Dy() != v.Height || int64(len(data)) != v.Bytes || format != v.Format {
				t.Errorf("image %d %s is a %d×%d %s of %d bytes, the API says %+v", i, v.Name, b.Dx(), b.Dy(), format, len(data), v)
			}
			checkStripped(t, fmt.Sprintf("image %d %s", i, v.Name), data)
			if box, ok := boxes[v.Name]; ok {
				if want := min(box, max(srcW, srcH)); max(b.Dx(), b.Dy()) != want {
					t.Errorf("image %d %s is %d×%d, want its long side %d px", i, v.Name, b.Dx(), b.Dy(), want)
				}
			} else {
				f, w, _ := strings.Cut(v.Name, "-")
				rung, _ := strconv.Atoi(w)
				wantW := min(rung, srcW)
				wantH := (srcH*wantW + srcW/2) / srcW
				if f != v.Format || b.Dx() != wantW || abs(b.Dy()-wantH) > 1 {
					t.Errorf("image %d %s is a %d×%d %s, want a %d×%d %s", i, v.Name, b.Dx(), b.Dy(), v.Format, wantW, wantH, f)
				}
			}
			if byWidth[v.Format] == nil {
				byWidth[v.Format] = map[int]string{}
			}
			if _, dup := byWidth[v.Format][v.Width]; !dup {
				byWidth[v.Format][v.Width] = v.URL
			}
		}
		for f, urls := range byWidth {
			got := map[int]string{}
			for _, c := range strings.Split(im.Srcset[f], ", ") {
				url, w, ok := strings.Cut(c, " ")
				n, err := strconv.Atoi(strings.TrimSuffix(w, "w"))
				if !ok || err != nil || !strings.HasSuffix(w, "w") || strings.ContainsAny(url, " ,") {
					t.Errorf("image %d srcset[%s] = %q: candidate %q is not <url> <width>w", i, f, im.Srcset[f], c)
				}
				got[n] = url
			}
			if diff := cmp.Diff(urls, got); diff != "" {
				t.Errorf("image %d srcset[%s] = %q (-want +got):\n%s", i, f, im.Srcset[f], diff)
			}
		}
		if thumb := im.Variants[1]; thumb.Bytes >= main.Bytes || thumb.Format != main.Format {
			t.Errorf("image %d thumbnail %+v, want smaller than the main variant %+v and in its format", i, thumb, main)
		}
	}
}

// checkStripped fails when data carries metadata: EXIF, XMP, GPS or an ICC
// profile, as a JPEG marker segment, a WebP chunk or a HEIF item.
func checkStripped(t *testing.T, what string, data []byte) {
	t.Helper()
	for _, marker := range []string{"Exif\x00\x00", "http://ns.adobe.com/xap", "GPS", "EXIF", "XMP ", "ICC_PROFILE", "ICCP", "Canon"} {
		if bytes.Contains(data, []byte(marker)) {
			t.Errorf("%s still carries %q", what, marker)
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
