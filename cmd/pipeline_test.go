package cmd

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pms-dev/pms/platform/kafka/kafkatest"
)

// The pipeline tests run `pms all` in-process against components each test
// owns (see rig) and break one of them: the source, S3, Kafka or the worker
// itself.

// serve answers every request with data as an image.
func serve(data []byte) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Content-Type", "image/png")
		w.Write(data)
	}
}

// checkDeadLetter checks that dl is task dead-lettered with code after
// attempts attempts, under requestID.
func checkDeadLetter(t *testing.T, dl, task kafkatest.Message, code string, attempts int, requestID string) {
	t.Helper()
	want := map[string]string{
		"error_code":         code,
		"attempts":           strconv.Itoa(attempts),
		"original_topic":     taskTopic,
		"original_partition": strconv.Itoa(int(task.Partition)),
		"original_offset":    strconv.FormatInt(task.Offset, 10),
		"request_id":         requestID,
		"task_id":            task.Headers["task_id"],
	}
	for k, v := range want {
		if got := dl.Headers[k]; got != v {
			t.Errorf("dead letter header %s = %q, want %q", k, got, v)
		}
	}
	if dl.Headers["error_message"] == "" {
		t.Errorf("dead letter has no error_message header: %v", dl.Headers)
	}
	if string(dl.Key) != string(task.Key) || string(dl.Value) != string(task.Value) {
		t.Errorf("dead letter is %s=%s, want the task's %s=%s", dl.Key, dl.Value, task.Key, task.Value)
	}
}

// TestPipelineSourceNotFound: a source that answers 404 fails the image at
// once, without retries, and dead-letters its task with the reason.
func TestPipelineSourceNotFound(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	src := newSource(t, func(w http.ResponseWriter, req *http.Request, _ int) { http.NotFound(w, req) })
	s, _ := startAll(t, r.env(nil))

	const rid = "pipeline-not-found"
	id := createProduct(t, s, rid, src.URL("/gone.png"))
	p := waitSettled(t, s, id, 20*time.Second)
	if im := p.Images[0]; im.Status != "failed" || im.ErrorCode != "source_not_found" || im.Attempts != 1 {
		t.Errorf("image = %s/%s after %d attempts, want failed/source_not_found after 1", im.Status, im.ErrorCode, im.Attempts)
	}
	if n := src.Hits("/gone.png"); n != 1 {
		t.Errorf("source asked %d times, want 1", n)
	}
	task := findMessage(t, r.kafka.Messages(t, taskTopic), id)
	dls := r.kafka.WaitMessages(t, deadLetterTopic, 1, 15*time.Second)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1: %+v", len(dls), dls)
	}
	checkDeadLetter(t, dls[0], task, "source_not_found", 1, rid)
	if msg := dls[0].Headers["error_message"]; !strings.Contains(msg, "404") {
		t.Errorf("dead letter error_message = %q, want it to name the 404", msg)
	}
}

// TestPipelineSourceUnavailableTwice: a source that answers 503 twice is
// tried again with backoff and the third attempt makes the image; the
// worker's lines carry the request id, and its warnings the attempt.
func TestPipelineSourceUnavailableTwice(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	img := noisyPNG(t, 2)
	src := newSource(t, func(w http.ResponseWriter, req *http.Request, n int) {
		if n <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		serve(img)(w, req, n)
	})
	s, _ := startAll(t, r.env(nil))

	const rid = "pipeline-flaky-source"
	id := createProduct(t, s, rid, src.URL("/flaky.png"))
	p := waitSettled(t, s, id, 20*time.Second)
	im := p.Images[0]
	if im.Status != "ready" || im.Attempts != 3 || im.CompressedURL == "" {
		t.Fatalf("image = %+v, want ready with a compressed URL after 3 attempts", im)
	}
	if n := src.Hits("/flaky.png"); n != 3 {
		t.Errorf("source asked %d times, want 3", n)
	}
	if keys := r.s3.Keys(t, "images/"); !slices.Contains(keys, r.s3Key(t, im.CompressedURL)) {
		t.Errorf("S3 holds %v, want the compressed image %s among them", keys, im.CompressedURL)
	}
	if n := r.kafka.Count(deadLetterTopic); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}

	worker := map[string]string{"component": quote("worker"), "request_id": quote(rid), "product_id": quote(id)}
	if n := len(waitLogLines(t, s, worker, 3, 10*time.Second)); n < 3 {
		t.Errorf("%d worker log lines carry request id %s, want one per attempt at least", n, rid)
	}
	worker["level"], worker["message"] = quote("warn"), quote("task attempt failed")
	var attempts []string
	for _, line := range waitLogLines(t, s, worker, 2, 10*time.Second) {
		attempts = append(attempts, string(line["attempt"]))
	}
	if want := []string{"1", "2"}; !slices.Equal(attempts, want) {
		t.Errorf("warn lines of request %s have attempts %v, want %v", rid, attempts, want)
	}
}

