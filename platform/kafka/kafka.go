// Package kafka moves pms's messages through Kafka with Sarama.
//
// A Producer publishes messages (it is the outbox relay's
// postgres.Publisher): each to its topic, keyed by its key so that one
// key's messages share a partition, with its headers, through an idempotent
// producer that waits for every in-sync replica.
//
// A Consumer is a consumer group member that dispatches each message to the
// Handler of its topic's Route. Every handler runs inside the same retry
// and dead-letter loop (retry.go, deadletter.go), which reads what a
// handler's error means from package message; each message is a task for
// its handler.
//
//   - Concurrency: at most Config.Concurrency tasks run at once across all
//     partitions of all topics. Tasks of one partition may run
//     concurrently, but an offset is marked only when it and every earlier
//     message of its partition are finished, so a commit never skips an
//     unfinished task. Marked offsets are committed by Sarama's auto-commit
//     every Config.CommitInterval and when a session ends, never once per
//     message.
//   - Retries: a task is tried Route.MaxAttempts times in all. A handler
//     that counts attempts durably reports each attempt's number, so
//     attempts add up across deliveries and a task whose attempts kill the
//     worker is given up by the delivery after the last of them instead of
//     stalling its partition (the image task handler counts them, and gives
//     such a task up as worker_crashed). Between attempts the worker sleeps
//     Config.RetryBackoff, doubled for each further attempt, with ±20%
//     jitter and capped at Config.MaxRetryBackoff. This bounded in-worker
//     backoff holds back the commits of the task's partition (not its
//     consumption) for at most about backoff₁ + backoff₂ + 3 × the handler's
//     task timeout.
//   - Giving up: after the last failed attempt (or a failure wrapping
//     message.ErrPermanent, which is final at once) the consumer calls
//     Handler.GiveUp, copies the message to Config.DeadLetterTopic with
//     headers saying why (the code GiveUp returns among them), and only then
//     marks it. A message its handler cannot read (message.ErrMalformed)
//     goes to the dead-letter topic at once with error_code bad_message.
//     While the dead-letter topic cannot be written the message is retried
//     and stays unmarked: no task is lost.
//   - Shutdown and rebalances: when a session ends (ctx cancelled or a
//     rebalance) no new task or attempt starts. Tasks in flight get up to
//     Config.ShutdownGrace to finish their current attempt and are marked if
//     they succeed; then their context is cancelled (the handler gives the
//     attempt back) and they are abandoned unmarked, so the next owner of
//     the partition receives them again.
//
// Every message is delivered at least once, and sometimes more often, so
// handlers must be idempotent. The correlation id travels in the
// correlation.Header header (X-Request-ID is read too), and the consumer
// puts it in the context of the handler and of its log lines.
package kafka

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/IBM/sarama"
)

// Headers the consumer adds to dead-lettered messages.
const (
	HeaderErrorCode         = "error_code"
	HeaderErrorMessage      = "error_message"
	HeaderAttempts          = "attempts"
	HeaderOriginalTopic     = "original_topic"
	HeaderOriginalPartition = "original_partition"
	HeaderOriginalOffset    = "original_offset"
)

// Error codes of dead-lettered messages that come from the consumer; the
// others come from Handler.GiveUp.
const (
	// CodeBadMessage is the code of a message its handler cannot read.
	CodeBadMessage = "bad_message"
	// CodeInternal is the code of a message whose handler gave none.
	CodeInternal = "internal"
)

// headerRequestIDAlt is the HTTP-style name of the correlation id header,
// read for messages written by other producers.
const headerRequestIDAlt = "X-Request-ID"

// Config says where the brokers and topics are and how tasks are consumed.
type Config struct {
	Brokers []string `mapstructure:"brokers"`
	// Topic is the image task topic: the product service writes tasks to
	// it, and the worker's route reads them.
	Topic string `mapstructure:"topic"`
	// DeadLetterTopic receives what any route gives up.
	DeadLetterTopic string `mapstructure:"dead_letter_topic"`
	// EventsTopic receives the product and image events (CloudEvents,
	// keyed by product id); "" announces none.
	EventsTopic string `mapstructure:"events_topic"`
	GroupID     string `mapstructure:"group_id"`
	ClientID    string `mapstructure:"client_id"`
	// Version is the Kafka protocol version, e.g. "2.8.0"; "" means Sarama's
	// default. Idempotent producing needs at least 0.11.0.
	Version string `mapstructure:"version"`

	// Concurrency is how many tasks one worker runs at once; 0 means one per
	// CPU.
	Concurrency     int           `mapstructure:"concurrency"`
	RetryBackoff    time.Duration `mapstructure:"retry_backoff"`     // before the second attempt
	MaxRetryBackoff time.Duration `mapstructure:"max_retry_backoff"` // cap of the doubling backoff
	// ShutdownGrace is how long tasks in flight may finish when a session
	// ends, before they are cancelled and left for redelivery. It delays
	// rebalances, so keep it well under a minute.
	ShutdownGrace time.Duration `mapstructure:"shutdown_grace"`

	DialTimeout    time.Duration `mapstructure:"dial_timeout"`
	ReadTimeout    time.Duration `mapstructure:"read_timeout"` // must exceed MaxWaitTime
	WriteTimeout   time.Duration `mapstructure:"write_timeout"`
	ProduceTimeout time.Duration `mapstructure:"produce_timeout"` // how long brokers may take to ack
	MaxWaitTime    time.Duration `mapstructure:"max_wait_time"`   // fetch long-poll
	CommitInterval time.Duration `mapstructure:"commit_interval"` // auto-commit of marked offsets
}

