package cmd

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/kafka/kafkatest"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/platform/s3"
	"github.com/pms-dev/pms/platform/s3/s3test"
)

// Topics and group of config.yaml, which the pipeline tests run with.
const (
	taskTopic       = "pms.image-tasks"
	deadLetterTopic = "pms.image-tasks.dlq"
	workerGroup     = "pms-worker"
)

// imageTasks makes the image task messages of services the tests build
// themselves, as `pms serve` does.
var imageTasks = imaging.NewTaskMessages(taskTopic)

// rig is what a pipeline test runs `pms all` against instead of the
// development stand-ins: a database, a Kafka cluster and an S3 server of its
// own, which the test can inspect, break and restart.
type rig struct {
	dbURL string
	kafka *kafkatest.Cluster
	s3cfg s3.Config
	s3    *s3test.Server
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{dbURL: postgrestest.Private(t), kafka: kafkatest.New(t)}
	r.s3cfg, r.s3 = s3test.New(t)
	return r
}

// env returns the PMS_* overrides pointing `pms all` at the rig, with extra
// applied last.
func (r *rig) env(extra map[string]string) map[string]string {
	env := map[string]string{
		"PMS_POSTGRES_URL":            r.dbURL,
		"PMS_POSTGRES_MAX_OPEN_CONNS": "5",
		"PMS_POSTGRES_MAX_IDLE_CONNS": "5",
		"PMS_KAFKA_BROKERS":           strings.Join(r.kafka.Brokers(), ","),
		"PMS_KAFKA_MAX_RETRY_BACKOFF": "500ms",
		"PMS_S3_ENDPOINT":             r.s3cfg.Endpoint,
		"PMS_S3_REGION":               r.s3cfg.Region,
		"PMS_S3_BUCKET":               r.s3cfg.Bucket,
		"PMS_S3_ACCESS_KEY_ID":        r.s3cfg.AccessKeyID,
		"PMS_S3_SECRET_ACCESS_KEY":    r.s3cfg.SecretAccessKey,
		"PMS_S3_USE_PATH_STYLE":       "true",
		"PMS_S3_TIMEOUT":              r.s3cfg.Timeout.String(),
		"PMS_S3_MAX_ATTEMPTS":         strconv.Itoa(r.s3cfg.MaxAttempts),
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// s3Key returns the object key of an image URL the uploader made.
func (r *rig) s3Key(t *testing.T, imageURL string) string {
	t.Helper()
	u, err := url.Parse(imageURL)
	if err != nil {
		t.Fatal(err)
	}
	key, ok := strings.CutPrefix(u.Path, "/"+r.s3cfg.Bucket+"/")
	if !ok {
		t.Fatalf("image URL %q is not in bucket %s", imageURL, r.s3cfg.Bucket)
	}
	return key
}

// outboxPending counts the product's tasks that the relay has not published.
func (r *rig) outboxPending(t *testing.T, productID string) int {
	t.Helper()
	db, err := sql.Open("postgres", r.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int
	const q = `SELECT count(*) FROM outbox WHERE topic = $1 AND key = $2 AND published_at IS NULL`
	if err := db.QueryRowContext(ctx, q, taskTopic, productID).Scan(&n); err != nil {
		t.Fatalf("count pending outbox tasks: %v", err)
	}
	return n
}

// e2eImage and e2eProduct are the parts of the product resource the
// end-to-end tests look at.
type e2eImage struct {
	SourceURL     string            `json:"source_url"`
	Status        string            `json:"status"`
	Attempts      int               `json:"attempts"`
	ErrorCode     string            `json:"error_code"`
	CompressedURL string            `json:"compressed_url"`
	Width         int               `json:"width"`
	Height        int               `json:"height"`
	Bytes         int64             `json:"bytes"`
	Format        string            `json:"format"`
	Variants      []e2eVariant      `json:"variants"`
	Srcset        map[string]string `json:"srcset"`
	Source        *struct {
		Width  int    `json:"width"`
		Height int    `json:"height"`
		Format string `json:"format"`
		Bytes  int64  `json:"bytes"`
	} `json:"source"`
	ThumbHash     string `json:"thumbhash"`
	DominantColor string `json:"dominant_color"`
}

type e2eVariant struct {
	Name   string `json:"name"`
	URL    string `json:"url"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Bytes  int64  `json:"bytes"`
	Format string `json:"format"`
}

type e2eProduct struct {
	ID                      string     `json:"id"`
	Version                 int        `json:"version"`
	ProductImages           []string   `json:"product_images"`
	CompressedProductImages []string   `json:"compressed_product_images"`
	Images                  []e2eImage `json:"images"`
}

// createProduct creates a product with the given images under requestID
// and returns its id.
func createProduct(t *testing.T, s *stack, requestID string, imageURLs ...string) string {
	t.Helper()
	images, _ := json.Marshal(imageURLs)
	body := fmt.Sprintf(`{"product_name":"Pipeline %s","product_price":12.50,"product_images":%s}`, requestID, images)
	var p e2eProduct
	if code := s.do(t, http.MethodPost, "/api/v1/products", body, requestID, &p); code != http.StatusCreated {
		t.Fatalf("POST /api/v1/products = %d, want 201", code)
	}
	return p.ID
}

func getProduct(t *testing.T, s *stack, id string) e2eProduct {
	t.Helper()
	var p e2eProduct
	if code := s.do(t, http.MethodGet, "/api/v1/products/"+id, "", "", &p); code != http.StatusOK {
		t.Fatalf("GET product %s = %d, want 200", id, code)
	}
	return p
}

// waitSettled polls the product until each image is ready or failed and
// returns it; it fails the test after d.
func waitSettled(t *testing.T, s *stack, id string, d time.Duration) e2eProduct {
	t.Helper()
	return s.waitProduct(t, id, d, settled)
}

// waitUntil polls cond until it holds, failing the test after d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// source is a loopback image host that counts requests by path and lets
// reply answer each; n is the 1-based number of the request to that path.
type source struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

func newSource(t *testing.T, reply func(w http.ResponseWriter, r *http.Request, n int)) *source {
	t.Helper()
	s := &source{hits: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		n := s.hits[r.URL.Path]
		s.mu.Unlock()
		reply(w, r, n)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// URL returns the URL of path (which starts with "/") on the source.
func (s *source) URL(path string) string { return s.srv.URL + path }

// Hits returns how many requests path has had.
func (s *source) Hits(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// noisyPNG is a small opaque PNG whose pixels depend on seed.
func noisyPNG(t *testing.T, seed uint64) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	img := image.NewNRGBA(image.Rect(0, 0, 120, 80))
	for y := range 80 {
		for x := range 120 {
			img.Set(x, y, color.NRGBA{uint8(x*2) ^ uint8(r.IntN(16)), uint8(y * 3), uint8(r.IntN(256)), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// hugePNG is a well-formed PNG of a few dozen bytes whose header declares
// width×height RGBA pixels, followed by a token IDAT and IEND.
func hugePNG(width, height uint32) []byte {
	chunk := func(typ string, data []byte) []byte {
		var c []byte
		c = binary.BigEndian.AppendUint32(c, uint32(len(data)))
		c = append(c, typ...)
		c = append(c, data...)
		return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	var ihdr []byte
	ihdr = binary.BigEndian.AppendUint32(ihdr, width)
	ihdr = binary.BigEndian.AppendUint32(ihdr, height)
	ihdr = append(ihdr, 8, 6, 0, 0, 0) // 8-bit RGBA, deflate, adaptive filter, no interlace
	// A zlib stream of a few zero bytes: the start of the first row.
	idat := []byte{0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01}
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, chunk("IHDR", ihdr)...)
	out = append(out, chunk("IDAT", idat)...)
	return append(out, chunk("IEND", nil)...)
}

// logLines returns the JSON log lines of s that have every given field
// with the given value (compared as JSON text, e.g. `"warn"` or `2`).
func logLines(t *testing.T, s *stack, fields map[string]string) []map[string]json.RawMessage {
	t.Helper()
	var out []map[string]json.RawMessage
	sc := bufio.NewScanner(strings.NewReader(s.logs.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line map[string]json.RawMessage
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		match := true
		for k, v := range fields {
			match = match && string(line[k]) == v
		}
		if match {
			out = append(out, line)
		}
	}
	return out
}

// waitLogLines polls s's log until at least n lines have fields, for up
// to d, and returns the lines that have them then. A process logs what it
// did after the change is visible, so a test that has seen the change
// waits for the line.
func waitLogLines(t *testing.T, s *stack, fields map[string]string, n int, d time.Duration) []map[string]json.RawMessage {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		lines := logLines(t, s, fields)
		if len(lines) >= n || time.Now().After(deadline) {
			return lines
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// quote returns s as JSON text, for logLines.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// findMessage returns the one message of topic whose key is key.
func findMessage(t *testing.T, msgs []kafkatest.Message, key string) kafkatest.Message {
	t.Helper()
	var found []kafkatest.Message
	for _, m := range msgs {
		if string(m.Key) == key {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d messages with key %s, want 1: %+v", len(found), key, msgs)
	}
	return found[0]
}

// procStatus returns a "kB" field of /proc/self/status in bytes.
func procStatus(t *testing.T, field string) int64 {
	t.Helper()
	return readStatus(t, "/proc/self/status", field)
}

// pidStatus returns a "kB" field of the status of process pid in bytes.
func pidStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	return readStatus(t, "/proc/"+strconv.Itoa(pid)+"/status", field)
}

func readStatus(t *testing.T, path, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("no %s: %v", path, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("parse %s in %s: %v", field, path, err)
			}
			return kb << 10
		}
	}
	t.Skipf("%s has no %s", path, field)
	return 0
}

// resetPeakRSS sets VmHWM to the current VmRSS (Linux 4.0+); it reports
// whether it could.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}
