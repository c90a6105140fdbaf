package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/kafka"
	"github.com/pms-dev/pms/product/message"
)

func TestNewLocalBrokerRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "10.1.2.3:9092", ":9092", "kafka.example.com:9092", "nonsense"} {
		if b, err := kafka.NewLocalBroker(t.TempDir(), addr, 1); err == nil {
			b.Close()
			t.Errorf("NewLocalBroker(%q) = nil error, want an error", addr)
		}
	}
}

func TestLocalBrokerKeepsMessagesAndOffsets(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts a Kafka-protocol broker")
	}
	t.Parallel()
	dir := t.TempDir()
	cfg := kafka.DefaultConfig()
	startBroker := func() *kafka.LocalBroker {
		t.Helper()
		b, err := kafka.NewLocalBroker(dir, "127.0.0.1:0", kafka.LocalPartitions, cfg.Topic, cfg.DeadLetterTopic)
		if err != nil {
			t.Fatalf("NewLocalBroker() error = %v", err)
		}
		cfg.Brokers = b.Addrs()
		cfg.MaxWaitTime = 50 * time.Millisecond
		cfg.CommitInterval = 50 * time.Millisecond
		return b
	}
	// consumeUntil runs a consumer of group until it has seen want, which
	// comes after every earlier task of its partition.
	consumeUntil := func(want string, group string) *received {
		t.Helper()
		cfg.GroupID = group
		var got received
		r := start(t, cfg, &fakeHandler{handle: func(_ context.Context, m message.Message, _ int) error {
			got.add(m)
			return nil
		}}, testLogger(t, nil))
		waitFor(t, 15*time.Second, "message "+want+" consumed", func() bool { return got.count(want) > 0 })
		r.stop(t) // commits what was marked
		return &got
	}

	b := startBroker()
	first := newMessage(cfg.Topic, uuid.NewString(), "")
	publish(t, cfg, first)
	consumeUntil(idOf(first), "g1")
	if err := b.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}

	b = startBroker() // same data dir
	defer b.Close()
	second := newMessage(cfg.Topic, first.Key, "") // same partition, after first
	publish(t, cfg, second)
	if got := consumeUntil(idOf(second), "g1"); got.count(idOf(first)) != 0 {
		t.Error("restarted broker redelivered a committed task to the same group: offsets were lost")
	}
	if got := consumeUntil(idOf(second), "g2"); got.count(idOf(first)) != 1 {
		t.Error("restarted broker did not keep the first task for a new group: messages were lost")
	}
}
