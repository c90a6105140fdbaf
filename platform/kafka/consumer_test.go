package kafka_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/kafka"
	"github.com/pms-dev/pms/platform/kafka/kafkatest"
)

func TestConsumerDeliversTasksWithRequestID(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	logs := &logBuffer{}
	var got received
	var mu sync.Mutex
	ctxRequestIDs := map[uuid.UUID]string{}
	h := &fakeHandler{process: func(ctx context.Context, task imaging.Task, attempt int) error {
		mu.Lock()
		ctxRequestIDs[task.ID] = imaging.RequestID(ctx)
		mu.Unlock()
		zerolog.Ctx(ctx).Info().Msg("handler ran")
		got.add(task)
		return nil
	}}
	start(t, cfg, h, testLogger(t, logs))

	want := map[uuid.UUID]imaging.Task{}
	var tasks []imaging.Task
	for i := range 3 {
		task := newTask(uuid.New(), "req-"+strconv.Itoa(i))
		tasks = append(tasks, task)
		want[task.ID] = task
	}
	enqueue(t, cfg, tasks...)
	waitFor(t, 10*time.Second, "3 tasks handled", func() bool { return got.len() >= 3 })
	waitCommitted(t, kc, cfg.GroupID, cfg.Topic, 5*time.Second)

	got.mu.Lock()
	defer got.mu.Unlock()
	if len(got.tasks) != 3 {
		t.Fatalf("handler got %d tasks, want 3", len(got.tasks))
	}
	for _, task := range got.tasks {
		if diff := cmp.Diff(want[task.ID], task); diff != "" {
			t.Errorf("handler got task (-sent +got):\n%s", diff)
		}
		if rid := ctxRequestIDs[task.ID]; rid != want[task.ID].RequestID {
			t.Errorf("imaging.RequestID(ctx) = %q for task %s, want %q", rid, task.ID, want[task.ID].RequestID)
		}
	}
	lines := logs.lines(t, "handler ran")
	if len(lines) != 3 {
		t.Fatalf("got %d handler log lines, want 3", len(lines))
	}
	for _, l := range lines {
		id, _ := uuid.Parse(l["task_id"].(string))
		task := want[id]
		if l["request_id"] != task.RequestID || l["product_id"] != task.ProductID.String() || l["topic"] != cfg.Topic {
			t.Errorf("handler log line %v lacks the task's request_id, product_id or topic", l)
		}
		if _, ok := l["partition"]; !ok {
			t.Errorf("handler log line %v has no partition", l)
		}
		if _, ok := l["offset"]; !ok {
			t.Errorf("handler log line %v has no offset", l)
		}
	}
}

func TestConsumerRetriesThenSucceeds(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	var mu sync.Mutex
	var attempts []int
	var gaveUp atomic.Int32
	h := &fakeHandler{
		process: func(_ context.Context, _ imaging.Task, attempt int) error {
			mu.Lock()
			attempts = append(attempts, attempt)
			mu.Unlock()
			if attempt < 3 {
				return imaging.Transient("source_unavailable", errors.New("503 from source"))
			}
			return nil
		},
		giveUp: func(context.Context, imaging.Task, int, error) error { gaveUp.Add(1); return nil },
	}
	start(t, cfg, h, testLogger(t, nil))
	enqueue(t, cfg, newTask(uuid.New(), "req"))
	waitCommitted(t, kc, cfg.GroupID, cfg.Topic, 10*time.Second)

	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]int{1, 2, 3}, attempts); diff != "" {
		t.Errorf("Process attempts (-want +got):\n%s", diff)
	}
	if n := gaveUp.Load(); n != 0 {
		t.Errorf("GiveUp called %d times, want 0", n)
	}
	if n := kc.Count(cfg.DeadLetterTopic); n != 0 {
		t.Errorf("dead-letter topic has %d messages, want 0", n)
	}
}

