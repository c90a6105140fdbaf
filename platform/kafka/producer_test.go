package kafka_test

import (
	"context"
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

func TestProducerPublish(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	const events = "pms.test-events"
	kc.CreateTopic(t, events, 1)
	p, err := kafka.NewProducer(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("NewProducer() error = %v", err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := p.Publish(ctx, nil); err != nil {
		t.Errorf("Publish(nil) = %v, want nil", err)
	}
	task := newMessage(cfg.Topic, uuid.NewString(), "req-own")
	keyless := message.Message{Topic: events, Payload: []byte{0, 1, 0xff}}
	if err := p.Publish(correlation.WithID(ctx, "req-ctx"), []message.Message{task, keyless}); err != nil {
		t.Fatalf("Publish() = %v, want nil", err)
	}

	for _, tt := range []struct {
		sent    message.Message
		key     []byte
		headers map[string]string
	}{
		// A message carries the headers it was made with, not the context's.
		{task, []byte(task.Key), task.Headers},
		{keyless, nil, map[string]string{}},
	} {
		msgs := kc.Messages(t, tt.sent.Topic)
		if len(msgs) != 1 {
			t.Fatalf("topic %s has %d messages, want 1", tt.sent.Topic, len(msgs))
		}
		m := msgs[0]
		if string(m.Value) != string(tt.sent.Payload) || !cmp.Equal(m.Key, tt.key) {
			t.Errorf("topic %s holds %q=%q, want %q=%q", tt.sent.Topic, m.Key, m.Value, tt.key, tt.sent.Payload)
		}
		if diff := cmp.Diff(tt.headers, m.Headers); diff != "" {
			t.Errorf("message headers on %s (-want +got):\n%s", tt.sent.Topic, diff)
		}
	}

	if err := p.Check(ctx); err != nil {
		t.Errorf("Check() = %v, want nil", err)
	}
}

func TestProducerSameKeySamePartition(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	cfg := kc.Config()
	key := uuid.NewString()
	var msgs []message.Message
	for range 10 {
		msgs = append(msgs, newMessage(cfg.Topic, key, ""))
	}
	publish(t, cfg, msgs...)
	got := kc.Messages(t, cfg.Topic)
	for i, m := range got {
		if m.Partition != got[0].Partition {
			t.Fatalf("one key's messages landed in partitions %d and %d, want one", got[0].Partition, m.Partition)
		}
		if m.Headers[headerID] != idOf(msgs[i]) {
			t.Errorf("message %d on the partition is %s, want %s: one key's messages keep their order", i, m.Headers[headerID], idOf(msgs[i]))
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

func TestProducerPublishHonoursContext(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t)
	p, err := kafka.NewProducer(kc.Config(), zerolog.Nop())
	if err != nil {
		t.Fatalf("NewProducer() error = %v", err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Publish(ctx, []message.Message{newMessage(kc.Config().Topic, uuid.NewString(), "")}); err == nil {
		t.Error("Publish() with a cancelled context = nil, want an error")
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
	msg := newMessage(cfg.Topic, uuid.NewString(), "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Publish(ctx, []message.Message{msg}); err == nil {
		t.Fatal("Publish() with Kafka down = nil, want an error")
	}
	if err := p.Check(ctx); err == nil {
		t.Error("Check() with Kafka down = nil, want an error")
	}
	kc.Restart(t)
	if err := p.Publish(ctx, []message.Message{msg}); err != nil {
		t.Fatalf("Publish() after Kafka came up = %v", err)
	}
	if got := kc.WaitMessages(t, cfg.Topic, 1, 5*time.Second); len(got) != 1 {
		t.Errorf("topic has %d messages, want the 1 published", len(got))
	}
}
