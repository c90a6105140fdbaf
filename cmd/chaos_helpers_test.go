package cmd

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"image"
	"image/color"
	"image/png"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/platform/redis/redistest"
)

// chaosFull runs the chaos suite at its full size (make chaos); without it
// each scenario runs at a size that fits make test.
var chaosFull = flag.Bool("chaos.full", false, "run the chaos scenarios at full size (make chaos)")

// chaosSize returns full under -chaos.full, else short.
func chaosSize(short, full int) int {
	if *chaosFull {
		return full
	}
	return short
}

// chaosStack is pms as it runs in production, each part its own process:
// PostgreSQL, Redis, the broker (`pms dev kafka` with a data dir), the S3
// server (`pms dev s3`) behind a proxy that can answer 503, two `pms
// serve` and two `pms worker` processes, and a loopback image host.
type chaosStack struct {
	t      *testing.T // of the scenario running
	root   *testing.T // of the whole stack: its processes outlive each scenario
	bin    string
	config string
	pg     *postgrestest.Server
	redis  *redistest.Server
	db     *sql.DB

	kafkaAddr, kafkaDir string
	kafka               *process
	s3Dir               string
	s3                  *process
	s3Proxy             *faultProxy
	src                 *imageHost

	env     map[string]string // of every pms process
	serves  []*serveProcess
	workers []*process
}

// serveProcess is a `pms serve` process and its listeners.
type serveProcess struct {
	*process
	api, ops string
}

// newChaosStack starts every process of the stack, migrates the database
// and waits until the serve processes answer and both workers share the
// task topic's partitions.
func newChaosStack(t *testing.T, workerEnv map[string]string) *chaosStack {
	t.Helper()
	s := &chaosStack{t: t, root: t, bin: buildPMS(t), config: filepath.Join("..", "config.yaml")}
	s.pg = postgrestest.StartServer(t)
	s.redis = redistest.Start(t)
	s.kafkaAddr, s.kafkaDir = freeAddr(t), t.TempDir()
	s.startKafka()
	s.s3Dir = t.TempDir()
	s3Addr := freeAddr(t)
	s.s3 = s.startDev("s3 server listening on", "dev", "s3", "--addr", s3Addr, "--data", s.s3Dir)
	s.s3Proxy = newFaultProxy(t, "http://"+s3Addr)
	s.src = newImageHost(t)
	dbURL := s.pg.URL("postgres")
	s.env = map[string]string{
		"PMS_POSTGRES_URL":                         dbURL,
		"PMS_POSTGRES_MAX_OPEN_CONNS":              "8",
		"PMS_POSTGRES_MAX_IDLE_CONNS":              "8",
		"PMS_POSTGRES_CONNECT_TIMEOUT":             "1s",
		"PMS_POSTGRES_IO_TIMEOUT":                  "2s",
		"PMS_REDIS_ADDR":                           s.redis.Addr(),
		"PMS_REDIS_TIMEOUT":                        "200ms",
		"PMS_KAFKA_BROKERS":                        s.kafkaAddr,
		"PMS_KAFKA_RETRY_BACKOFF":                  "100ms",
		"PMS_KAFKA_MAX_RETRY_BACKOFF":              "1s",
		"PMS_KAFKA_MAX_WAIT_TIME":                  "100ms",
		"PMS_KAFKA_SHUTDOWN_GRACE":                 "2s",
		"PMS_KAFKA_DIAL_TIMEOUT":                   "1s",
		"PMS_KAFKA_PRODUCE_TIMEOUT":                "3s",
		"PMS_RELAY_POLL_INTERVAL":                  "200ms",
		"PMS_S3_ENDPOINT":                          s.s3Proxy.URL(),
		"PMS_S3_REGION":                            "us-east-1",
		"PMS_S3_BUCKET":                            "pms-chaos",
		"PMS_S3_ACCESS_KEY_ID":                     "chaos",
		"PMS_S3_SECRET_ACCESS_KEY":                 "chaos-secret",
		"PMS_S3_USE_PATH_STYLE":                    "true",
		"PMS_S3_CREATE_BUCKET":                     "true",
		"PMS_S3_TIMEOUT":                           "3s",
		"PMS_IMAGING_FETCH_TIMEOUT":                "1s",
		"PMS_IMAGING_FETCH_ALLOW_PRIVATE_NETWORKS": "true", // the image host is on loopback
		"PMS_HTTP_REQUEST_TIMEOUT":                 "5s",
		"PMS_RATE_LIMIT_READ_RATE":                 "100000",
		"PMS_RATE_LIMIT_READ_BURST":                "100000",
		"PMS_RATE_LIMIT_WRITE_RATE":                "100000",
		"PMS_RATE_LIMIT_WRITE_BURST":               "100000",
		"PMS_LOG_LEVEL":                            "warn",
	}
	for k, v := range workerEnv {
		s.env[k] = v
	}
	pmsCLI(t, s.bin, s.env, "migrate", "up", "--config", s.config)
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s.db = db
	for range 2 {
		s.serves = append(s.serves, s.startServe(nil))
	}
	for range 2 {
		s.workers = append(s.workers, s.startWorker())
	}
	s.waitWorkersAssigned(s.workers...)
	return s
}

