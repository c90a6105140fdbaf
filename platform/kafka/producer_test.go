package kafka_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/kafka"
	"github.com/pms-dev/pms/platform/kafka/kafkatest"
)

func TestProducerEnqueue(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	p, err := kafka.NewProducer(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("NewProducer() error = %v", err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := p.Enqueue(ctx, nil); err != nil {
		t.Errorf("Enqueue(nil) = %v, want nil", err)
	}
	own := newTask(uuid.New(), "req-own")
	fromCtx := newTask(uuid.New(), "")
	if err := p.Enqueue(imaging.WithRequestID(ctx, "req-ctx"), []imaging.Task{own, fromCtx}); err != nil {
		t.Fatalf("Enqueue() = %v, want nil", err)
	}

	wantRID := map[uuid.UUID]string{own.ID: "req-own", fromCtx.ID: "req-ctx"}
	msgs := kc.Messages(t, cfg.Topic)
	if len(msgs) != 2 {
		t.Fatalf("topic has %d messages, want 2", len(msgs))
	}
	for _, m := range msgs {
		var got imaging.Task
		if err := json.Unmarshal(m.Value, &got); err != nil {
			t.Fatalf("message value %q is not a task: %v", m.Value, err)
		}
		want := own
		if got.ID == fromCtx.ID {
			want = fromCtx
		}
		want.RequestID = "" // travels in a header
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("message body (-want +got):\n%s", diff)
		}
		if string(m.Key) != got.ProductID.String() {
			t.Errorf("message key = %q, want product id %s", m.Key, got.ProductID)
		}
		wantHeaders := map[string]string{kafka.HeaderTaskID: got.ID.String(), kafka.HeaderRequestID: wantRID[got.ID]}
		if diff := cmp.Diff(wantHeaders, m.Headers); diff != "" {
			t.Errorf("message headers (-want +got):\n%s", diff)
		}
	}

	if err := p.Check(ctx); err != nil {
		t.Errorf("Check() = %v, want nil", err)
	}
}

func TestProducerSameProductSamePartition(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	product := uuid.New()
	var tasks []imaging.Task
	for range 10 {
		tasks = append(tasks, newTask(product, ""))
	}
	enqueue(t, cfg, tasks...)
	msgs := kc.Messages(t, cfg.Topic)
	for _, m := range msgs {
		if m.Partition != msgs[0].Partition {
			t.Fatalf("one product's tasks landed in partitions %d and %d, want one", msgs[0].Partition, m.Partition)
		}
	}
}

func TestProducerCheckMissingTopic(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	cfg.Topic = "no.such.topic"
	p, err := kafka.NewProducer(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("NewProducer() error = %v", err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Check(ctx); err == nil {
		t.Error("Check() with a missing topic = nil, want an error")
	}
}

func TestProducerEnqueueHonoursContext(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	p, err := kafka.NewProducer(kc.Config(), zerolog.Nop())
	if err != nil {
		t.Fatalf("NewProducer() error = %v", err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Enqueue(ctx, []imaging.Task{newTask(uuid.New(), "")}); err == nil {
		t.Error("Enqueue() with a cancelled context = nil, want an error")
	}
}

func TestProducerWaitsForKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts a Kafka-protocol broker")
	}
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	kc.Stop()
	p, err := kafka.NewProducer(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("NewProducer() with Kafka down = %v, want a producer that connects later", err)
	}
	defer p.Close()
	task := imaging.Task{ID: uuid.New(), ProductID: uuid.New(), ImageID: uuid.New(), SourceURL: "https://example.com/a.jpg"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Enqueue(ctx, []imaging.Task{task}); err == nil {
		t.Fatal("Enqueue() with Kafka down = nil, want an error")
	}
	if err := p.Check(ctx); err == nil {
		t.Error("Check() with Kafka down = nil, want an error")
	}
	kc.Restart(t)
	if err := p.Enqueue(ctx, []imaging.Task{task}); err != nil {
		t.Fatalf("Enqueue() after Kafka came up = %v", err)
	}
	if got := kc.WaitMessages(t, cfg.Topic, 1, 5*time.Second); len(got) != 1 {
		t.Errorf("topic has %d messages, want the 1 enqueued", len(got))
	}
}