func TestConsumerGivesUpAndDeadLetters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		err          error
		wantCode     string
		wantAttempts int
	}{
		{"transient failure", imaging.Transient("source_unavailable", errors.New("503 from source")), "source_unavailable", 3},
		{"uncoded error", errors.New("connection reset"), imaging.CodeInternal, 3},
		{"permanent failure", imaging.Permanent("not_an_image", errors.New("text/html")), "not_an_image", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kc := kafkatest.New(t)
			cfg := kc.Config()
			var processCalls, giveUps atomic.Int32
			var gotAttempts atomic.Int32
			var gotCause error
			var mu sync.Mutex
			h := &fakeHandler{
				process: func(context.Context, imaging.Task, int) error { processCalls.Add(1); return tt.err },
				giveUp: func(_ context.Context, _ imaging.Task, attempts int, cause error) error {
					giveUps.Add(1)
					gotAttempts.Store(int32(attempts))
					mu.Lock()
					gotCause = cause
					mu.Unlock()
					return nil
				},
			}
			r := start(t, cfg, h, testLogger(t, nil))
			task := newTask(uuid.New(), "req-dlq")
			enqueue(t, cfg, task)

			dlq := kc.WaitMessages(t, cfg.DeadLetterTopic, 1, 10*time.Second)
			waitCommitted(t, kc, cfg.GroupID, cfg.Topic, 5*time.Second)
			if n := giveUps.Load(); n != 1 {
				t.Errorf("GiveUp called %d times, want 1", n)
			}
			if n := gotAttempts.Load(); int(n) != tt.wantAttempts {
				t.Errorf("GiveUp attempts = %d, want %d", n, tt.wantAttempts)
			}
			if n := processCalls.Load(); int(n) != tt.wantAttempts {
				t.Errorf("Process called %d times, want %d", n, tt.wantAttempts)
			}
			mu.Lock()
			if !errors.Is(gotCause, tt.err) {
				t.Errorf("GiveUp cause = %v, want %v", gotCause, tt.err)
			}
			mu.Unlock()

			orig := kc.Messages(t, cfg.Topic)
			if len(dlq) != 1 || len(orig) != 1 {
				t.Fatalf("got %d dead-lettered and %d original messages, want 1 and 1", len(dlq), len(orig))
			}
			d, o := dlq[0], orig[0]
			if string(d.Key) != task.ProductID.String() || string(d.Value) != string(o.Value) {
				t.Errorf("dead-lettered key, value = %q, %q; want %q, %q", d.Key, d.Value, task.ProductID, o.Value)
			}
			want := map[string]string{
				kafka.HeaderRequestID:         "req-dlq",
				kafka.HeaderTaskID:            task.ID.String(),
				kafka.HeaderErrorCode:         tt.wantCode,
				kafka.HeaderErrorMessage:      tt.err.Error(),
				kafka.HeaderAttempts:          strconv.Itoa(tt.wantAttempts),
				kafka.HeaderOriginalTopic:     cfg.Topic,
				kafka.HeaderOriginalPartition: strconv.Itoa(int(o.Partition)),
				kafka.HeaderOriginalOffset:    strconv.FormatInt(o.Offset, 10),
			}
			if diff := cmp.Diff(want, d.Headers); diff != "" {
				t.Errorf("dead-letter headers (-want +got):\n%s", diff)
			}
			if got := metric(t, r.c, "pms_kafka_tasks_total", "dead_lettered"); got != 1 {
				t.Errorf("pms_kafka_tasks_total{outcome=dead_lettered} = %v, want 1", got)
			}
			if got := metric(t, r.c, "pms_kafka_task_retries_total", ""); int(got) != tt.wantAttempts-1 {
				t.Errorf("pms_kafka_task_retries_total = %v, want %d", got, tt.wantAttempts-1)
			}
		})
	}
}