// startDev starts a `pms dev` command and waits for the line saying it
// listens.
func (s *chaosStack) startDev(ready string, args ...string) *process {
	s.t.Helper()
	p := startProcess(s.root, s.bin, s.env, args...)
	waitUntil(s.t, 30*time.Second, "pms "+strings.Join(args[:2], " ")+" to listen", func() bool {
		select {
		case <-p.done:
			s.t.Fatalf("pms %v exited: %v\n%s", args, p.err, p.out.String())
		default:
		}
		return strings.Contains(p.out.String(), ready)
	})
	return p
}

// startKafka starts the broker on its address with its data dir.
func (s *chaosStack) startKafka() {
	s.t.Helper()
	s.kafka = s.startDev("kafka broker listening on", "dev", "kafka", "--addr", s.kafkaAddr, "--data", s.kafkaDir,
		"--partitions", "6")
}

// killKafka SIGKILLs the broker, waits d and starts it again on the same
// address and data dir.
func (s *chaosStack) killKafka(d time.Duration) {
	s.t.Helper()
	if err := s.kafka.signal(s.t, syscall.SIGKILL); err == nil || !strings.Contains(err.Error(), "killed") {
		s.t.Fatalf("broker exited with %v after SIGKILL, want killed", err)
	}
	time.Sleep(d)
	s.startKafka()
}

