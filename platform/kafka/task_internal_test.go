package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/go-cmp/cmp"

	"github.com/pms-dev/pms/imaging"
)

func TestTrackerMarksInOrder(t *testing.T) {
	tests := []struct {
		name   string
		finish []int   // indexes of messages finished, in this order
		want   []int64 // offsets of the messages marked, in order
	}{
		{"in order", []int{0, 1, 2}, []int64{10, 11, 13}},
		{"later first", []int{1, 2, 0}, []int64{13}},
		{"middle missing", []int{0, 2}, []int64{10}},
		{"first missing", []int{2, 1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var marked []int64
			tr := newTracker(3, func(m *sarama.ConsumerMessage) { marked = append(marked, m.Offset) })
			var es []*entry
			for _, off := range []int64{10, 11, 13} { // offsets may have gaps
				if !tr.reserve(context.Background()) {
					t.Fatal("reserve() = false with room left")
				}
				es = append(es, tr.add(&sarama.ConsumerMessage{Offset: off}))
			}
			for _, i := range tt.finish {
				tr.finish(es[i])
			}
			if diff := cmp.Diff(tt.want, marked); diff != "" {
				t.Errorf("marked offsets (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTrackerWindow(t *testing.T) {
	tr := newTracker(1, func(*sarama.ConsumerMessage) {})
	tr.reserve(context.Background())
	e := tr.add(&sarama.ConsumerMessage{Offset: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if tr.reserve(ctx) {
		t.Fatal("reserve() = true with the window full, want false once ctx ends")
	}
	tr.finish(e)
	if !tr.reserve(context.Background()) {
		t.Fatal("reserve() = false after the window emptied")
	}
}

func TestBackoff(t *testing.T) {
	base, maxWait := 100*time.Millisecond, time.Second
	tests := []struct {
		n        int
		min, max time.Duration
	}{
		{1, 80 * time.Millisecond, 120 * time.Millisecond},
		{2, 160 * time.Millisecond, 240 * time.Millisecond},
		{3, 320 * time.Millisecond, 480 * time.Millisecond},
		{10, 800 * time.Millisecond, time.Second},
		{100, 800 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		for range 50 {
			if got := backoff(base, maxWait, tt.n); got < tt.min || got > tt.max {
				t.Fatalf("backoff(%v, %v, %d) = %v, want within [%v, %v]", base, maxWait, tt.n, got, tt.min, tt.max)
			}
		}
	}
}

func TestDecodeTask(t *testing.T) {
	body := `{"task_id":"0196a0c4-5b1e-7000-8000-000000000001","product_id":"0196a0c4-5b1e-7000-8000-000000000002","source_url":"https://x/a.jpg"}`
	tests := []struct {
		name    string
		value   string
		headers map[string]string
		wantRID string
		wantErr bool
	}{
		{"request_id header", body, map[string]string{"request_id": "r1"}, "r1", false},
		{"X-Request-ID header", body, map[string]string{"x-request-id": "r2"}, "r2", false},
		{"no header", body, nil, "", false},
		{"not JSON", "<xml/>", nil, "", true},
		{"no product", `{"task_id":"0196a0c4-5b1e-7000-8000-000000000001"}`, nil, "", true},
		{"empty", "", nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := &sarama.ConsumerMessage{Value: []byte(tt.value)}
			for k, v := range tt.headers {
				msg.Headers = append(msg.Headers, &sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
			}
			task, err := decodeTask(msg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("decodeTask() error = %v, want error: %v", err, tt.wantErr)
			}
			if task.RequestID != tt.wantRID {
				t.Errorf("decodeTask() RequestID = %q, want %q", task.RequestID, tt.wantRID)
			}
		})
	}
}

func TestDeadLetterMessage(t *testing.T) {
	msg := &sarama.ConsumerMessage{
		Topic: "tasks", Partition: 2, Offset: 41, Key: []byte("k"), Value: []byte("v"),
		Headers: []*sarama.RecordHeader{
			{Key: []byte("request_id"), Value: []byte("r")},
			{Key: []byte("error_code"), Value: []byte("from an earlier dead-lettering")},
		},
	}
	cause := fmt.Errorf("process: %w", imaging.Transient("source_unavailable", errors.New(strings.Repeat("x", 5000))))
	pm := deadLetterMessage("tasks.dlq", msg, imaging.FailureCode(cause), cause, 3)
	if pm.Topic != "tasks.dlq" {
		t.Errorf("topic = %q, want tasks.dlq", pm.Topic)
	}
	key, _ := pm.Key.Encode()
	value, _ := pm.Value.Encode()
	if string(key) != "k" || string(value) != "v" {
		t.Errorf("key, value = %q, %q; want k, v", key, value)
	}
	got := map[string]string{}
	for _, h := range pm.Headers {
		if _, dup := got[string(h.Key)]; dup {
			t.Errorf("header %s appears twice", h.Key)
		}
		got[string(h.Key)] = string(h.Value)
	}
	if n := len(got[HeaderErrorMessage]); n > maxErrorMessage {
		t.Errorf("error_message is %d bytes, want at most %d", n, maxErrorMessage)
	}
	delete(got, HeaderErrorMessage)
	want := map[string]string{
		"request_id": "r", "error_code": "source_unavailable", "attempts": "3",
		"original_topic": "tasks", "original_partition": "2", "original_offset": "41",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if code := imaging.FailureCode(errors.New("plain")); code != imaging.CodeInternal {
		t.Errorf("FailureCode(plain error) = %q, want %q", code, imaging.CodeInternal)
	}
}