// TestPipelineStorageUnavailable: while S3 answers 503 a task is tried
// three times, then its image is failed and the task dead-lettered with the
// uploader's code.
func TestPipelineStorageUnavailable(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	src := newSource(t, serve(noisyPNG(t, 3)))
	s, _ := startAll(t, r.env(nil))

	r.s3.Fail(1 << 20) // until Fail(0)
	before := r.s3.Requests()
	const rid = "pipeline-s3-down"
	id := createProduct(t, s, rid, src.URL("/ok.png"))
	p := waitSettled(t, s, id, 30*time.Second)
	if im := p.Images[0]; im.Status != "failed" || im.ErrorCode != "storage_unavailable" || im.Attempts != 3 {
		t.Errorf("image = %s/%s after %d attempts, want failed/storage_unavailable after 3", im.Status, im.ErrorCode, im.Attempts)
	}
	task := findMessage(t, r.kafka.Messages(t, taskTopic), id)
	dls := r.kafka.WaitMessages(t, deadLetterTopic, 1, 15*time.Second)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1: %+v", len(dls), dls)
	}
	checkDeadLetter(t, dls[0], task, "storage_unavailable", 3, rid)
	if n := src.Hits("/ok.png"); n != 3 {
		t.Errorf("source asked %d times, want 3", n)
	}
	// Each attempt gives up at its first upload, after the SDK's own tries.
	if n, want := r.s3.Requests()-before, 3*r.s3cfg.MaxAttempts; n != want {
		t.Errorf("S3 got %d requests, want %d (3 attempts × %d SDK tries)", n, want, r.s3cfg.MaxAttempts)
	}
	r.s3.Fail(0)
	if keys := r.s3.Keys(t, "images/"); len(keys) != 0 {
		t.Errorf("S3 holds %v for the product, want nothing", keys)
	}
}

// TestPipelineKafkaDownAtPost: with Kafka down a product is still created;
// its task waits in the outbox and is processed once Kafka is back.
func TestPipelineKafkaDownAtPost(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	src := newSource(t, serve(noisyPNG(t, 4)))
	s, _ := startAll(t, r.env(nil))

	r.kafka.Stop()
	const rid = "pipeline-kafka-down"
	id := createProduct(t, s, rid, src.URL("/later.png"))
	relayFailed := map[string]string{"component": quote("relay"), "message": quote("outbox relay cannot publish")}
	waitUntil(t, 20*time.Second, "the relay to fail to publish", func() bool { return len(logLines(t, s, relayFailed)) > 0 })
	if n := r.outboxPending(t, id); n != 1 {
		t.Errorf("%d unpublished outbox tasks for the product while Kafka is down, want 1", n)
	}
	if im := getProduct(t, s, id).Images[0]; im.Status != "pending" {
		t.Errorf("image is %s while Kafka is down, want pending", im.Status)
	}
	if n := src.Hits("/later.png"); n != 0 {
		t.Errorf("source asked %d times while Kafka is down, want 0", n)
	}

	r.kafka.Restart(t)
	p := waitSettled(t, s, id, 25*time.Second)
	if im := p.Images[0]; im.Status != "ready" || im.CompressedURL == "" {
		t.Errorf("image = %+v after Kafka came back, want ready", im)
	}
	if n := r.outboxPending(t, id); n != 0 {
		t.Errorf("%d unpublished outbox tasks after Kafka came back, want 0", n)
	}
}