// TestConsumerCountsAttemptsAcrossDeliveries: the consumer numbers attempts
// by the handler's durable count, so attempts made by earlier deliveries
// (whose workers died) count against the task; attempts the handler could
// not count are counted by the consumer.
func TestConsumerCountsAttemptsAcrossDeliveries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		before    int  // attempts counted by earlier deliveries
		uncounted bool // the handler reports 0: its store is down
		wantCalls int  // Process calls in this delivery
	}{
		{"two attempts made before", 2, false, 1},
		{"one attempt made before", 1, false, 2},
		{"none made before", 0, false, 3},
		{"attempts the handler cannot count", 0, true, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kc := kafkatest.New(t)
			cfg := kc.Config()
			task := newTask(uuid.New(), "req-count")
			var calls, gotAttempts atomic.Int32
			h := &fakeHandler{
				uncounted: tt.uncounted,
				counted:   map[uuid.UUID]int{task.ID: tt.before},
				process: func(context.Context, imaging.Task, int) error {
					calls.Add(1)
					return imaging.Transient("source_unavailable", errors.New("503 from source"))
				},
				giveUp: func(_ context.Context, _ imaging.Task, attempts int, _ error) error {
					gotAttempts.Store(int32(attempts))
					return nil
				},
			}
			start(t, cfg, h, testLogger(t, nil))
			enqueue(t, cfg, task)
			dlq := kc.WaitMessages(t, cfg.DeadLetterTopic, 1, 10*time.Second)
			waitCommitted(t, kc, cfg.GroupID, cfg.Topic, 5*time.Second)
			if n := calls.Load(); int(n) != tt.wantCalls {
				t.Errorf("Process called %d times, want %d", n, tt.wantCalls)
			}
			if n := gotAttempts.Load(); n != imaging.MaxAttempts {
				t.Errorf("GiveUp attempts = %d, want %d", n, imaging.MaxAttempts)
			}
			if got := dlq[0].Headers[kafka.HeaderAttempts]; got != strconv.Itoa(imaging.MaxAttempts) {
				t.Errorf("dead letter attempts header = %q, want %d", got, imaging.MaxAttempts)
			}
		})
	}
}

func TestConsumerCommitsInOrderWithConcurrency(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	cfg.Concurrency = 2
	product := uuid.New() // one key: one partition
	slow1, fast, slow3 := newTask(product, "r1"), newTask(product, "r2"), newTask(product, "r3")
	release := make(chan struct{})
	var inFlight, maxInFlight atomic.Int32
	var fastDone, slow3Started atomic.Bool
	h := &fakeHandler{process: func(ctx context.Context, task imaging.Task, _ int) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		switch task.ID {
		case fast.ID:
			defer fastDone.Store(true)
			return nil
		case slow3.ID:
			slow3Started.Store(true)
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	start(t, cfg, h, testLogger(t, nil))
	enqueue(t, cfg, slow1, fast, slow3)
	msgs := kc.Messages(t, cfg.Topic)
	if len(msgs) != 3 || msgs[0].Partition != msgs[2].Partition {
		t.Fatalf("tasks landed as %+v, want 3 in one partition", msgs)
	}
	part, first, last := msgs[0].Partition, msgs[0].Offset, msgs[2].Offset

	waitFor(t, 10*time.Second, "fast task done and third task started", func() bool { return fastDone.Load() && slow3Started.Load() })
	time.Sleep(10 * cfg.CommitInterval) // room for a wrong commit to happen
	if got, ok := kc.Committed(cfg.GroupID, cfg.Topic)[part]; ok && got > first {
		t.Fatalf("committed offset %d while the task at offset %d is unfinished, want at most %d", got, first, first)
	}
	if n := maxInFlight.Load(); n != 2 {
		t.Errorf("max tasks in flight = %d, want 2 (Concurrency)", n)
	}
	close(release)
	waitFor(t, 10*time.Second, "offsets committed after the slow tasks", func() bool {
		return kc.Committed(cfg.GroupID, cfg.Topic)[part] == last+1
	})
}

func TestConsumerShutdownMidTask(t *testing.T) {
	t.Parallel()
	t.Run("unfinished task is redelivered", func(t *testing.T) {
		t.Parallel()
		kc := kafkatest.New(t)
		cfg := kc.Config()
		cfg.ShutdownGrace = 200 * time.Millisecond
		task := newTask(uuid.New(), "r")
		started := make(chan struct{})
		var sawCancel atomic.Bool
		first := start(t, cfg, &fakeHandler{process: func(ctx context.Context, _ imaging.Task, _ int) error {
			close(started)
			<-ctx.Done() // a task that runs past the grace
			sawCancel.Store(true)
			return ctx.Err()
		}}, testLogger(t, nil))
		enqueue(t, cfg, task)
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("task not started within 10s")
		}
		first.stop(t)
		if !sawCancel.Load() {
			t.Error("the task's context was not cancelled at shutdown")
		}
		if got := kc.Committed(cfg.GroupID, cfg.Topic); len(got) != 0 && got[kc.Messages(t, cfg.Topic)[0].Partition] > 0 {
			t.Errorf("committed offsets %v after an abandoned task, want none", got)
		}

		var again received
		start(t, cfg, &fakeHandler{process: func(_ context.Context, tk imaging.Task, _ int) error {
			again.add(tk)
			return nil
		}}, testLogger(t, nil))
		waitFor(t, 10*time.Second, "task redelivered to the next run", func() bool { return again.count(task.ID) == 1 })
		waitCommitted(t, kc, cfg.GroupID, cfg.Topic, 5*time.Second)
	})
	t.Run("task finishing within the grace is committed", func(t *testing.T) {
		t.Parallel()
		kc := kafkatest.New(t)
		cfg := kc.Config()
		cfg.ShutdownGrace = 5 * time.Second
		task := newTask(uuid.New(), "r")
		started := make(chan struct{})
		first := start(t, cfg, &fakeHandler{process: func(context.Context, imaging.Task, int) error {
			close(started)
			time.Sleep(300 * time.Millisecond)
			return nil
		}}, testLogger(t, nil))
		enqueue(t, cfg, task)
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("task not started within 10s")
		}
		first.stop(t)
		waitCommitted(t, kc, cfg.GroupID, cfg.Topic, time.Second)

		var again received
		start(t, cfg, &fakeHandler{process: func(_ context.Context, tk imaging.Task, _ int) error {
			again.add(tk)
			return nil
		}}, testLogger(t, nil))
		sentinel := newTask(task.ProductID, "s")
		enqueue(t, cfg, sentinel)
		waitFor(t, 10*time.Second, "sentinel task handled", func() bool { return again.count(sentinel.ID) == 1 })
		if n := again.count(task.ID); n != 0 {
			t.Errorf("finished task delivered %d more times, want 0", n)
		}
	})
}