// startServe starts a `pms serve` process with extra on top of the stack's
// environment and waits until it answers.
func (s *chaosStack) startServe(extra map[string]string) *serveProcess {
	s.t.Helper()
	env := s.with(extra)
	sp := &serveProcess{api: freeAddr(s.t), ops: freeAddr(s.t)}
	env["PMS_HTTP_ADDR"], env["PMS_OPS_ADDR"] = sp.api, sp.ops
	sp.process = startProcess(s.root, s.bin, env, "serve", "--config", s.config)
	waitUntil(s.t, 30*time.Second, "pms serve to answer", func() bool {
		resp, err := http.Get("http://" + sp.api + "/health")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	return sp
}

// startWorker starts a `pms worker` process.
func (s *chaosStack) startWorker() *process {
	s.t.Helper()
	env := s.with(map[string]string{"PMS_OPS_ADDR": freeAddr(s.t), "PMS_LOG_LEVEL": "info"})
	return startProcess(s.root, s.bin, env, "worker", "--config", s.config)
}

func (s *chaosStack) with(extra map[string]string) map[string]string {
	env := make(map[string]string, len(s.env)+len(extra))
	for k, v := range s.env {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// assignedLine is the worker's log line of a new assignment: its claims
// of the task topic, among those of other topics (the events topic).
// A "kafka partitions assigned" line: the task topic's partitions in its
// claims (none when the worker was given only other topics'), and the
// generation of the assignment.
var (
	assignedTasks      = regexp.MustCompile(`"claims":\{[^}]*"pms\.image-tasks":\[([0-9,]*)\]`)
	assignedGeneration = regexp.MustCompile(`"generation":(\d+)`)
)

// assignment returns the partitions of the task topic the worker was last
// given, and the generation of that assignment (0 if none yet).
func assignment(w *process) ([]int, int) {
	var parts []int
	gen := 0
	sc := bufio.NewScanner(strings.NewReader(w.out.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "kafka partitions assigned") {
			continue
		}
		parts, gen = nil, 0
		if m := assignedGeneration.FindStringSubmatch(line); m != nil {
			gen, _ = strconv.Atoi(m[1])
		}
		m := assignedTasks.FindStringSubmatch(line)
		if m == nil {
			continue // assigned nothing of the task topic in this generation
		}
		for f := range strings.SplitSeq(m[1], ",") {
			if n, err := strconv.Atoi(f); err == nil {
				parts = append(parts, n)
			}
		}
	}
	return parts, gen
}

// waitWorkersAssigned waits until the workers' latest assignments, all of
// one generation, cover the task topic's 6 partitions between them, and
// returns each worker's partitions.
func (s *chaosStack) waitWorkersAssigned(ws ...*process) [][]int {
	s.t.Helper()
	var got [][]int
	waitUntil(s.t, 60*time.Second, fmt.Sprintf("%d workers to share the partitions", len(ws)), func() bool {
		got = got[:0]
		seen, gens := map[int]bool{}, map[int]bool{}
		for _, w := range ws {
			parts, gen := assignment(w)
			got = append(got, parts)
			gens[gen] = true
			for _, p := range parts {
				seen[p] = true
			}
		}
		return len(seen) == 6 && len(gens) == 1 && !gens[0]
	})
	return got
}

// user creates a user with a key and returns a client of each serve
// process with that key, and the user's id.
func (s *chaosStack) user(name string) ([]apiClient, string) {
	s.t.Helper()
	email := name + "@chaos.test"
	out := pmsCLI(s.t, s.bin, s.env, "users", "create", "--email", email, "--name", name, "--config", s.config)
	m := apiKeyLine.FindStringSubmatch(out)
	if m == nil {
		s.t.Fatalf("pms users create printed no key:\n%s", out)
	}
	var id string
	if err := s.db.QueryRow(`SELECT id FROM users WHERE email = $1`, email).Scan(&id); err != nil {
		s.t.Fatalf("look up user %s: %v", email, err)
	}
	var cs []apiClient
	for _, sp := range s.serves {
		cs = append(cs, apiClient{base: "http://" + sp.api, key: m[2]})
	}
	return cs, id
}

// apiClient sends requests to one serve process with one key; it may be
// used from any goroutine.
type apiClient struct {
	base, key string
}

var chaosHTTP = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// do sends a request and returns the reply, or an error when none came.
func (c apiClient) do(method, path, body string, header ...string) (reply, error) {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	start := time.Now()
	resp, err := chaosHTTP.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b), latency: time.Since(start)}, nil
}

// tally counts the answers of a load, by status code.
type tally struct {
	mu          sync.Mutex
	codes       map[int]int
	noRetry     int // 503s without Retry-After
	transport   int // requests with no answer
	firstErrors []string
	created     []string // ids of the products made
}

func (l *tally) add(r reply, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.codes == nil {
		l.codes = map[int]int{}
	}
	switch {
	case err != nil:
		l.transport++
		l.note(err.Error())
		return
	case r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "":
		l.noRetry++
	case r.status >= 500 && r.status != http.StatusServiceUnavailable:
		l.note(fmt.Sprintf("%d %s", r.status, r.body))
	}
	l.codes[r.status]++
	if r.status == http.StatusCreated {
		var p struct{ ID string }
		if json.Unmarshal([]byte(r.body), &p) == nil {
			l.created = append(l.created, p.ID)
		}
	}
}

func (l *tally) note(s string) {
	if len(l.firstErrors) < 5 {
		l.firstErrors = append(l.firstErrors, s)
	}
}

// count returns how many answers had the status.
func (l *tally) count(status int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.codes[status]
}

func (l *tally) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var codes []int
	for c := range l.codes {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var b strings.Builder
	for _, c := range codes {
		fmt.Fprintf(&b, "%d×%d ", l.codes[c], c)
	}
	fmt.Fprintf(&b, "no-answer×%d 503-without-Retry-After×%d", l.transport, l.noRetry)
	if len(l.firstErrors) > 0 {
		fmt.Fprintf(&b, " first errors: %q", l.firstErrors)
	}
	return b.String()
}

// clean fails the test unless every answer was below 500, or a 503 with
// Retry-After when allow503.
func (l *tally) clean(t *testing.T, what string, allow503 bool) {
	t.Helper()
	l.mu.Lock()
	bad := l.transport + l.noRetry
	for c, n := range l.codes {
		if c >= 500 && (c != http.StatusServiceUnavailable || !allow503) {
			bad += n
		}
	}
	l.mu.Unlock()
	if bad > 0 {
		t.Errorf("%s: %d answers were a 5xx or none: %s", what, bad, l)
	}
}

// createHangingImages is createImages with every hang-th image a source
// that never answers.
func (s *chaosStack) createHangingImages(cs []apiClient, prefix string, n, hang int, l *tally) {
	s.createImagesWith(cs, prefix, n, 20, 4, l, func(i int) string {
		if i%hang == hang-1 {
			return s.src.URL(fmt.Sprintf("hang/%s/%d.png", prefix, i))
		}
		return s.src.URL(fmt.Sprintf("%s/%d.png", prefix, i))
	})
}

// createImages POSTs products of perProduct images each, n images in all,
// from workers goroutines spread over the clients, the images' paths on
// the image host starting with prefix. It returns when all were sent.
func (s *chaosStack) createImages(cs []apiClient, prefix string, n, perProduct, workers int, l *tally) {
	s.createImagesWith(cs, prefix, n, perProduct, workers, l, func(i int) string {
		return s.src.URL(fmt.Sprintf("%s/%d.png", prefix, i))
	})
}

func (s *chaosStack) createImagesWith(cs []apiClient, prefix string, n, perProduct, workers int, l *tally, imageURL func(int) string) {
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			c := cs[w%len(cs)]
			for {
				first := int(next.Add(int64(perProduct))) - perProduct
				if first >= n {
					return
				}
				var urls []string
				for i := first; i < min(first+perProduct, n); i++ {
					urls = append(urls, imageURL(i))
				}
				images, _ := json.Marshal(urls)
				r, err := c.do(http.MethodPost, "/api/v1/products",
					fmt.Sprintf(`{"product_name":"Chaos %s %d","product_price":1,"product_images":%s}`, prefix, first, images))
				l.add(r, err)
			}
		})
	}
	wg.Wait()
}

