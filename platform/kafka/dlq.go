package kafka

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/IBM/sarama"

	"github.com/pms-dev/pms/product/message"
)

// DeadLetter is a message of the dead-letter topic: the message as it was
// given up and why.
type DeadLetter struct {
	// Message is the original: its topic, key, payload and headers, without
	// the headers dead-lettering added.
	Message      message.Message
	ErrorCode    string
	ErrorMessage string
	Attempts     int
	// At is when it was dead-lettered (the record's timestamp).
	At        time.Time
	Partition int32
	Offset    int64
}

// ReadDeadLetters returns every message of cfg's dead-letter topic, oldest
// first within each partition, as of when it is called: it reads each
// partition up to the end it had then. It joins no consumer group and
// commits nothing.
func ReadDeadLetters(ctx context.Context, cfg Config) ([]DeadLetter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client, err := sarama.NewClient(cfg.Brokers, cfg.consumerConfig())
	if err != nil {
		return nil, fmt.Errorf("connect to kafka: %w", err)
	}
	defer client.Close()
	topic := cfg.DeadLetterTopic
	partitions, err := client.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", topic, err)
	}
	defer consumer.Close()
	var out []DeadLetter
	for _, p := range partitions {
		dls, err := readPartition(ctx, client, consumer, topic, p)
		if err != nil {
			return nil, err
		}
		out = append(out, dls...)
	}
	return out, nil
}

// readPartition reads partition p of topic from its oldest message to the
// end it has now.
func readPartition(ctx context.Context, client sarama.Client, consumer sarama.Consumer, topic string, p int32) ([]DeadLetter, error) {
	oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
	if err != nil {
		return nil, fmt.Errorf("oldest offset of %s/%d: %w", topic, p, err)
	}
	end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
	if err != nil {
		return nil, fmt.Errorf("newest offset of %s/%d: %w", topic, p, err)
	}
	if end <= oldest {
		return nil, nil
	}
	pc, err := consumer.ConsumePartition(topic, p, oldest)
	if err != nil {
		return nil, fmt.Errorf("consume %s/%d: %w", topic, p, err)
	}
	defer pc.Close()
	var out []DeadLetter
	for {
		select {
		case msg := <-pc.Messages():
			out = append(out, deadLetterOf(msg))
			if msg.Offset+1 >= end {
				return out, nil
			}
		case err := <-pc.Errors():
			return nil, fmt.Errorf("read %s/%d: %w", topic, p, err)
		case <-ctx.Done():
			return nil, fmt.Errorf("read %s/%d: %w", topic, p, ctx.Err())
		}
	}
}

// deadLetterOf splits a dead-letter record into the original message and
// the dead-letter headers.
func deadLetterOf(msg *sarama.ConsumerMessage) DeadLetter {
	m := consumed(msg)
	dl := DeadLetter{At: msg.Timestamp, Partition: msg.Partition, Offset: msg.Offset,
		ErrorCode: m.Headers[HeaderErrorCode], ErrorMessage: m.Headers[HeaderErrorMessage]}
	dl.Attempts, _ = strconv.Atoi(m.Headers[HeaderAttempts])
	m.Topic = m.Headers[HeaderOriginalTopic]
	for _, h := range []string{HeaderErrorCode, HeaderErrorMessage, HeaderAttempts, HeaderOriginalTopic, HeaderOriginalPartition, HeaderOriginalOffset} {
		delete(m.Headers, h)
	}
	dl.Message = m
	return dl
}