// DefaultConfig returns the defaults of every setting, with a broker on
// 127.0.0.1:9092.
func DefaultConfig() Config {
	return Config{
		Brokers:         []string{"127.0.0.1:9092"},
		Topic:           "pms.image-tasks",
		DeadLetterTopic: "pms.image-tasks.dlq",
		EventsTopic:     "pms.events",
		GroupID:         "pms-worker",
		ClientID:        "pms",
		Version:         "2.8.0",
		RetryBackoff:    time.Second,
		MaxRetryBackoff: 30 * time.Second,
		ShutdownGrace:   10 * time.Second,
		DialTimeout:     5 * time.Second,
		ReadTimeout:     30 * time.Second,
		WriteTimeout:    30 * time.Second,
		ProduceTimeout:  10 * time.Second,
		MaxWaitTime:     500 * time.Millisecond,
		CommitInterval:  time.Second,
	}
}

// Validate reports every problem with the config.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, problem string) { errs = append(errs, fmt.Errorf("kafka.%s: %s", key, problem)) }
	if len(c.Brokers) == 0 {
		bad("brokers", "must name at least one host:port")
	}
	for _, b := range c.Brokers {
		if host, port, err := net.SplitHostPort(b); err != nil || host == "" || port == "" {
			bad("brokers", fmt.Sprintf("%q is not a host:port", b))
		}
	}
	if c.Topic == "" {
		bad("topic", "must not be empty")
	}
	if c.DeadLetterTopic == "" || c.DeadLetterTopic == c.Topic {
		bad("dead_letter_topic", "must be set and differ from topic")
	}
	if c.EventsTopic != "" && (c.EventsTopic == c.Topic || c.EventsTopic == c.DeadLetterTopic) {
		bad("events_topic", "must differ from topic and dead_letter_topic (or be empty for no events)")
	}
	if c.GroupID == "" {
		bad("group_id", "must not be empty")
	}
	if c.Version != "" {
		if v, err := sarama.ParseKafkaVersion(c.Version); err != nil || !v.IsAtLeast(sarama.V0_11_0_0) {
			bad("version", "must be a Kafka version of at least 0.11.0, e.g. 2.8.0")
		}
	}
	if c.Concurrency < 0 {
		bad("concurrency", "must not be negative (0 means one per CPU)")
	}
	if c.RetryBackoff <= 0 || c.MaxRetryBackoff < c.RetryBackoff {
		bad("retry_backoff, max_retry_backoff", "must be positive, with max_retry_backoff at least retry_backoff")
	}
	if c.ShutdownGrace < 0 {
		bad("shutdown_grace", "must not be negative")
	}
	if c.DialTimeout <= 0 || c.WriteTimeout <= 0 || c.ProduceTimeout <= 0 {
		bad("dial_timeout, write_timeout, produce_timeout", "must be positive")
	}
	if c.MaxWaitTime < time.Millisecond || c.ReadTimeout <= c.MaxWaitTime {
		bad("max_wait_time, read_timeout", "max_wait_time must be at least 1ms and read_timeout longer")
	}
	if c.CommitInterval <= 0 {
		bad("commit_interval", "must be positive")
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Sarama's own checks (client id characters and the like).
	for _, sc := range []*sarama.Config{c.producerConfig(), c.consumerConfig()} {
		if err := sc.Validate(); err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
	}
	return nil
}

// concurrency is the number of tasks that may run at once.
func (c Config) concurrency() int {
	if c.Concurrency > 0 {
		return c.Concurrency
	}
	return runtime.GOMAXPROCS(0)
}

// baseConfig holds the settings producers and consumers share. Validate
// has checked the version.
func (c Config) baseConfig() *sarama.Config {
	sc := sarama.NewConfig()
	if c.ClientID != "" {
		sc.ClientID = c.ClientID
	}
	if c.Version != "" {
		sc.Version, _ = sarama.ParseKafkaVersion(c.Version)
	}
	sc.Net.DialTimeout = c.DialTimeout
	sc.Net.ReadTimeout = c.ReadTimeout
	sc.Net.WriteTimeout = c.WriteTimeout
	// Topics are created by whoever runs the brokers, not by a typo here.
	sc.Metadata.AllowAutoTopicCreation = false
	return sc
}

// producerConfig is an idempotent producer that waits for all in-sync
// replicas, so a send returns only once the message is durable.
func (c Config) producerConfig() *sarama.Config {
	sc := c.baseConfig()
	sc.Producer.Idempotent = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Net.MaxOpenRequests = 1 // required by Idempotent; keeps order across retries
	sc.Producer.Retry.Max = 5
	sc.Producer.Retry.Backoff = 100 * time.Millisecond
	sc.Producer.Timeout = c.ProduceTimeout
	sc.Producer.Return.Successes = true // required by SyncProducer
	sc.Producer.Return.Errors = true
	return sc
}

// consumerConfig is a consumer group member that starts a new group at the
// oldest message and commits marked offsets in the background.
func (c Config) consumerConfig() *sarama.Config {
	sc := c.baseConfig()
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Offsets.AutoCommit.Enable = true
	sc.Consumer.Offsets.AutoCommit.Interval = c.CommitInterval
	sc.Consumer.MaxWaitTime = c.MaxWaitTime
	sc.Consumer.Return.Errors = true
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	return sc
}
