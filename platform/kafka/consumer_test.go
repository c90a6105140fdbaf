package kafka_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/platform/kafka"
	"github.com/pms-dev/pms/platform/kafka/kafkatest"
	"github.com/pms-dev/pms/product/correlation"
	"github.com/pms-dev/pms/product/message"
)

func TestConsumerDeliversTasksWithRequestID(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	logs := &logBuffer{}
	var got received
	var mu sync.Mutex
	ctxRequestIDs := map[string]string{}
	h := &fakeHandler{handle: func(ctx context.Context, msg message.Message, attempt int) error {
		mu.Lock()
		ctxRequestIDs[idOf(msg)] = correlation.ID(ctx)
		mu.Unlock()
		zerolog.Ctx(ctx).Info().Msg("handler ran")
		got.add(msg)
		return nil
	}}
	start(t, cfg, h, testLogger(t, logs))

	want := map[string]message.Message{}
	var msgs []message.Message
	for i := range 3 {
		m := newMessage(cfg.Topic, uuid.NewString(), "req-"+strconv.Itoa(i))
		msgs = append(msgs, m)
		want[idOf(m)] = m
	}
	publish(t, cfg, msgs...)
	waitFor(t, 10*time.Second, "3 messages handled", func() bool { return got.len() >= 3 })
	waitCommitted(t, kc, cfg.GroupID, cfg.Topic, 5*time.Second)

	got.mu.Lock()
	defer got.mu.Unlock()
	if len(got.msgs) != 3 {
		t.Fatalf("handler got %d messages, want 3", len(got.msgs))
	}
	for _, m := range got.msgs {
		if diff := cmp.Diff(want[idOf(m)], m); diff != "" {
			t.Errorf("handler got message (-sent +got):\n%s", diff)
		}
		if rid := ctxRequestIDs[idOf(m)]; rid != want[idOf(m)].Headers[correlation.Header] {
			t.Errorf("correlation.ID(ctx) = %q for message %s, want %q", rid, idOf(m), want[idOf(m)].Headers[correlation.Header])
		}
	}
	lines := logs.lines(t, "handler ran")
	if len(lines) != 3 {
		t.Fatalf("got %d handler log lines, want 3", len(lines))
	}
	byKey := map[string]message.Message{}
	for _, m := range want {
		byKey[m.Key] = m
	}
	for _, l := range lines {
		key, _ := l["product_id"].(string) // the route's KeyName
		m, ok := byKey[key]
		if !ok || l["request_id"] != m.Headers[correlation.Header] || l["topic"] != cfg.Topic || l[headerID] != idOf(m) {
			t.Errorf("handler log line %v lacks the message's request_id, key as product_id, %s header or topic", l, headerID)
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
		handle: func(_ context.Context, _ message.Message, attempt int) error {
			mu.Lock()
			attempts = append(attempts, attempt)
			mu.Unlock()
			if attempt < 3 {
				return errors.New("503 from source")
			}
			return nil
		},
		giveUp: func(context.Context, message.Message, int, error) (string, error) { gaveUp.Add(1); return "", nil },
	}
	start(t, cfg, h, testLogger(t, nil))
	publish(t, cfg, newMessage(cfg.Topic, uuid.NewString(), "req"))
	waitCommitted(t, kc, cfg.GroupID, cfg.Topic, 10*time.Second)

	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]int{1, 2, 3}, attempts); diff != "" {
		t.Errorf("Handle attempts (-want +got):\n%s", diff)
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
		code         string // GiveUp's
		wantCode     string
		wantAttempts int
	}{
		{"transient failure", errors.New("source_unavailable: 503 from source"), "source_unavailable", "source_unavailable", 3},
		{"uncoded error", errors.New("connection reset"), "", kafka.CodeInternal, 3},
		{"permanent failure", fmt.Errorf("not_an_image: text/html: %w", message.ErrPermanent), "not_an_image", "not_an_image", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kc := kafkatest.New(t)
			cfg := kc.Config()
			var handleCalls, giveUps atomic.Int32
			var gotAttempts atomic.Int32
			var gotCause error
			var mu sync.Mutex
			h := &fakeHandler{
				handle: func(context.Context, message.Message, int) error { handleCalls.Add(1); return tt.err },
				giveUp: func(_ context.Context, _ message.Message, attempts int, cause error) (string, error) {
					giveUps.Add(1)
					gotAttempts.Store(int32(attempts))
					mu.Lock()
					gotCause = cause
					mu.Unlock()
					return tt.code, nil
				},
			}
			r := start(t, cfg, h, testLogger(t, nil))
			sent := newMessage(cfg.Topic, uuid.NewString(), "req-dlq")
			publish(t, cfg, sent)

			dlq := kc.WaitMessages(t, cfg.DeadLetterTopic, 1, 10*time.Second)
			waitCommitted(t, kc, cfg.GroupID, cfg.Topic, 5*time.Second)
			if n := giveUps.Load(); n != 1 {
				t.Errorf("GiveUp called %d times, want 1", n)
			}
			if n := gotAttempts.Load(); int(n) != tt.wantAttempts {
				t.Errorf("GiveUp attempts = %d, want %d", n, tt.wantAttempts)
			}
			if n := handleCalls.Load(); int(n) != tt.wantAttempts {
				t.Errorf("Handle called %d times, want %d", n, tt.wantAttempts)
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
			if string(d.Key) != sent.Key || string(d.Value) != string(o.Value) {
				t.Errorf("dead-lettered key, value = %q, %q; want %q, %q", d.Key, d.Value, sent.Key, o.Value)
			}
			want := map[string]string{
				correlation.Header:            "req-dlq",
				headerID:                      idOf(sent),
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
			if got := metric(t, r.c, "pms_kafka_tasks_total", outcome(cfg, "dead_lettered")); got != 1 {
				t.Errorf("pms_kafka_tasks_total{outcome=dead_lettered} = %v, want 1", got)
			}
			if got := metric(t, r.c, "pms_kafka_task_retries_total", map[string]string{"topic": cfg.Topic}); int(got) != tt.wantAttempts-1 {
				t.Errorf("pms_kafka_task_retries_total = %v, want %d", got, tt.wantAttempts-1)
			}
		})
	}
}

