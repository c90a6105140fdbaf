package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/go-cmp/cmp"
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
