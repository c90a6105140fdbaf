package kafka_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/kafka"
	"github.com/pms-dev/pms/platform/kafka/kafkatest"
)

// fakeHandler is an imaging.Handler made of funcs; a nil func succeeds. It
// counts each task's attempts as the durable store behind the real one
// does: Process adds one to counted, which a test may preset as if earlier
// deliveries had made attempts.
type fakeHandler struct {
	process func(ctx context.Context, t imaging.Task, attempt int) error
	giveUp  func(ctx context.Context, t imaging.Task, attempts int, cause error) error
	// uncounted makes Process report 0, as when the store cannot be reached.
	uncounted bool

	mu      sync.Mutex
	counted map[uuid.UUID]int
}

func (h *fakeHandler) Process(ctx context.Context, t imaging.Task) (int, error) {
	h.mu.Lock()
	if h.counted == nil {
		h.counted = make(map[uuid.UUID]int)
	}
	h.counted[t.ID]++
	n := h.counted[t.ID]
	h.mu.Unlock()
	var err error
	if h.process != nil {
		err = h.process(ctx, t, n)
	}
	if h.uncounted {
		return 0, err
	}
	return n, err
}

func (h *fakeHandler) GiveUp(ctx context.Context, t imaging.Task, attempts int, cause error) error {
	if h.giveUp == nil {
		return nil
	}
	return h.giveUp(ctx, t, attempts, cause)
}

func newTask(productID uuid.UUID, requestID string) imaging.Task {
	return imaging.Task{
		ID:          uuid.New(),
		ProductID:   productID,
		ImageID:     uuid.New(),
		SourceURL:   "https://images.example.com/" + uuid.NewString() + ".jpg",
		RequestedAt: time.Now().UTC().Truncate(time.Millisecond),
		RequestID:   requestID,
	}
}

// enqueue writes tasks through a Producer and fails the test unless all are
// acknowledged.
func enqueue(t *testing.T, cfg kafka.Config, tasks ...imaging.Task) {
	t.Helper()
	p, err := kafka.NewProducer(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("NewProducer() error = %v", err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Enqueue(ctx, tasks); err != nil {
		t.Fatalf("Enqueue(%d tasks) error = %v", len(tasks), err)
	}
}

// running is a Consumer whose Run is going on in the background.
type running struct {
	c      *kafka.Consumer
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// start runs a consumer until stop is called or the test ends.
func start(t *testing.T, cfg kafka.Config, h imaging.Handler, log zerolog.Logger) *running {
	t.Helper()
	dlq, err := kafka.NewProducer(cfg, log)
	if err != nil {
		t.Fatalf("NewProducer() error = %v", err)
	}
	t.Cleanup(func() { dlq.Close() })
	c, err := kafka.NewConsumer(cfg, h, dlq, log)
	if err != nil {
		t.Fatalf("NewConsumer() error = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run, fails the test unless it returns nil within 20s, and
// closes the consumer.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run() = %v, want nil after cancel", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("Run() did not return within 20s of cancel")
		}
		if err := r.c.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitCommitted waits until group has committed the end of every partition
// of topic that has messages.
func waitCommitted(t *testing.T, kc *kafkatest.Cluster, group, topic string, d time.Duration) {
	t.Helper()
	ends := make(map[int32]int64)
	for _, m := range kc.Messages(t, topic) {
		ends[m.Partition] = m.Offset + 1
	}
	waitFor(t, d, "offsets committed to the end of "+topic, func() bool {
		got := kc.Committed(group, topic)
		for p, end := range ends {
			if got[p] != end {
				return false
			}
		}
		return true
	})
}

// received is a concurrency-safe record of what a handler was given.
type received struct {
	mu    sync.Mutex
	tasks []imaging.Task
	seen  map[uuid.UUID]int
}

func (r *received) add(t imaging.Task) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = make(map[uuid.UUID]int)
	}
	r.tasks = append(r.tasks, t)
	r.seen[t.ID]++
}

func (r *received) count(id uuid.UUID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[id]
}

func (r *received) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.tasks)
}

// logBuffer collects JSON log lines safely from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the log lines whose message is msg, decoded.
func (b *logBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		if line["message"] == msg {
			out = append(out, line)
		}
	}
	return out
}

// testLogger logs to the test output and, when buf is not nil, to buf.
func testLogger(t *testing.T, buf io.Writer) zerolog.Logger {
	var w io.Writer = zerolog.NewTestWriter(t)
	if buf != nil {
		w = io.MultiWriter(w, buf)
	}
	return zerolog.New(w).Level(zerolog.DebugLevel)
}

// metric returns the value of the counter or gauge name (with the outcome
// label when outcome is not "") that c collects.
func metric(t *testing.T, c prometheus.Collector, name, outcome string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var got string
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					got = l.GetValue()
				}
			}
			if got != outcome {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s{outcome=%q}", name, outcome)
	return 0
}
