package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/imaging"
)

// maxErrorMessage bounds the error_message header of dead-lettered messages.
const maxErrorMessage = 1024

// handle processes one message and reports whether its offset may be
// marked: true when the task is done, dead-lettered or not a task at all;
// false when stop or work ended first, so the message must be redelivered.
// stop ends when the session does; work ends ShutdownGrace later.
func (c *Consumer) handle(stop, work context.Context, msg *sarama.ConsumerMessage) bool {
	logCtx := c.log.With().Str("topic", msg.Topic).Int32("partition", msg.Partition).Int64("offset", msg.Offset)
	task, err := decodeTask(msg)
	if err != nil {
		log := logCtx.Logger()
		ctx := log.WithContext(work)
		if !c.deadLetter(stop, ctx, msg, CodeBadMessage, err, 0) {
			return false
		}
		c.metrics.tasks.WithLabelValues(outcomeBadMessage).Inc()
		log.Error().Err(err).Str("dead_letter_topic", c.cfg.DeadLetterTopic).Msg("message is not a task; dead-lettered")
		return true
	}
	log := logCtx.Str("request_id", task.RequestID).Stringer("product_id", task.ProductID).
		Stringer("task_id", task.ID).Logger()
	ctx := imaging.WithRequestID(log.WithContext(work), task.RequestID)

	attempt, err := c.attempt(stop, ctx, task)
	switch {
	case err == nil:
		c.metrics.tasks.WithLabelValues(outcomeProcessed).Inc()
		return true
	case attempt == 0: // stopped before the task was done or given up
		return false
	}
	if gerr := c.h.GiveUp(ctx, task, attempt, err); gerr != nil {
		// The dead-letter copy still keeps the task for a replay.
		log.Error().Err(gerr).Msg("record given-up task")
	}
	if !c.deadLetter(stop, ctx, msg, imaging.FailureCode(err), err, attempt) {
		return false
	}
	c.metrics.tasks.WithLabelValues(outcomeDeadLettered).Inc()
	log.Error().Err(err).Int("attempts", attempt).Str("dead_letter_topic", c.cfg.DeadLetterTopic).Msg("task given up; dead-lettered")
	return true
}

// attempt calls Process until an attempt succeeds or fails for good, or the
// task has had imaging.MaxAttempts attempts, sleeping a backoff between
// attempts. An attempt's number is the handler's durable count, which
// includes earlier deliveries, and never less than the attempts made in this
// delivery, so an attempt the handler could not count still counts. It
// returns the attempt's number and nil when one succeeded; the number of
// attempts and the last error when the task is to be given up; or 0 and an
// error when stop or ctx ended before either.
func (c *Consumer) attempt(stop, ctx context.Context, task imaging.Task) (int, error) {
	log := zerolog.Ctx(ctx)
	for made := 1; ; made++ {
		counted, err := c.h.Process(ctx, task)
		n := max(counted, made)
		switch {
		case err == nil:
			return n, nil
		case ctx.Err() != nil:
			return 0, err
		case errors.Is(err, imaging.ErrPermanent) || n >= imaging.MaxAttempts:
			return n, err
		}
		wait := backoff(c.cfg.RetryBackoff, c.cfg.MaxRetryBackoff, n)
		log.Warn().Err(err).Int("attempt", n).Dur("retry_in", wait).Msg("task attempt failed")
		c.metrics.retries.Inc()
		if !sleep(stop, wait) {
			return 0, err
		}
	}
}

// deadLetter copies msg to the dead-letter topic with headers saying why,
// retrying until it is acknowledged. It reports false when stop or ctx
// ended first.
func (c *Consumer) deadLetter(stop, ctx context.Context, msg *sarama.ConsumerMessage, code string, cause error, attempts int) bool {
	dl := deadLetterMessage(c.cfg.DeadLetterTopic, msg, code, cause, attempts)
	for n := 1; ; n++ {
		err := c.dlq.send(ctx, []*sarama.ProducerMessage{dl})
		if err == nil {
			return true
		}
		wait := backoff(c.cfg.RetryBackoff, c.cfg.MaxRetryBackoff, n)
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

// decodeTask reads the task in msg's value and its request id header.
func decodeTask(msg *sarama.ConsumerMessage) (imaging.Task, error) {
	var t imaging.Task
	if err := json.Unmarshal(msg.Value, &t); err != nil {
		return imaging.Task{}, fmt.Errorf("decode task: %w", err)
	}
	if t.ProductID == uuid.Nil {
		return imaging.Task{}, errors.New("decode task: no product_id")
	}
	for _, h := range msg.Headers {
		if h == nil {
			continue
		}
		if k := string(h.Key); k == HeaderRequestID || strings.EqualFold(k, headerRequestIDAlt) {
			t.RequestID = string(h.Value)
			break
		}
	}
	return t, nil
}

// backoff is how long to wait after the nth failure: base doubled n-1
// times, with ±20% jitter, capped at maxWait.
func backoff(base, maxWait time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return min(d, maxWait)
}
