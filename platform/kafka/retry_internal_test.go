package kafka

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/go-cmp/cmp"

	"github.com/pms-dev/pms/product/message"
)

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

func TestConsumed(t *testing.T) {
	tests := []struct {
		name    string
		headers [][2]string
		want    map[string]string
		wantRID string
	}{
		{"request_id header", [][2]string{{"request_id", "r1"}}, map[string]string{"request_id": "r1"}, "r1"},
		{"X-Request-ID header", [][2]string{{"x-request-id", "r2"}}, map[string]string{"x-request-id": "r2"}, "r2"},
		{"first of a name", [][2]string{{"request_id", "r3"}, {"request_id", "r4"}, {"task_id", "t"}},
			map[string]string{"request_id": "r3", "task_id": "t"}, "r3"},
		{"no header", nil, map[string]string{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := &sarama.ConsumerMessage{Topic: "tasks", Key: []byte("k"), Value: []byte("v")}
			for _, h := range tt.headers {
				msg.Headers = append(msg.Headers, &sarama.RecordHeader{Key: []byte(h[0]), Value: []byte(h[1])})
			}
			msg.Headers = append(msg.Headers, nil) // Sarama may hand out nil headers
			want := message.Message{Topic: "tasks", Key: "k", Payload: []byte("v"), Headers: tt.want}
			if diff := cmp.Diff(want, consumed(msg)); diff != "" {
				t.Errorf("consumed() (-want +got):\n%s", diff)
			}
			if got := correlationID(msg.Headers); got != tt.wantRID {
				t.Errorf("correlationID() = %q, want %q", got, tt.wantRID)
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
	cause := fmt.Errorf("process: %w", errors.New(strings.Repeat("x", 5000)))
	pm := deadLetterMessage("tasks.dlq", msg, "source_unavailable", cause, 3)
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
}