// holdFirstPut is a proxy to the S3 server at target that stores the first
// object it is sent but holds back the answer until the client gives up, as
// when a worker dies between its upload and recording the result. stored
// receives that object's URL path.
func holdFirstPut(t *testing.T, target string) (endpoint string, stored <-chan string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	ch := make(chan string, 1)
	release := make(chan struct{})
	var held atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPut || !held.CompareAndSwap(false, true) {
			proxy.ServeHTTP(w, req)
			return
		}
		rec := httptest.NewRecorder()
		proxy.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Errorf("held PUT %s = %d %s", req.URL.Path, rec.Code, rec.Body)
		}
		ch <- req.URL.Path
		select {
		case <-req.Context().Done():
		case <-release:
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first
	return srv.URL, ch
}

// TestPipelineWorkerStoppedMidTask: a worker stopped after uploading but
// before recording abandons the task unfinished; the next worker of the
// group gets it again, and the content-addressed key leaves one object.
func TestPipelineWorkerStoppedMidTask(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	s3URL, stored := holdFirstPut(t, r.s3cfg.Endpoint)
	src := newSource(t, serve(noisyPNG(t, 5)))
	env := r.env(map[string]string{
		"PMS_S3_ENDPOINT":          s3URL,
		"PMS_S3_TIMEOUT":           "20s", // the held upload waits for the shutdown, not for this
		"PMS_KAFKA_SHUTDOWN_GRACE": "200ms",
		// The main preset alone, no ladder: one object per image.
		"PMS_IMAGING_PRESETS":       `[{"name":"main","max_width":1600,"max_height":1600,"format":"auto","quality":80}]`,
		"PMS_IMAGING_LADDER_WIDTHS": "",
	})
	first, stopFirst := startAll(t, env)

	const rid = "pipeline-worker-stopped"
	id := createProduct(t, first, rid, src.URL("/once.png"))
	var path string
	select {
	case path = <-stored:
	case <-time.After(20 * time.Second):
		t.Fatal("no upload within 20s")
	}
	key := strings.TrimPrefix(path, "/"+r.s3cfg.Bucket+"/")
	stopFirst()
	abandoned := map[string]string{"component": quote("worker"), "message": quote("cancelling unfinished tasks; they will be redelivered")}
	if len(logLines(t, first, abandoned)) == 0 {
		t.Errorf("the stopped worker logged no abandoned task")
	}
	givenBack := map[string]string{"component": quote("worker"), "message": quote("abandoned attempt given back"), "attempt": "1"}
	if len(logLines(t, first, givenBack)) != 1 {
		t.Errorf("the stopped worker did not log its attempt 1 given back")
	}
	if keys := r.s3.Keys(t, "images/"); !slices.Equal(keys, []string{key}) {
		t.Fatalf("S3 holds %v after the first worker stopped, want its upload %s", keys, key)
	}

	second, _ := startAll(t, env)
	second.key = first.key // the product's owner
	p := waitSettled(t, second, id, 20*time.Second)
	im := p.Images[0]
	if im.Status != "ready" {
		t.Fatalf("image = %+v after redelivery, want ready", im)
	}
	if im.Attempts != 1 {
		t.Errorf("image made in %d attempts, want 1: the attempt the stopped worker abandoned is given back", im.Attempts)
	}
	if got := r.s3Key(t, im.CompressedURL); got != key {
		t.Errorf("compressed image is %s, want the key the first worker wrote, %s", got, key)
	}
	if keys := r.s3.Keys(t, "images/"); !slices.Equal(keys, []string{key}) {
		t.Errorf("S3 holds %v for the product, want exactly %s", keys, key)
	}
	if n := src.Hits("/once.png"); n != 2 {
		t.Errorf("source asked %d times, want 2 (once per delivery)", n)
	}
	ready := map[string]string{"component": quote("worker"), "message": quote("image ready"), "request_id": quote(rid)}
	if len(waitLogLines(t, second, ready, 1, 10*time.Second)) != 1 {
		t.Errorf("the second worker did not log the image ready under request id %s", rid)
	}
}