// TestConsumerCountsAttemptsAcrossDeliveries: the consumer numbers attempts
// by the handler's durable count, so attempts made by earlier deliveries
// (whose workers died) count against the message; attempts the handler
// could not count are counted by the consumer.
func TestConsumerCountsAttemptsAcrossDeliveries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		before    int  // attempts counted by earlier deliveries
		uncounted bool // the handler reports 0: its store is down
		wantCalls int  // Handle calls in this delivery
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
			sent := newMessage(cfg.Topic, uuid.NewString(), "req-count")
			var calls, gotAttempts atomic.Int32
			h := &fakeHandler{
				uncounted: tt.uncounted,
				counted:   map[string]int{idOf(sent): tt.before},
				handle: func(context.Context, message.Message, int) error {
					calls.Add(1)
					return errors.New("503 from source")
				},
				giveUp: func(_ context.Context, _ message.Message, attempts int, _ error) (string, error) {
					gotAttempts.Store(int32(attempts))
					return "source_unavailable", nil
				},
			}
			start(t, cfg, h, testLogger(t, nil))
			publish(t, cfg, sent)
			dlq := kc.WaitMessages(t, cfg.DeadLetterTopic, 1, 10*time.Second)
			waitCommitted(t, kc, cfg.GroupID, cfg.Topic, 5*time.Second)
			if n := calls.Load(); int(n) != tt.wantCalls {
				t.Errorf("Handle called %d times, want %d", n, tt.wantCalls)
			}
			if n := gotAttempts.Load(); n != maxAttempts {
				t.Errorf("GiveUp attempts = %d, want %d", n, maxAttempts)
			}
			if got := dlq[0].Headers[kafka.HeaderAttempts]; got != strconv.Itoa(maxAttempts) {
				t.Errorf("dead letter attempts header = %q, want %d", got, maxAttempts)
			}
		})
	}
}