// postUntil POSTs products of perProduct images each from workers
// goroutines spread over the clients, each pausing pace between requests,
// until stop is closed; the images' paths start with prefix, and every
// hang-th one (0: none) never answers.
func (s *chaosStack) postUntil(stop <-chan struct{}, cs []apiClient, prefix string, perProduct, workers int, pace time.Duration, l *tally) {
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			c := cs[w%len(cs)]
			for {
				select {
				case <-stop:
					return
				case <-time.After(pace):
				}
				first := int(next.Add(int64(perProduct))) - perProduct
				var urls []string
				for i := first; i < first+perProduct; i++ {
					urls = append(urls, s.src.URL(fmt.Sprintf("%s/%d.png", prefix, i)))
				}
				images, _ := json.Marshal(urls)
				r, err := c.do(http.MethodPost, "/api/v1/products",
					fmt.Sprintf(`{"product_name":"Chaos %s %d","product_price":1,"product_images":%s}`, prefix, first, images))
				l.add(r, err)
			}
		})
	}
	wg.Wait()
}

// readUntil sends GETs of the product and of the product list, and PATCHes
// of the product, through the clients in turn until stop is closed.
func readUntil(stop <-chan struct{}, cs []apiClient, id string, pace time.Duration, reads, writes *tally) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-time.After(pace):
		}
		c := cs[i%len(cs)]
		reads.add(c.do(http.MethodGet, "/api/v1/products/"+id, ""))
		reads.add(c.do(http.MethodGet, "/api/v1/products?limit=5", ""))
		writes.add(c.do(http.MethodPatch, "/api/v1/products/"+id, fmt.Sprintf(`{"product_price":%d}`, i+1)))
	}
}

