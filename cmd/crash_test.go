package cmd

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/kafka"
	"github.com/pms-dev/pms/platform/kafka/kafkatest"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/platform/redis/redistest"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
	"github.com/pms-dev/pms/product/correlation"
	"github.com/pms-dev/pms/product/message"
)

// pmsBinary is the pms binary the process tests run, built once per test
// binary (see TestMain).
var pmsBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// buildPMS returns the pms binary, built as `make build` does (cgo on) on
// first use: tens of seconds of a busy machine, once per test binary.
func buildPMS(t *testing.T) string {
	t.Helper()
	b := &pmsBinary
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "pms-bin-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "pms")
		build := exec.Command("go", "build", "-o", b.path, "..")
		build.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := build.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build pms: %w\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// TestMain removes the pms binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if pmsBinary.dir != "" {
		_ = os.RemoveAll(pmsBinary.dir)
	}
	os.Exit(code)
}

// process is a pms child process; its output is kept and shown when the
// test fails.
type process struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when it has exited
	err  error         // of Wait, once done is closed
}

// startProcess runs bin with args and the PMS_* variables in env on top of
// the test's environment (without its own PMS_* variables). The test's
// cleanup kills what is still running.
func startProcess(t *testing.T, bin string, env map[string]string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PMS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &process{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pms %v: %v", args, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.signal(t, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("pms %v (pid %d) output:\n%s", args, cmd.Process.Pid, p.out.String())
		}
	})
	return p
}

// signal sends sig and waits up to 30s for the process to exit; it returns
// the error of Wait (nil for exit status 0).
func (p *process) signal(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("signal %v to pid %d: %v", sig, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(30 * time.Second):
		t.Fatalf("pid %d still running 30s after %v", p.cmd.Process.Pid, sig)
		return nil
	}
}

// poisonFixture creates a product whose first image is the poison task and
// whose second a good one, and publishes their tasks, which share a
// partition, in that order. It returns the store it used, for reading the
// product back, and the two task messages.
func poisonFixture(t *testing.T, r *rig, requestID, poisonURL, goodURL string) (*postgres.ProductStore, product.Product, []kafkatest.Message) {
	t.Helper()
	store, ps := publishProducts(t, r, requestID, [][]string{{poisonURL, goodURL}})
	tasks := r.kafka.Messages(t, taskTopic)
	if len(tasks) != 2 || tasks[0].Partition != tasks[1].Partition || !strings.Contains(string(tasks[0].Value), poisonURL) {
		t.Fatalf("task topic holds %+v, want the poison task and then the good one in one partition", tasks)
	}
	return store, ps[0], tasks
}