// storeAwayHandler is a handler whose store is unavailable for its first
// away calls of each kind: Handle then counts nothing and GiveUp records
// nothing, and both say message.ErrUnavailable.
type storeAwayHandler struct {
	away                 int32
	err                  error // of each counted attempt
	handles, gaveUp      atomic.Int32
	attempts, gaveUpWith atomic.Int32
}

func (h *storeAwayHandler) Handle(context.Context, message.Message) (int, error) {
	if h.handles.Add(1) <= h.away {
		return 0, fmt.Errorf("begin task: %w: connection refused", message.ErrUnavailable)
	}
	return int(h.attempts.Add(1)), h.err
}

func (h *storeAwayHandler) GiveUp(_ context.Context, _ message.Message, attempts int, _ error) (string, error) {
	if h.gaveUp.Add(1) <= h.away {
		return "", fmt.Errorf("record failure: %w: connection refused", message.ErrUnavailable)
	}
	h.gaveUpWith.Store(int32(attempts))
	return "source_unavailable", nil
}

// TestConsumerWaitsOutAnUnavailableStore: while the store that counts a
// handler's attempts is away, its calls are no attempts: the consumer
// waits and tries again, using up none of the message's attempts, and a
// give-up that cannot be recorded is tried again too; nothing is
// dead-lettered before it is recorded.
func TestConsumerWaitsOutAnUnavailableStore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		err         error // of every counted attempt
		wantHandles int32
		wantGiveUps int32 // calls of GiveUp, 0 when the message succeeds
	}{
		{"then succeeds", nil, 6, 0},
		{"then fails at every attempt", errors.New("503 from source"), 5 + maxAttempts, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kc := kafkatest.New(t)
			cfg := kc.Config()
			h := &storeAwayHandler{away: 5, err: tt.err}
			start(t, cfg, h, testLogger(t, nil))
			publish(t, cfg, newMessage(cfg.Topic, uuid.NewString(), "req-away"))
			waitCommitted(t, kc, cfg.GroupID, cfg.Topic, 10*time.Second)
			if n := h.handles.Load(); n != tt.wantHandles {
				t.Errorf("Handle called %d times, want %d: 5 while the store was away, then the attempts", n, tt.wantHandles)
			}
			if n := h.gaveUp.Load(); n != tt.wantGiveUps {
				t.Errorf("GiveUp called %d times, want %d", n, tt.wantGiveUps)
			}
			wantDLQ := 0
			if tt.wantGiveUps > 0 {
				wantDLQ = 1
				if n := h.gaveUpWith.Load(); n != maxAttempts {
					t.Errorf("GiveUp recorded after %d attempts, want %d", n, maxAttempts)
				}
			}
			if n := kc.Count(cfg.DeadLetterTopic); n != wantDLQ {
				t.Errorf("dead-letter topic has %d messages, want %d", n, wantDLQ)
			}
		})
	}
}