// imageCounts are a user's images by status, and failures by code.
type imageCounts struct {
	status   map[string]int
	failures map[string]int
	attempts int // sum of attempts
	images   int
}

func (c imageCounts) settled() int { return c.status["ready"] + c.status["failed"] }

func (c imageCounts) String() string {
	return fmt.Sprintf("%d images: %d ready, %d failed %v, %d pending, %d processing; %d attempts",
		c.images, c.status["ready"], c.status["failed"], c.failures, c.status["pending"], c.status["processing"], c.attempts)
}

const countImages = `
SELECT i.status, coalesce(i.error_code, ''), count(*), sum(i.attempts)
FROM product_images i JOIN products p ON p.id = i.product_id
WHERE p.user_id = $1 AND p.deleted_at IS NULL
GROUP BY 1, 2`

// counts returns the user's images by status; it fails the test when
// PostgreSQL cannot answer in 30 s.
func (s *chaosStack) counts(userID string) imageCounts {
	s.t.Helper()
	var c imageCounts
	waitUntil(s.t, 30*time.Second, "PostgreSQL to count images", func() bool {
		var err error
		c, err = s.tryCounts(userID)
		return err == nil
	})
	return c
}

func (s *chaosStack) tryCounts(userID string) (imageCounts, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := imageCounts{status: map[string]int{}, failures: map[string]int{}}
	rows, err := s.db.QueryContext(ctx, countImages, userID)
	if err != nil {
		return c, err
	}
	defer rows.Close()
	for rows.Next() {
		var status, code string
		var n, attempts int
		if err := rows.Scan(&status, &code, &n, &attempts); err != nil {
			return c, err
		}
		c.status[status] += n
		c.images += n
		c.attempts += attempts
		if status == "failed" {
			c.failures[code] += n
		}
	}
	return c, rows.Err()
}

