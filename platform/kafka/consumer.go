package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Consumer is a member of the worker consumer group: it dispatches each
// message of its routes' topics to the retry loop around the route's
// handler, and dead-letters what cannot be handled. It is a
// prometheus.Collector of its task counters.
type Consumer struct {
	cfg     Config
	routes  map[string]*retry // by topic
	topics  []string          // in route order
	log     zerolog.Logger
	client  sarama.Client
	group   sarama.ConsumerGroup
	sem     chan struct{} // one slot per task in flight, across all claims
	metrics *metrics
	lags    lags

	started   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// NewConsumer validates cfg and routes and connects a consumer group member
// to the brokers; it fails when none of them answers. Every route's handler
// runs inside the same retry loop, and what it gives up is written to
// Config.DeadLetterTopic with dlq, which the process may share with its
// outbox relay; Close leaves it open. The member joins the group when Run
// is called.
//
// Producing and consuming need separate clients: the idempotent producer
// allows one request in flight per broker connection, which a fetch
// long-poll would hold for up to MaxWaitTime.
func NewConsumer(cfg Config, routes []Route, dlq *Producer, log zerolog.Logger) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := validateRoutes(routes, cfg.DeadLetterTopic); err != nil {
		return nil, err
	}
	if dlq == nil {
		return nil, errors.New("kafka consumer: nil dead-letter producer")
	}
	c := &Consumer{
		cfg:     cfg,
		routes:  make(map[string]*retry, len(routes)),
		log:     log,
		sem:     make(chan struct{}, cfg.concurrency()),
		metrics: newMetrics(),
	}
	dead := &deadLetters{topic: cfg.DeadLetterTopic, producer: dlq, backoff: cfg.RetryBackoff, maxBackoff: cfg.MaxRetryBackoff}
	for _, r := range routes {
		c.routes[r.Topic] = &retry{Route: r, backoff: cfg.RetryBackoff, maxBackoff: cfg.MaxRetryBackoff,
			deadLetters: dead, metrics: c.metrics, log: log}
		c.topics = append(c.topics, r.Topic)
		c.metrics.route(r.Topic)
	}
	client, err := sarama.NewClient(cfg.Brokers, cfg.consumerConfig())
	if err != nil {
		return nil, fmt.Errorf("connect kafka consumer to %v: %w", cfg.Brokers, err)
	}
	group, err := sarama.NewConsumerGroupFromClient(cfg.GroupID, client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("create kafka consumer group %s: %w", cfg.GroupID, err)
	}
	c.client, c.group = client, group
	return c, nil
}

// dispatch hands msg to the retry loop of its topic's route and reports
// whether its offset may be marked (see retry.handle). The group consumes
// only routed topics.
func (c *Consumer) dispatch(stop, work context.Context, msg *sarama.ConsumerMessage) bool {
	return c.routes[msg.Topic].handle(stop, work, msg)
}

// Run consumes the routes' topics until ctx ends, then lets tasks in flight finish (see
// the package comment), commits what is done, leaves the group and returns
// nil. Errors from the brokers are logged and retried, not returned. Run
// returns an error only when called a second time or after Close.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("kafka consumer: Run may be called only once")
	}
	errsDone := make(chan struct{})
	go func() {
		defer close(errsDone)
		for err := range c.group.Errors() {
			c.log.Warn().Err(err).Msg("kafka consumer error")
		}
	}()
	defer func() {
		// Leaving the group now, rather than when the session times out,
		// hands our partitions to the next member at once.
		if err := c.group.Close(); err != nil {
			c.log.Debug().Err(err).Msg("kafka consumer group closed with error")
		}
		<-errsDone
	}()

	c.log.Info().Strs("topics", c.topics).Str("group_id", c.cfg.GroupID).Int("concurrency", cap(c.sem)).Msg("kafka consumer started")
	handler := &groupHandler{c: c}
	wait := c.cfg.RetryBackoff
	for {
		// Consume returns at every rebalance; the loop rejoins.
		err := c.group.Consume(ctx, c.topics, handler)
		switch {
		case ctx.Err() != nil:
			c.log.Info().Msg("kafka consumer stopped")
			return nil
		case errors.Is(err, sarama.ErrClosedConsumerGroup):
			return fmt.Errorf("consume %v: %w", c.topics, err)
		case err == nil:
			wait = c.cfg.RetryBackoff
			continue
		}
		c.log.Warn().Err(err).Dur("retry_in", wait).Msg("kafka consumer group session failed")
		if !sleep(ctx, wait) {
			c.log.Info().Msg("kafka consumer stopped")
			return nil
		}
		wait = min(2*wait, c.cfg.MaxRetryBackoff)
	}
}

// Check returns nil when a broker answers with metadata for the routes'
// topics and the dead-letter topic and the group has a coordinator.
func (c *Consumer) Check(ctx context.Context) error {
	if err := checkTopics(ctx, c.client, append([]string{c.cfg.DeadLetterTopic}, c.topics...)...); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.client.Coordinator(c.cfg.GroupID)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("kafka coordinator of group %s: %w", c.cfg.GroupID, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("check kafka: %w", ctx.Err())
	}
}

// Close releases the connections. Call it after Run has returned; later
// calls return the first call's result.
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = errors.Join(c.group.Close(), c.client.Close())
	})
	return c.closeErr
}

// Describe implements prometheus.Collector.
func (c *Consumer) Describe(ch chan<- *prometheus.Desc) { c.metrics.describe(ch) }

// Collect implements prometheus.Collector.
func (c *Consumer) Collect(ch chan<- prometheus.Metric) { c.metrics.collect(ch); c.lags.collect(ch) }

// sleep waits for d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