// publishProducts creates one product per list of image URLs, for a new
// user, and publishes their image tasks to the rig's Kafka as the relay of
// `pms serve` would. It returns the store it used, for reading the products
// back, and the products.
func publishProducts(t *testing.T, r *rig, requestID string, images [][]string) (*postgres.ProductStore, []product.Product) {
	t.Helper()
	ctx := context.Background()
	db, err := postgres.Open(postgrestest.Config(t, r.dbURL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := postgres.NewProductStore(db, postgres.DefaultIdempotencyConfig())
	if err != nil {
		t.Fatal(err)
	}
	svc := product.NewService(store, imageTasks, product.Policy{})
	u, err := account.NewService(postgres.NewAccountStore(db)).CreateUser(ctx, requestID+"@example.test", "Test", false)
	if err != nil {
		t.Fatal(err)
	}
	var ps []product.Product
	tasks := 0
	for i, urls := range images {
		d := product.Draft{Name: fmt.Sprintf("Product %d", i), Price: 100, ImageURLs: urls}
		p, _, err := svc.Create(correlation.WithID(ctx, requestID), account.Caller{UserID: u.ID}, d, "")
		if err != nil {
			t.Fatalf("create product: %v", err)
		}
		ps = append(ps, p)
		tasks += len(urls)
	}
	if n := publishOutbox(t, r, db); n != tasks {
		t.Fatalf("published %d of the products' tasks, want %d", n, tasks)
	}
	return store, ps
}

// publishOutbox publishes a batch of db's outbox to the rig's Kafka, as
// the relay of `pms serve` would, and returns how many messages it held.
func publishOutbox(t *testing.T, r *rig, db *postgres.DB) int {
	t.Helper()
	producer, err := kafka.NewProducer(r.kafka.Config(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	relay, err := postgres.NewRelay(postgres.DefaultRelayConfig(), db, producer, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	n, err := relay.PublishBatch(context.Background())
	if err != nil {
		t.Fatalf("publish the outbox: %v", err)
	}
	return n
}

// images returns the product's images as stored now.
func images(t *testing.T, store *postgres.ProductStore, p product.Product) []product.Image {
	t.Helper()
	got, err := store.Get(context.Background(), p.ID)
	if err != nil {
		t.Fatalf("get product %s: %v", p.ID, err)
	}
	return got.Images
}

// TestWorkerKilledMidTaskThreeTimes runs the real `pms worker` binary on a
// task whose source never answers, and SIGKILLs it in the middle of that
// task three times, starting it again each time, as a worker killed for
// memory would be. The fourth worker gives the task up without running it:
// dead-lettered as worker_crashed after 3 attempts, the image failed, and
// the partition moves on to the next task.
func TestWorkerKilledMidTaskThreeTimes(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: builds and runs pms worker")
	}
	t.Parallel()
	begin := time.Now()
	bin := buildPMS(t)
	t.Logf("pms built in %v", time.Since(begin).Round(time.Millisecond))
	r := newRig(t)

	arrived := make(chan struct{}, 8) // one per request for the poison image
	good := noisyPNG(t, 11)
	src := newSource(t, func(w http.ResponseWriter, req *http.Request, n int) {
		if req.URL.Path == "/poison.png" {
			arrived <- struct{}{}
			<-req.Context().Done() // hangs until the worker dies
			return
		}
		serve(good)(w, req, n)
	})
	const rid = "worker-killed-mid-task"
	store, p, tasks := poisonFixture(t, r, rid, src.URL("/poison.png"), src.URL("/good.png"))
	poison, next := tasks[0], tasks[1]

	worker := crashWorkers(t, r, bin)

	killMidTask(t, worker, arrived, func(attempt int) {
		// The attempt was counted before the fetch began.
		if im := images(t, store, p)[0]; im.Status != product.ImageProcessing || im.Attempts != attempt {
			t.Fatalf("poison image is %s after %d attempts mid-task, want processing after %d", im.Status, im.Attempts, attempt)
		}
	})

	started := time.Now()
	last := worker()
	dls := r.kafka.WaitMessages(t, deadLetterTopic, 1, 60*time.Second)
	t.Logf("worker %d dead-lettered the poison task %v after its start", imaging.MaxAttempts+1, time.Since(started).Round(time.Millisecond))
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want the poison task alone: %+v", len(dls), dls)
	}
	checkDeadLetter(t, dls[0], poison, imaging.CodeWorkerCrashed, imaging.MaxAttempts, rid)
	waitUntil(t, 30*time.Second, "the next task of the partition to be processed", func() bool {
		return images(t, store, p)[1].Status == product.ImageReady
	})
	got := images(t, store, p)
	if im := got[0]; im.Status != product.ImageFailed || im.ErrorCode != imaging.CodeWorkerCrashed || im.Attempts != imaging.MaxAttempts {
		t.Errorf("poison image = %s/%s after %d attempts, want failed/%s after %d",
			im.Status, im.ErrorCode, im.Attempts, imaging.CodeWorkerCrashed, imaging.MaxAttempts)
	}
	if im := got[1]; len(im.Variants) == 0 || im.Attempts != 1 {
		t.Errorf("next image = %+v, want ready with a compressed URL after 1 attempt", im)
	}
	if n := src.Hits("/poison.png"); n != imaging.MaxAttempts {
		t.Errorf("poison source asked %d times, want %d: the last worker must give up without fetching", n, imaging.MaxAttempts)
	}
	waitUntil(t, 15*time.Second, "offsets committed past both tasks", func() bool {
		off, ok := r.kafka.Committed(workerGroup, taskTopic)[next.Partition]
		return ok && off > next.Offset
	})
	if err := last.signal(t, syscall.SIGTERM); err != nil {
		t.Errorf("last worker exited with %v after SIGTERM, want status 0", err)
	}
	if n := gaveUp(last, rid); n != 1 {
		t.Errorf("the last worker logged %d give-ups of request %s, want 1", n, rid)
	}
}

// crashWorkers returns a function that starts a `pms worker` process on
// the rig, as the crash tests run it: one task at a time, so a partition's
// next task waits for the one in hand; short backoffs, waits and commit
// intervals; debug logs; each worker on an ops address of its own.
func crashWorkers(t *testing.T, r *rig, bin string) func() *process {
	env := r.env(map[string]string{
		"PMS_IMAGING_FETCH_ALLOW_PRIVATE_NETWORKS": "true", // the sources are on loopback
		"PMS_KAFKA_CONCURRENCY":                    "1",
		"PMS_KAFKA_RETRY_BACKOFF":                  "50ms",
		"PMS_KAFKA_MAX_WAIT_TIME":                  "50ms",
		"PMS_KAFKA_COMMIT_INTERVAL":                "100ms",
		"PMS_KAFKA_SHUTDOWN_GRACE":                 "1s",
		"PMS_LOG_LEVEL":                            "debug",
		"PMS_REDIS_ADDR":                           redistest.Addr(t),
	})
	return func() *process {
		env["PMS_WORKER_ADDR"] = freeAddr(t)
		return startProcess(t, bin, env, "worker", "--config", filepath.Join("..", "config.yaml"))
	}
}

// killMidTask starts a worker imaging.MaxAttempts times and SIGKILLs each
// in the middle of the task whose source request arrives on arrived, once
// counted(attempt) has checked what the attempt left in PostgreSQL.
func killMidTask(t *testing.T, worker func() *process, arrived <-chan struct{}, counted func(attempt int)) {
	t.Helper()
	for attempt := 1; attempt <= imaging.MaxAttempts; attempt++ {
		started := time.Now()
		w := worker()
		select {
		case <-arrived:
		case <-time.After(60 * time.Second):
			t.Fatalf("worker %d did not fetch the poison image within 60s", attempt)
		}
		t.Logf("worker %d (pid %d) mid-task %v after its start", attempt, w.cmd.Process.Pid, time.Since(started).Round(time.Millisecond))
		counted(attempt)
		if err := w.signal(t, syscall.SIGKILL); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("worker %d exited with %v after SIGKILL, want killed", attempt, err)
		}
	}
}

// gaveUp counts the give-ups of request rid in a worker's log.
func gaveUp(w *process, rid string) int {
	n := 0
	for _, line := range strings.Split(w.out.String(), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["message"] == "task given up; dead-lettered" && l["request_id"] == rid {
			n++
		}
	}
	return n
}

// TestWorkerKilledMidReprocessThreeTimes is TestWorkerKilledMidTaskThreeTimes
// for a pms reprocess task: its attempts are counted in PostgreSQL too, so
// the fourth worker gives it up as worker_crashed without fetching, and
// the image stays ready with the variants it had.
func TestWorkerKilledMidReprocessThreeTimes(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: builds and runs pms worker")
	}
	t.Parallel()
	bin := buildPMS(t)
	r := newRig(t)
	arrived := make(chan struct{}, 8)
	src := newSource(t, func(w http.ResponseWriter, req *http.Request, n int) {
		arrived <- struct{}{}
		<-req.Context().Done() // hangs until the worker dies
	})
	const rid = "worker-killed-mid-reprocess"
	store, ps := publishProducts(t, r, rid, [][]string{{src.URL("/poison.png")}})
	p := ps[0]
	ctx := correlation.WithID(context.Background(), rid)
	db, err := postgres.Open(postgrestest.Config(t, r.dbURL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// The image was made once, with another preset set: its first task is
	// then stale, and pms reprocess queues it.
	results := postgres.NewImageResults(db)
	first := imaging.Task{ProductID: p.ID, ImageID: p.Images[0].ID, SourceURL: p.Images[0].SourceURL}
	made := imaging.Result{PresetSet: "older", Variants: []imaging.Variant{{Name: "main", URL: "https://cdn.example/old.webp", Width: 8, Height: 8, Bytes: 80, Format: "webp"}}}
	if _, err := results.Begin(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := results.Ready(ctx, first, made); err != nil {
		t.Fatal(err)
	}
	tasks := imaging.NewTaskMessages(taskTopic)
	n, err := results.QueueReprocess(ctx, imaging.DefaultConfig().PresetSet(), 10, func(im postgres.ReprocessImage) (message.Message, error) {
		return tasks.ReprocessTask(ctx, im.ProductID, im.ID, im.SourceURL, time.Now())
	})
	if err != nil || n != 1 {
		t.Fatalf("QueueReprocess = %d, %v; want the image", n, err)
	}
	if n := publishOutbox(t, r, db); n != 1 {
		t.Fatalf("published %d reprocess tasks, want 1", n)
	}
	queued := r.kafka.Messages(t, taskTopic)
	if len(queued) != 2 {
		t.Fatalf("task topic holds %d messages, want the first task and the reprocess one", len(queued))
	}
	reprocess := queued[1]

	worker := crashWorkers(t, r, bin)
	raw, err := sql.Open("postgres", r.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	killMidTask(t, worker, arrived, func(attempt int) {
		var counted int
		if err := raw.QueryRow(`SELECT reprocess_attempts FROM product_images WHERE id = $1`, first.ImageID).Scan(&counted); err != nil || counted != attempt {
			t.Fatalf("reprocess attempts mid-task = %d, %v; want %d", counted, err, attempt)
		}
	})

	last := worker()
	dls := r.kafka.WaitMessages(t, deadLetterTopic, 1, 60*time.Second)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want the reprocess task alone: %+v", len(dls), dls)
	}
	checkDeadLetter(t, dls[0], reprocess, imaging.CodeWorkerCrashed, imaging.MaxAttempts, rid)
	if im := images(t, store, p)[0]; im.Status != product.ImageReady || len(im.Variants) != 1 || im.Variants[0].URL != made.Variants[0].URL {
		t.Errorf("image after the reprocess was given up = %+v, want ready with the variant it had", im)
	}
	if n := src.Hits("/poison.png"); n != imaging.MaxAttempts {
		t.Errorf("source asked %d times, want %d: the last worker must give up without fetching", n, imaging.MaxAttempts)
	}
	if err := last.signal(t, syscall.SIGTERM); err != nil {
		t.Errorf("last worker exited with %v after SIGTERM, want status 0", err)
	}
	if n := gaveUp(last, rid); n != 1 {
		t.Errorf("the last worker logged %d give-ups of request %s, want 1", n, rid)
	}
}