// waitSettledImages waits up to d for all want images of the user to be
// ready or failed, logging progress, and returns the counts.
func (s *chaosStack) waitSettledImages(userID string, want int, d time.Duration) imageCounts {
	s.t.Helper()
	start, last := time.Now(), time.Now()
	for {
		c := s.counts(userID)
		if c.images == want && c.settled() == want {
			return c
		}
		if time.Since(start) > d {
			s.t.Fatalf("after %v: %v, want all %d ready or failed", d, c, want)
		}
		if time.Since(last) > 15*time.Second {
			s.t.Logf("%v after %v", c, time.Since(start).Round(time.Second))
			last = time.Now()
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitProgress waits up to d until at least n of the user's images have
// settled.
func (s *chaosStack) waitProgress(userID string, n int, d time.Duration) {
	s.t.Helper()
	waitUntil(s.t, d, fmt.Sprintf("%d images settled", n), func() bool {
		c, err := s.tryCounts(userID)
		return err == nil && c.settled() >= n
	})
}

// checkSettled fails the test unless every image of the user is ready with
// its variants in S3 (and recorded as using them) or failed with a reason,
// and every S3 object is in use by a ready image or recorded as stored and
// unused (an orphan: what a task uploaded before it failed, which the
// collector removes after the grace period): one object per content
// however often a task ran. It returns the number of sources fetched more
// than once, and of orphans.
func (s *chaosStack) checkSettled(userID, prefix string, want int) (duplicates, orphans int) {
	s.t.Helper()
	c := s.counts(userID)
	if c.images != want || c.settled() != want {
		s.t.Errorf("%v, want %d images, every one ready or failed", c, want)
	}
	if n := c.failures[""]; n > 0 {
		s.t.Errorf("%d images failed without a reason", n)
	}
	variants := s.keys(`
SELECT DISTINCT substring(v->>'url' FROM '/pms-chaos/(.*)$')
FROM product_images i JOIN products p ON p.id = i.product_id, json_array_elements(i.variants) v
WHERE p.user_id = $1 AND i.status = 'ready'`, userID)
	used := s.keys(`SELECT DISTINCT key FROM image_objects`)
	unused := s.keys(`SELECT key FROM stored_objects WHERE unreferenced_since IS NOT NULL`)
	objects := s.objects()
	missing, unrecorded, extra := 0, 0, 0
	for k := range variants {
		if !objects[k] {
			missing++
		}
		if !used[k] {
			unrecorded++
		}
	}
	for k := range objects {
		switch {
		case used[k]:
		case unused[k]:
			orphans++
		default:
			extra++
		}
	}
	if missing > 0 || unrecorded > 0 || extra > 0 || len(variants) < 2*c.status["ready"] {
		s.t.Errorf("%d variants of %d ready images, %d S3 objects: %d variants missing in S3, %d not recorded as used, %d objects neither used nor recorded",
			len(variants), c.status["ready"], len(objects), missing, unrecorded, extra)
	}
	return s.src.duplicates(prefix), orphans
}

// keys returns the first column of the rows of query, a set.
func (s *chaosStack) keys(query string, args ...any) map[string]bool {
	s.t.Helper()
	rows, err := s.db.Query(query, args...)
	if err != nil {
		s.t.Fatal(err)
	}
	defer rows.Close()
	keys := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			s.t.Fatal(err)
		}
		keys[k] = true
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
	return keys
}

// objects returns the keys of the bucket's objects, read from the S3
// server's data dir (one file per object).
func (s *chaosStack) objects() map[string]bool {
	s.t.Helper()
	root := filepath.Join(s.s3Dir, "buckets", "pms-chaos")
	keys := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		key, _ := filepath.Rel(root, path)
		if key = filepath.ToSlash(key); strings.HasPrefix(key, "images/") {
			keys[key] = true
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.t.Fatal(err)
	}
	return keys
}

// imageHost serves a small PNG of its own for every path under /img/, and
// never answers paths under /hang/ (until the client gives up); it counts
// requests per path.
type imageHost struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

func newImageHost(t *testing.T) *imageHost {
	t.Helper()
	h := &imageHost{hits: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.hits[r.URL.Path]++
		h.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/hang/") {
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(tinyPNG(r.URL.Path))
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// URL returns the URL of path (with no leading "/") under /img/, or under
// /hang/ when path starts with "hang/".
func (h *imageHost) URL(path string) string {
	if strings.HasPrefix(path, "hang/") {
		return h.srv.URL + "/" + path
	}
	return h.srv.URL + "/img/" + path
}

// duplicates returns how many more fetches there were of paths containing
// prefix than paths.
func (h *imageHost) duplicates(prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for p, hits := range h.hits {
		if strings.Contains(p, "/"+prefix+"/") {
			n += hits - 1
		}
	}
	return n
}

// tinyPNG is a 24×16 PNG whose pixels depend on name, so that no two names
// have the same content.
func tinyPNG(name string) []byte {
	f := fnv.New64a()
	_, _ = f.Write([]byte(name))
	seed := f.Sum64()
	img := image.NewNRGBA(image.Rect(0, 0, 24, 16))
	for y := range 16 {
		for x := range 24 {
			v := seed >> ((x + y) % 56)
			img.Set(x, y, color.NRGBA{uint8(v), uint8(v>>8) ^ uint8(x*9), uint8(v>>16) ^ uint8(y*13), 255})
		}
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, img)
	return buf.Bytes()
}

// faultProxy forwards to an S3 server and, while failing, answers every
// request 503 SlowDown as S3 does when it sheds load.
type faultProxy struct {
	srv      *httptest.Server
	failing  atomic.Bool
	refused  atomic.Int64
	requests atomic.Int64
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	f := &faultProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if f.failing.Load() {
			f.refused.Add(1)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// URL returns the proxy's base URL.
func (f *faultProxy) URL() string { return f.srv.URL }

// loopbackOnly fails the test if addr is not a loopback address.
func loopbackOnly(t *testing.T, addr string) {
	t.Helper()
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		t.Fatalf("%s is not a loopback address", addr)
	}
}

// rss returns the resident set size of the process in bytes, and its peak.
func rss(t *testing.T, p *process) (int64, int64) {
	t.Helper()
	return pidStatus(t, p.cmd.Process.Pid, "VmRSS"), pidStatus(t, p.cmd.Process.Pid, "VmHWM")
}