// TestConsumerRoutesTopicsToTheirHandlers: each topic's messages reach its
// own handler only, and the one retry and dead-letter loop wraps both
// handlers, each with its route's attempts.
func TestConsumerRoutesTopicsToTheirHandlers(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	const events = "pms.test-events"
	kc.CreateTopic(t, events, 2)

	var tasksGot, eventsGot received
	tasks := &fakeHandler{
		handle: func(_ context.Context, m message.Message, attempt int) error {
			tasksGot.add(m)
			if string(m.Payload) == `"poison"` {
				return errors.New("always fails")
			}
			if attempt < 2 {
				return errors.New("fails once")
			}
			return nil
		},
		giveUp: func(context.Context, message.Message, int, error) (string, error) { return "task_failed", nil },
	}
	eventHandler := &fakeHandler{
		uncounted: true, // like most handlers: the loop counts
		handle: func(_ context.Context, m message.Message, _ int) error {
			eventsGot.add(m)
			if string(m.Payload) == `"poison"` {
				return errors.New("always fails")
			}
			return nil
		},
		giveUp: func(context.Context, message.Message, int, error) (string, error) { return "event_failed", nil },
	}
	r := startRoutes(t, cfg, []kafka.Route{
		taskRoute(cfg, tasks),
		{Topic: events, Handler: eventHandler, MaxAttempts: 2},
	}, testLogger(t, nil))

	task, event := newMessage(cfg.Topic, "p1", "r-task"), newMessage(events, "p1", "r-event")
	poisonTask, poisonEvent := newMessage(cfg.Topic, "p2", "r-pt"), newMessage(events, "p2", "r-pe")
	poisonTask.Payload, poisonEvent.Payload = []byte(`"poison"`), []byte(`"poison"`)
	publish(t, cfg, task, event, poisonTask, poisonEvent)

	dls := kc.WaitMessages(t, cfg.DeadLetterTopic, 2, 20*time.Second)
	waitCommitted(t, kc, cfg.GroupID, cfg.Topic, 10*time.Second)
	waitCommitted(t, kc, cfg.GroupID, events, 10*time.Second)
	for _, tt := range []struct {
		what  string
		got   *received
		own   []message.Message
		other []message.Message
		calls []int // per own message
	}{
		{"task handler", &tasksGot, []message.Message{task, poisonTask}, []message.Message{event, poisonEvent}, []int{2, maxAttempts}},
		{"event handler", &eventsGot, []message.Message{event, poisonEvent}, []message.Message{task, poisonTask}, []int{1, 2}},
	} {
		for i, m := range tt.own {
			if n := tt.got.count(idOf(m)); n != tt.calls[i] {
				t.Errorf("%s handled its message %s %d times, want %d", tt.what, m.Payload, n, tt.calls[i])
			}
		}
		for _, m := range tt.other {
			if n := tt.got.count(idOf(m)); n != 0 {
				t.Errorf("%s got a message of the other topic %d times", tt.what, n)
			}
		}
	}
	want := map[string][3]string{ // by id: original topic, code, attempts
		idOf(poisonTask):  {cfg.Topic, "task_failed", strconv.Itoa(maxAttempts)},
		idOf(poisonEvent): {events, "event_failed", "2"},
	}
	for _, d := range dls {
		w, ok := want[d.Headers[headerID]]
		got := [3]string{d.Headers[kafka.HeaderOriginalTopic], d.Headers[kafka.HeaderErrorCode], d.Headers[kafka.HeaderAttempts]}
		if !ok || got != w {
			t.Errorf("dead letter %v: original topic, code, attempts %v; want one of %v", d.Headers, got, want)
		}
		delete(want, d.Headers[headerID])
	}
	for _, topic := range []string{cfg.Topic, events} {
		labels := map[string]string{"topic": topic}
		for o, n := range map[string]float64{"processed": 1, "dead_lettered": 1} {
			labels["outcome"] = o
			if got := metric(t, r.c, "pms_kafka_tasks_total", labels); got != n {
				t.Errorf("pms_kafka_tasks_total%v = %v, want %v", labels, got, n)
			}
		}
	}
}