func TestConsumerNewGroupStartsAtOldest(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	var tasks []imaging.Task
	for range 5 {
		tasks = append(tasks, newTask(uuid.New(), ""))
	}
	enqueue(t, cfg, tasks...) // a backlog before the group exists

	var got received
	start(t, cfg, &fakeHandler{process: func(_ context.Context, tk imaging.Task, _ int) error {
		got.add(tk)
		return nil
	}}, testLogger(t, nil))
	waitFor(t, 10*time.Second, "backlog consumed", func() bool { return got.len() >= 5 })
	for _, tk := range tasks {
		if n := got.count(tk.ID); n != 1 {
			t.Errorf("backlog task %s handled %d times, want 1", tk.ID, n)
		}
	}
}

func TestConsumerDeadLettersBadMessages(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	kc.Produce(t, cfg.Topic, []byte("k1"), []byte("not json"), map[string]string{"request_id": "r-poison"})
	kc.Produce(t, cfg.Topic, []byte("k2"), []byte("{}"), nil) // JSON, but no product
	poison := kc.Messages(t, cfg.Topic)

	var got received
	r := start(t, cfg, &fakeHandler{process: func(_ context.Context, tk imaging.Task, _ int) error {
		got.add(tk)
		return nil
	}}, testLogger(t, nil))
	good := newTask(uuid.New(), "r-good")
	enqueue(t, cfg, good)

	waitFor(t, 10*time.Second, "good task handled", func() bool { return got.count(good.ID) == 1 })
	dlq := kc.WaitMessages(t, cfg.DeadLetterTopic, 2, 10*time.Second)
	waitCommitted(t, kc, cfg.GroupID, cfg.Topic, 5*time.Second)
	if n := got.len(); n != 1 {
		t.Errorf("handler got %d tasks, want only the good one", n)
	}
	byValue := map[string]kafkatest.Message{}
	for _, m := range dlq {
		byValue[string(m.Value)] = m
	}
	for _, p := range poison {
		d, ok := byValue[string(p.Value)]
		if !ok {
			t.Errorf("message %q not dead-lettered", p.Value)
			continue
		}
		h := d.Headers
		if h[kafka.HeaderErrorCode] != kafka.CodeBadMessage || h[kafka.HeaderAttempts] != "0" ||
			h[kafka.HeaderOriginalOffset] != strconv.FormatInt(p.Offset, 10) ||
			h[kafka.HeaderOriginalPartition] != strconv.Itoa(int(p.Partition)) || string(d.Key) != string(p.Key) {
			t.Errorf("dead-lettered %q: key %q, headers %v; want key %q, bad_message, attempts 0, original partition %d offset %d",
				p.Value, d.Key, h, p.Key, p.Partition, p.Offset)
		}
	}
	if n := metric(t, r.c, "pms_kafka_tasks_total", "bad_message"); n != 2 {
		t.Errorf("pms_kafka_tasks_total{outcome=bad_message} = %v, want 2", n)
	}
	if h := byValue["not json"].Headers; h["request_id"] != "r-poison" || h[kafka.HeaderErrorMessage] == "" {
		t.Errorf("dead-lettered headers %v, want the original request_id and an error_message", h)
	}
}

