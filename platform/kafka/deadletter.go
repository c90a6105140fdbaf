package kafka

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/rs/zerolog"
)

// maxErrorMessage bounds the error_message header of dead-lettered messages.
const maxErrorMessage = 1024

// deadLetters copies messages that were given up to the dead-letter topic,
// with headers saying why.
type deadLetters struct {
	topic               string
	producer            *Producer
	backoff, maxBackoff time.Duration
}

// send copies msg to the dead-letter topic, retrying until it is
// acknowledged. It reports false when stop or ctx ended first.
func (d *deadLetters) send(stop, ctx context.Context, msg *sarama.ConsumerMessage, code string, cause error, attempts int) bool {
	dl := deadLetterMessage(d.topic, msg, code, cause, attempts)
	for n := 1; ; n++ {
		err := d.producer.send(ctx, []*sarama.ProducerMessage{dl})
		if err == nil {
			return true
		}
		wait := backoff(d.backoff, d.maxBackoff, n)
		zerolog.Ctx(ctx).Error().Err(err).Dur("retry_in", wait).Msg("write to dead-letter topic")
		if ctx.Err() != nil || !sleep(stop, wait) {
			return false
		}
	}
}

// deadLetterMessage is msg with its key, value and headers, addressed to
// topic, with the dead-letter headers replacing any of the same name.
func deadLetterMessage(topic string, msg *sarama.ConsumerMessage, code string, cause error, attempts int) *sarama.ProducerMessage {
	text := cause.Error()
	if len(text) > maxErrorMessage {
		text = strings.ToValidUTF8(text[:maxErrorMessage], "")
	}
	added := []sarama.RecordHeader{
		{Key: []byte(HeaderErrorCode), Value: []byte(code)},
		{Key: []byte(HeaderErrorMessage), Value: []byte(text)},
		{Key: []byte(HeaderAttempts), Value: []byte(strconv.Itoa(attempts))},
		{Key: []byte(HeaderOriginalTopic), Value: []byte(msg.Topic)},
		{Key: []byte(HeaderOriginalPartition), Value: []byte(strconv.FormatInt(int64(msg.Partition), 10))},
		{Key: []byte(HeaderOriginalOffset), Value: []byte(strconv.FormatInt(msg.Offset, 10))},
	}
	headers := make([]sarama.RecordHeader, 0, len(msg.Headers)+len(added))
	for _, h := range msg.Headers {
		if h != nil && !hasHeader(added, string(h.Key)) {
			headers = append(headers, *h)
		}
	}
	pm := &sarama.ProducerMessage{Topic: topic, Headers: append(headers, added...)}
	// A nil key or value stays nil rather than becoming empty.
	if msg.Key != nil {
		pm.Key = sarama.ByteEncoder(msg.Key)
	}
	if msg.Value != nil {
		pm.Value = sarama.ByteEncoder(msg.Value)
	}
	return pm
}

func hasHeader(hs []sarama.RecordHeader, key string) bool {
	for _, h := range hs {
		if string(h.Key) == key {
			return true
		}
	}
	return false
}