func TestConsumerCommitsInOrderWithConcurrency(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	cfg.Concurrency = 2
	key := uuid.NewString() // one key: one partition
	slow1, fast, slow3 := newMessage(cfg.Topic, key, "r1"), newMessage(cfg.Topic, key, "r2"), newMessage(cfg.Topic, key, "r3")
	release := make(chan struct{})
	var inFlight, maxInFlight atomic.Int32
	var fastDone, slow3Started atomic.Bool
	h := &fakeHandler{handle: func(ctx context.Context, m message.Message, _ int) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		switch idOf(m) {
		case idOf(fast):
			defer fastDone.Store(true)
			return nil
		case idOf(slow3):
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
	publish(t, cfg, slow1, fast, slow3)
	msgs := kc.Messages(t, cfg.Topic)
	if len(msgs) != 3 || msgs[0].Partition != msgs[2].Partition {
		t.Fatalf("messages landed as %+v, want 3 in one partition", msgs)
	}
	part, first, last := msgs[0].Partition, msgs[0].Offset, msgs[2].Offset

	waitFor(t, 10*time.Second, "fast message done and third message started", func() bool { return fastDone.Load() && slow3Started.Load() })
	time.Sleep(10 * cfg.CommitInterval) // room for a wrong commit to happen
	if got, ok := kc.Committed(cfg.GroupID, cfg.Topic)[part]; ok && got > first {
		t.Fatalf("committed offset %d while the message at offset %d is unfinished, want at most %d", got, first, first)
	}
	if n := maxInFlight.Load(); n != 2 {
		t.Errorf("max messages in flight = %d, want 2 (Concurrency)", n)
	}
	close(release)
	waitFor(t, 10*time.Second, "offsets committed after the slow messages", func() bool {
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
		sent := newMessage(cfg.Topic, uuid.NewString(), "r")
		started := make(chan struct{})
		var sawCancel atomic.Bool
		first := start(t, cfg, &fakeHandler{handle: func(ctx context.Context, _ message.Message, _ int) error {
			close(started)
			<-ctx.Done() // a task that runs past the grace
			sawCancel.Store(true)
			return ctx.Err()
		}}, testLogger(t, nil))
		publish(t, cfg, sent)
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
		start(t, cfg, &fakeHandler{handle: func(_ context.Context, m message.Message, _ int) error {
			again.add(m)
			return nil
		}}, testLogger(t, nil))
		waitFor(t, 10*time.Second, "task redelivered to the next run", func() bool { return again.count(idOf(sent)) == 1 })
		waitCommitted(t, kc, cfg.GroupID, cfg.Topic, 5*time.Second)
	})
	t.Run("task finishing within the grace is committed", func(t *testing.T) {
		t.Parallel()
		kc := kafkatest.New(t)
		cfg := kc.Config()
		cfg.ShutdownGrace = 5 * time.Second
		sent := newMessage(cfg.Topic, uuid.NewString(), "r")
		started := make(chan struct{})
		first := start(t, cfg, &fakeHandler{handle: func(context.Context, message.Message, int) error {
			close(started)
			time.Sleep(300 * time.Millisecond)
			return nil
		}}, testLogger(t, nil))
		publish(t, cfg, sent)
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("task not started within 10s")
		}
		first.stop(t)
		waitCommitted(t, kc, cfg.GroupID, cfg.Topic, time.Second)

		var again received
		start(t, cfg, &fakeHandler{handle: func(_ context.Context, m message.Message, _ int) error {
			again.add(m)
			return nil
		}}, testLogger(t, nil))
		sentinel := newMessage(cfg.Topic, sent.Key, "s")
		publish(t, cfg, sentinel)
		waitFor(t, 10*time.Second, "sentinel message handled", func() bool { return again.count(idOf(sentinel)) == 1 })
		if n := again.count(idOf(sent)); n != 0 {
			t.Errorf("finished task delivered %d more times, want 0", n)
		}
	})
}

func TestConsumerNewGroupStartsAtOldest(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	var msgs []message.Message
	for range 5 {
		msgs = append(msgs, newMessage(cfg.Topic, uuid.NewString(), ""))
	}
	publish(t, cfg, msgs...) // a backlog before the group exists

	var got received
	start(t, cfg, &fakeHandler{handle: func(_ context.Context, m message.Message, _ int) error {
		got.add(m)
		return nil
	}}, testLogger(t, nil))
	waitFor(t, 10*time.Second, "backlog consumed", func() bool { return got.len() >= 5 })
	for _, m := range msgs {
		if n := got.count(idOf(m)); n != 1 {
			t.Errorf("backlog message %s handled %d times, want 1", idOf(m), n)
		}
	}
}

// readable is a handle func that reads the JSON id the test put in each
// payload, and calls a message without one malformed.
func readable(got *received) func(context.Context, message.Message, int) error {
	return func(_ context.Context, m message.Message, _ int) error {
		var body struct{ ID string }
		if err := json.Unmarshal(m.Payload, &body); err != nil || body.ID == "" {
			return fmt.Errorf("read test message: %w", message.ErrMalformed)
		}
		got.add(m)
		return nil
	}
}

func TestConsumerDeadLettersBadMessages(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	kc.Produce(t, cfg.Topic, []byte("k1"), []byte("not json"), map[string]string{"request_id": "r-poison"})
	kc.Produce(t, cfg.Topic, []byte("k2"), []byte("{}"), nil) // JSON, but no id
	poison := kc.Messages(t, cfg.Topic)

	var got received
	var giveUps atomic.Int32
	r := start(t, cfg, &fakeHandler{
		handle: readable(&got),
		giveUp: func(context.Context, message.Message, int, error) (string, error) { giveUps.Add(1); return "", nil },
	}, testLogger(t, nil))
	good := newMessage(cfg.Topic, uuid.NewString(), "r-good")
	publish(t, cfg, good)

	waitFor(t, 10*time.Second, "good message handled", func() bool { return got.count(idOf(good)) == 1 })
	dlq := kc.WaitMessages(t, cfg.DeadLetterTopic, 2, 10*time.Second)
	waitCommitted(t, kc, cfg.GroupID, cfg.Topic, 5*time.Second)
	if n := got.len(); n != 1 {
		t.Errorf("handler read %d messages, want only the good one", n)
	}
	if n := giveUps.Load(); n != 0 {
		t.Errorf("GiveUp called %d times for messages that cannot be read, want 0", n)
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
	if n := metric(t, r.c, "pms_kafka_tasks_total", outcome(cfg, "bad_message")); n != 2 {
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
		handle: func(context.Context, message.Message, int) error { return errors.New("boom") },
		giveUp: func(context.Context, message.Message, int, error) (string, error) { giveUps.Add(1); return "", nil },
	}, testLogger(t, nil))
	publish(t, cfg, newMessage(cfg.Topic, uuid.NewString(), "r"))
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
	msgs := make([]message.Message, 200)
	for i := range msgs {
		msgs[i] = newMessage(cfg.Topic, uuid.NewString(), "")
	}
	publish(t, cfg, msgs...)

	var n atomic.Int32
	begin := time.Now()
	r := start(t, cfg, &fakeHandler{handle: func(context.Context, message.Message, int) error {
		n.Add(1)
		return nil
	}}, testLogger(t, nil))
	waitFor(t, 10*time.Second, "200 messages handled", func() bool { return n.Load() >= 200 })
	waitCommitted(t, kc, cfg.GroupID, cfg.Topic, 5*time.Second)
	if took := time.Since(begin); took > 8*time.Second {
		t.Errorf("200 messages took %v, want a few seconds", took)
	}
	t.Logf("200 messages handled and committed in %v", time.Since(begin))
	if got := metric(t, r.c, "pms_kafka_tasks_total", outcome(cfg, "processed")); got != 200 {
		t.Errorf("pms_kafka_tasks_total{outcome=processed} = %v, want 200", got)
	}
	waitFor(t, time.Second, "pms_kafka_tasks_in_flight back to 0", func() bool {
		return metric(t, r.c, "pms_kafka_tasks_in_flight", nil) == 0
	})
}

func TestConsumerCheck(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	c, err := kafka.NewConsumer(cfg, []kafka.Route{taskRoute(cfg, &fakeHandler{})}, newDLQ(t, cfg), zerolog.Nop())
	if err != nil {
		t.Fatalf("NewConsumer() error = %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Check(ctx); err != nil {
		t.Errorf("Check() = %v, want nil", err)
	}

	routes := []kafka.Route{taskRoute(cfg, &fakeHandler{}), {Topic: "no.such.topic", Handler: &fakeHandler{}, MaxAttempts: 1}}
	missing, err := kafka.NewConsumer(cfg, routes, newDLQ(t, cfg), zerolog.Nop())
	if err != nil {
		t.Fatalf("NewConsumer() error = %v", err)
	}
	defer missing.Close()
	if err := missing.Check(ctx); err == nil {
		t.Error("Check() with a missing routed topic = nil, want an error")
	}
}

func TestNewConsumerRefusesBadRoutes(t *testing.T) {
	cfg := kafka.DefaultConfig()
	h := &fakeHandler{}
	tests := []struct {
		name   string
		routes []kafka.Route
		want   string
	}{
		{"none", nil, "no routes"},
		{"no topic", []kafka.Route{{Handler: h, MaxAttempts: 1}}, "no topic"},
		{"the dead-letter topic", []kafka.Route{{Topic: cfg.DeadLetterTopic, Handler: h, MaxAttempts: 1}}, "dead-letter topic"},
		{"a topic twice", []kafka.Route{taskRoute(cfg, h), taskRoute(cfg, h)}, "routed twice"},
		{"no handler", []kafka.Route{{Topic: cfg.Topic, MaxAttempts: 1}}, "no handler"},
		{"no attempts", []kafka.Route{{Topic: cfg.Topic, Handler: h}}, "max attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Routes are checked before any broker is dialled.
			c, err := kafka.NewConsumer(cfg, tt.routes, &kafka.Producer{}, zerolog.Nop())
			if err == nil {
				c.Close()
				t.Fatalf("NewConsumer(%+v) = nil error, want one containing %q", tt.routes, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewConsumer(%+v) = %v, want an error containing %q", tt.routes, err, tt.want)
			}
		})
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

// TestConsumerOrderedRouteKeepsKeyOrder: an ordered route handles one
// key's messages one after another, in order, even when early ones are
// slow or fail once, while other keys go on meanwhile.
func TestConsumerOrderedRouteKeepsKeyOrder(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	cfg.Concurrency = 4
	cfg.RetryBackoff, cfg.MaxRetryBackoff = 10*time.Millisecond, 20*time.Millisecond
	keys := []string{uuid.NewString(), uuid.NewString(), uuid.NewString()}
	var msgs []message.Message
	seq := map[string]int{} // message id -> its place among its key's
	for i := range 30 {
		m := newMessage(cfg.Topic, keys[i%len(keys)], "")
		seq[idOf(m)] = i / len(keys)
		msgs = append(msgs, m)
	}
	var mu sync.Mutex
	order := map[string][]int{}
	tried := map[string]bool{}
	var inFlight, maxInFlight atomic.Int32
	h := &fakeHandler{handle: func(ctx context.Context, m message.Message, _ int) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		id := idOf(m)
		mu.Lock()
		first := !tried[id]
		tried[id] = true
		mu.Unlock()
		if seq[id]%3 == 0 {
			time.Sleep(20 * time.Millisecond) // a slow one
		}
		if first && seq[id]%4 == 1 {
			return errors.New("transient")
		}
		mu.Lock()
		order[m.Key] = append(order[m.Key], seq[id])
		mu.Unlock()
		return nil
	}}
	route := taskRoute(cfg, h)
	route.Ordered = true
	startRoutes(t, cfg, []kafka.Route{route}, testLogger(t, nil))
	publish(t, cfg, msgs...)
	waitFor(t, 20*time.Second, "30 messages handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, o := range order {
			n += len(o)
		}
		return n == 30
	})
	mu.Lock()
	defer mu.Unlock()
	for _, k := range keys {
		for i, s := range order[k] {
			if s != i {
				t.Fatalf("key %s handled in order %v, want 0..9", k, order[k])
			}
		}
	}
	if n := maxInFlight.Load(); n > int32(len(keys)) {
		t.Errorf("max messages in flight = %d, want at most one per key (%d)", n, len(keys))
	}
}