func TestConsumerKeepsMessageUntilDeadLetterWritten(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	cfg.DeadLetterTopic = "pms.image-tasks.dlq-missing" // not created yet
	var giveUps atomic.Int32
	start(t, cfg, &fakeHandler{
		process: func(context.Context, imaging.Task, int) error { return errors.New("boom") },
		giveUp:  func(context.Context, imaging.Task, int, error) error { giveUps.Add(1); return nil },
	}, testLogger(t, nil))
	enqueue(t, cfg, newTask(uuid.New(), "r"))
	waitFor(t, 10*time.Second, "task given up", func() bool { return giveUps.Load() == 1 })
	time.Sleep(20 * cfg.CommitInterval)
	if got := kc.Committed(cfg.GroupID, cfg.Topic); len(got) != 0 {
		for _, off := range got {
			if off > 0 {
				t.Fatalf("committed %v while the dead-letter topic cannot be written, want nothing", got)
			}
		}
	}
	kc.CreateTopic(t, cfg.DeadLetterTopic, 1)
	kc.WaitMessages(t, cfg.DeadLetterTopic, 1, 15*time.Second)
	waitCommitted(t, kc, cfg.GroupID, cfg.Topic, 5*time.Second)
	if n := giveUps.Load(); n != 1 {
		t.Errorf("GiveUp called %d times, want 1", n)
	}
}

func TestConsumer200TasksQuickly(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	// Sarama's default fetch wait: committing per message would wait this
	// long for each of the 200 commits.
	cfg.MaxWaitTime = 500 * time.Millisecond
	tasks := make([]imaging.Task, 200)
	for i := range tasks {
		tasks[i] = newTask(uuid.New(), "")
	}
	enqueue(t, cfg, tasks...)

	var n atomic.Int32
	begin := time.Now()
	r := start(t, cfg, &fakeHandler{process: func(context.Context, imaging.Task, int) error {
		n.Add(1)
		return nil
	}}, testLogger(t, nil))
	waitFor(t, 10*time.Second, "200 tasks handled", func() bool { return n.Load() >= 200 })
	waitCommitted(t, kc, cfg.GroupID, cfg.Topic, 5*time.Second)
	if took := time.Since(begin); took > 8*time.Second {
		t.Errorf("200 tasks took %v, want a few seconds", took)
	}
	t.Logf("200 tasks handled and committed in %v", time.Since(begin))
	if got := metric(t, r.c, "pms_kafka_tasks_total", "processed"); got != 200 {
		t.Errorf("pms_kafka_tasks_total{outcome=processed} = %v, want 200", got)
	}
	waitFor(t, time.Second, "pms_kafka_tasks_in_flight back to 0", func() bool {
		return metric(t, r.c, "pms_kafka_tasks_in_flight", "") == 0
	})
}

func TestConsumerCheck(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	c, err := kafka.NewConsumer(cfg, &fakeHandler{}, newDLQ(t, cfg), zerolog.Nop())
	if err != nil {
		t.Fatalf("NewConsumer() error = %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Check(ctx); err != nil {
		t.Errorf("Check() = %v, want nil", err)
	}

	cfg.Topic = "no.such.topic"
	missing, err := kafka.NewConsumer(cfg, &fakeHandler{}, newDLQ(t, cfg), zerolog.Nop())
	if err != nil {
		t.Fatalf("NewConsumer() error = %v", err)
	}
	defer missing.Close()
	if err := missing.Check(ctx); err == nil {
		t.Error("Check() with a missing topic = nil, want an error")
	}
}

func TestConsumerRunTwice(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	r := start(t, cfg, &fakeHandler{}, testLogger(t, nil))
	kc.WaitGroupStable(t, cfg.GroupID, 1, 10*time.Second) // the first Run is going
	if err := r.c.Run(context.Background()); err == nil {
		t.Error("second Run() = nil, want an error")
	}
}

func newDLQ(t *testing.T, cfg kafka.Config) *kafka.Producer {
	t.Helper()
	p, err := kafka.NewProducer(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("NewProducer() error = %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}
