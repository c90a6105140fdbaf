package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/IBM/sarama"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/product/message"
)

// Producer publishes messages to their topics; it is the outbox relay's
// postgres.Publisher, and the consumer writes dead letters with it. It
// connects on first use and again after a failed connect, so a process can
// start while Kafka is down; once connected, Sarama reconnects by itself.
type Producer struct {
	cfg   Config
	topic string

	mu     sync.Mutex
	client sarama.Client
	sp     sarama.SyncProducer
	closed bool
}

// NewProducer validates cfg and returns an idempotent producer. When no
// broker answers yet it logs a warning and connects on first use: messages
// wait in the outbox meanwhile.
func NewProducer(cfg Config, log zerolog.Logger) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Producer{cfg: cfg, topic: cfg.Topic}
	if _, _, err := p.connect(); err != nil {
		log.Warn().Err(err).Strs("brokers", cfg.Brokers).Msg("kafka is not answering yet; connecting on first use")
		return p, nil
	}
	log.Debug().Strs("brokers", cfg.Brokers).Str("topic", cfg.Topic).Msg("kafka producer connected")
	return p, nil
}

// connect returns the producer's client, connecting it when it is not yet.
func (p *Producer) connect() (sarama.SyncProducer, sarama.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return nil, nil, errors.New("kafka producer is closed")
	case p.sp != nil:
		return p.sp, p.client, nil
	}
	client, err := sarama.NewClient(p.cfg.Brokers, p.cfg.producerConfig())
	if err != nil {
		return nil, nil, fmt.Errorf("connect kafka producer to %v: %w", p.cfg.Brokers, err)
	}
	sp, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, nil, fmt.Errorf("start kafka producer: %w", err)
	}
	p.client, p.sp = client, sp
	return sp, client, nil
}

// Publish writes msgs as one batch, each to its topic with its key and
// headers, and returns nil only when every one of them is acknowledged by
// all in-sync replicas. On error some may have been written: publishing
// them again is safe.
func (p *Producer) Publish(ctx context.Context, msgs []message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	pms := make([]*sarama.ProducerMessage, len(msgs))
	for i, m := range msgs {
		pms[i] = producerMessage(m)
	}
	if err := p.send(ctx, pms); err != nil {
		return fmt.Errorf("write to kafka: %w", err)
	}
	return nil
}

// producerMessage is m as Sarama sends it: no key when m has none, and its
// headers in name order.
func producerMessage(m message.Message) *sarama.ProducerMessage {
	pm := &sarama.ProducerMessage{Topic: m.Topic, Value: sarama.ByteEncoder(m.Payload)}
	if m.Key != "" {
		pm.Key = sarama.StringEncoder(m.Key)
	}
	for _, name := range slices.Sorted(maps.Keys(m.Headers)) {
		pm.Headers = append(pm.Headers, sarama.RecordHeader{Key: []byte(name), Value: []byte(m.Headers[name])})
	}
	return pm
}

// send writes msgs with the producer's connection; see the function send.
func (p *Producer) send(ctx context.Context, msgs []*sarama.ProducerMessage) error {
	sp, _, err := p.connect()
	if err != nil {
		return err
	}
	return send(ctx, sp, msgs)
}

// send writes msgs and waits for their acks or for ctx to end. Sarama
// cannot cancel a send, so one abandoned at ctx's end may still land.
func send(ctx context.Context, sp sarama.SyncProducer, msgs []*sarama.ProducerMessage) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- sp.SendMessages(msgs) }()
	select {
	case err := <-done:
		var perrs sarama.ProducerErrors
		if errors.As(err, &perrs) && len(perrs) > 0 {
			return fmt.Errorf("%d of %d messages not acknowledged: %w", len(perrs), len(msgs), perrs[0].Err)
		}
		return err
	case <-ctx.Done():
		return fmt.Errorf("wait for acknowledgement: %w", ctx.Err())
	}
}

// Check returns nil when a broker answers with metadata for the image task
// topic (Config.Topic) and the topic has a partition with a leader.
func (p *Producer) Check(ctx context.Context) error {
	_, client, err := p.connect()
	if err != nil {
		return err
	}
	return checkTopics(ctx, client, p.topic)
}

// Close flushes and closes the producer. Later calls do nothing.
func (p *Producer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.sp == nil {
		p.closed = true
		return nil
	}
	p.closed = true
	return errors.Join(p.sp.Close(), p.client.Close())
}

// checkTopics refreshes the metadata of topics and checks each has a
// writable partition, giving up when ctx ends.
func checkTopics(ctx context.Context, client sarama.Client, topics ...string) error {
	if client.Closed() {
		return errors.New("kafka client is closed")
	}
	done := make(chan error, 1)
	go func() {
		if err := client.RefreshMetadata(topics...); err != nil {
			done <- fmt.Errorf("kafka metadata for %v: %w", topics, err)
			return
		}
		for _, t := range topics {
			ps, err := client.WritablePartitions(t)
			if err != nil {
				done <- fmt.Errorf("kafka topic %s: %w", t, err)
				return
			}
			if len(ps) == 0 {
				done <- fmt.Errorf("kafka topic %s has no partition with a leader", t)
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("check kafka: %w", ctx.Err())
	}
}
