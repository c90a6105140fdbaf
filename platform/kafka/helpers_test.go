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

	"github.com/pms-dev/pms/platform/kafka"
	"github.com/pms-dev/pms/platform/kafka/kafkatest"
	"github.com/pms-dev/pms/product/correlation"
	"github.com/pms-dev/pms/product/message"
)

// headerID carries the id a test gives each message it sends.
const headerID = "test_id"

// idOf returns the id a test gave msg, or "".
func idOf(msg message.Message) string { return msg.Headers[headerID] }

// fakeHandler is a kafka.Handler made of funcs; a nil func succeeds, and a
// nil giveUp gives no code. It counts each message's attempts as a durable
// store would: Handle adds one to counted, which a test may preset as if
// earlier deliveries had made attempts.
type fakeHandler struct {
	handle func(ctx context.Context, msg message.Message, attempt int) error
	giveUp func(ctx context.Context, msg message.Message, attempts int, cause error) (string, error)
	// uncounted makes Handle report 0, as when the store cannot be reached
	// or the handler does not count.
	uncounted bool

	mu      sync.Mutex
	counted map[string]int
}

func (h *fakeHandler) Handle(ctx context.Context, msg message.Message) (int, error) {
	h.mu.Lock()
	if h.counted == nil {
		h.counted = make(map[string]int)
	}
	h.counted[idOf(msg)]++
	n := h.counted[idOf(msg)]
	h.mu.Unlock()
	var err error
	if h.handle != nil {
		err = h.handle(ctx, msg, n)
	}
	if h.uncounted {
		return 0, err
	}
	return n, err
}

func (h *fakeHandler) GiveUp(ctx context.Context, msg message.Message, attempts int, cause error) (string, error) {
	if h.giveUp == nil {
		return "", nil
	}
	return h.giveUp(ctx, msg, attempts, cause)
}

// newMessage returns a message on topic with key, an id of its own in
// headerID and payload, and the correlation id requestID ("" for none).
func newMessage(topic, key, requestID string) message.Message {
	id := uuid.NewString()
	m := message.New(correlation.WithID(context.Background(), requestID), topic, key, []byte(`{"id":"`+id+`"}`))
	m.Headers[headerID] = id
	return m
}

// publish writes msgs through a Producer and fails the test unless all are
// acknowledged.
func publish(t *testing.T, cfg kafka.Config, msgs ...message.Message) {
	t.Helper()
	p, err := kafka.NewProducer(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("NewProducer() error = %v", err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Publish(ctx, msgs); err != nil {
		t.Fatalf("Publish(%d messages) error = %v", len(msgs), err)
	}
}

// maxAttempts is the attempts a test route gives a message.
const maxAttempts = 3

// taskRoute routes the task topic of cfg to h, as the worker does.
func taskRoute(cfg kafka.Config, h kafka.Handler) kafka.Route {
	return kafka.Route{Topic: cfg.Topic, Handler: h, MaxAttempts: maxAttempts, KeyName: "product_id", LogHeaders: []string{headerID}}
}

// running is a Consumer whose Run is going on in the background.
type running struct {
	c      *kafka.Consumer
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// start runs a consumer of the task topic of cfg, routed to h, until stop
// is called or the test ends.
func start(t *testing.T, cfg kafka.Config, h kafka.Handler, log zerolog.Logger) *running {
	t.Helper()
	return startRoutes(t, cfg, []kafka.Route{taskRoute(cfg, h)}, log)
}

// startRoutes runs a consumer of routes until stop is called or the test
// ends.
func startRoutes(t *testing.T, cfg kafka.Config, routes []kafka.Route, log zerolog.Logger) *running {
	t.Helper()
	dlq, err := kafka.NewProducer(cfg, log)
	if err != nil {
		t.Fatalf("NewProducer() error = %v", err)
	}
	t.Cleanup(func() { dlq.Close() })
	c, err := kafka.NewConsumer(cfg, routes, dlq, log)
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
	mu   sync.Mutex
	msgs []message.Message
	seen map[string]int
}

func (r *received) add(m message.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = make(map[string]int)
	}
	r.msgs = append(r.msgs, m)
	r.seen[idOf(m)]++
}

func (r *received) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[id]
}

func (r *received) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
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

// metric returns the value of the counter or gauge name whose labels
// include labels (outcome, topic) that c collects.
func metric(t *testing.T, c prometheus.Collector, name string, labels map[string]string) float64 {
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
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if !matches(got, labels) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

// matches reports whether got has every label of want.
func matches(got, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// outcome selects pms_kafka_tasks_total of one outcome on the task topic of
// cfg.
func outcome(cfg kafka.Config, o string) map[string]string {
	return map[string]string{"topic": cfg.Topic, "outcome": o}
}