// TestPipelineTooManyPixels: a tiny file whose header declares 30000×30000
// pixels is refused from the header, without retries and without decoding
// (which would take 3.6 GB). Not parallel: VmHWM is the whole process's.
func TestPipelineTooManyPixels(t *testing.T) {
	r := newRig(t)
	src := newSource(t, serve(hugePNG(30000, 30000)))
	s, _ := startAll(t, r.env(nil))

	field := "VmRSS"
	if !resetPeakRSS() {
		t.Log("cannot reset VmHWM; measuring its growth instead")
		field = "VmHWM"
	}
	before := procStatus(t, field)
	const rid = "pipeline-too-many-pixels"
	id := createProduct(t, s, rid, src.URL("/huge.png"))
	p := waitSettled(t, s, id, 20*time.Second)
	peak := procStatus(t, "VmHWM")

	if im := p.Images[0]; im.Status != "failed" || im.ErrorCode != "too_many_pixels" || im.Attempts != 1 {
		t.Errorf("image = %s/%s after %d attempts, want failed/too_many_pixels after 1", im.Status, im.ErrorCode, im.Attempts)
	}
	if n := src.Hits("/huge.png"); n != 1 {
		t.Errorf("source asked %d times, want 1", n)
	}
	task := findMessage(t, r.kafka.Messages(t, taskTopic), id)
	dls := r.kafka.WaitMessages(t, deadLetterTopic, 1, 15*time.Second)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1: %+v", len(dls), dls)
	}
	checkDeadLetter(t, dls[0], task, "too_many_pixels", 1, rid)
	const limit = 100 << 20
	t.Logf("peak RSS grew by %d MiB while the image was processed", (peak-before)>>20)
	if grew := peak - before; grew > limit {
		t.Errorf("peak RSS grew by %d MiB while the image was processed, want under %d MiB", grew>>20, limit>>20)
	}
}

// TestPipelineRedeliveredFinishedTask: a task delivered again after its
// image is ready changes nothing: no fetch, no upload, no new version.
func TestPipelineRedeliveredFinishedTask(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	src := newSource(t, serve(noisyPNG(t, 7)))
	s, _ := startAll(t, r.env(nil))

	id := createProduct(t, s, "pipeline-redelivered", src.URL("/done.png"))
	before := waitSettled(t, s, id, 20*time.Second)
	if im := before.Images[0]; im.Status != "ready" {
		t.Fatalf("image = %+v, want ready", im)
	}
	task := findMessage(t, r.kafka.Messages(t, taskTopic), id)
	committedPast := func(m kafkatest.Message) func() bool {
		return func() bool {
			off, ok := r.kafka.Committed(workerGroup, taskTopic)[m.Partition]
			return ok && off > m.Offset
		}
	}
	waitUntil(t, 15*time.Second, "the task's offset to be committed", committedPast(task))
	keys := r.s3.Keys(t, "images/")

	r.kafka.Produce(t, taskTopic, task.Key, task.Value, task.Headers)
	msgs := r.kafka.Messages(t, taskTopic)
	if len(msgs) != 2 {
		t.Fatalf("task topic holds %d messages, want the task and its copy", len(msgs))
	}
	again := msgs[0]
	if again.Partition == task.Partition && again.Offset == task.Offset {
		again = msgs[1]
	}
	waitUntil(t, 15*time.Second, "the copy's offset to be committed", committedPast(again))

	if diff := cmp.Diff(before, getProduct(t, s, id)); diff != "" {
		t.Errorf("product changed by the redelivered task (-before +after):\n%s", diff)
	}
	if n := src.Hits("/done.png"); n != 1 {
		t.Errorf("source asked %d times, want 1", n)
	}
	if after := r.s3.Keys(t, "images/"); !slices.Equal(after, keys) {
		t.Errorf("S3 holds %v after the redelivery, want %v as before", after, keys)
	}
	if n := r.kafka.Count(deadLetterTopic); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	stale := map[string]string{"message": quote("task is stale, skipped"), "offset": strconv.FormatInt(again.Offset, 10),
		"partition": strconv.Itoa(int(again.Partition))}
	if len(waitLogLines(t, s, stale, 1, 10*time.Second)) != 1 {
		t.Errorf("the worker did not log the copy at offset %d as stale", again.Offset)
	}
}
