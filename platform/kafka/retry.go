package kafka

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/IBM/sarama"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pms-dev/pms/product/correlation"
	"github.com/pms-dev/pms/product/message"
)

// retry is the loop every message goes through, whatever its route: attempts
// at the handler with backoff until one succeeds or the message is given
// up, then its dead-letter copy. It does what Watermill's Retry and
// PoisonQueue middleware do, in one wrapper, because what ends the attempts
// may be a count kept by the handler across deliveries: a message whose
// attempts kill the worker ends by that count, never by this loop's.
type retry struct {
	Route
	backoff, maxBackoff time.Duration
	deadLetters         *deadLetters
	metrics             *metrics
	log                 zerolog.Logger
}

// handle runs msg through the loop and reports whether its offset may be
// marked: true when the message is done or dead-lettered; false when stop
// or work ended first, so it must be redelivered. stop ends when the
// session does; work ends ShutdownGrace later.
func (r *retry) handle(stop, work context.Context, msg *sarama.ConsumerMessage) bool {
	m := consumed(msg)
	rid := correlationID(msg.Headers)
	// The task's span continues the trace its message carries
	// (traceparent), from the request that caused it.
	ctx := otel.GetTextMapPropagator().Extract(work, propagation.MapCarrier(m.Headers))
	ctx, span := tracer.Start(ctx, "process "+msg.Topic, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", msg.Topic),
			attribute.Int("messaging.destination.partition.id", int(msg.Partition)), attribute.Int64("messaging.kafka.offset", msg.Offset)))
	defer span.End()
	log := r.logger(msg, m, rid)
	if sc := span.SpanContext(); sc.HasTraceID() {
		log = log.With().Str("trace_id", sc.TraceID().String()).Logger()
	}
	ctx = correlation.WithID(log.WithContext(ctx), rid)

	attempt, err := r.attempt(stop, ctx, m)
	switch {
	case err == nil:
		r.metrics.finished(msg.Topic, outcomeProcessed)
		return true
	case errors.Is(err, message.ErrMalformed):
		if !r.deadLetters.send(stop, ctx, msg, CodeBadMessage, err, 0) {
			return false
		}
		r.metrics.finished(msg.Topic, outcomeBadMessage)
		log.Error().Err(err).Str("dead_letter_topic", r.deadLetters.topic).Msg("message is not a task; dead-lettered")
		return true
	case attempt == 0: // stopped before the task was done or given up
		return false
	}
	code, gerr := r.giveUp(stop, ctx, m, attempt, err)
	switch {
	case errors.Is(gerr, message.ErrUnavailable): // stop ended while the store was away
		return false
	case gerr != nil:
		// The dead-letter copy still keeps the task for a replay.
		log.Error().Err(gerr).Msg("record given-up task")
	}
	if code == "" {
		code = CodeInternal
	}
	if !r.deadLetters.send(stop, ctx, msg, code, err, attempt) {
		return false
	}
	r.metrics.finished(msg.Topic, outcomeDeadLettered)
	log.Error().Err(err).Int("attempts", attempt).Str("dead_letter_topic", r.deadLetters.topic).Msg("task given up; dead-lettered")
	return true
}

// tracer starts the spans of handled messages.
var tracer = otel.Tracer("github.com/pms-dev/pms/platform/kafka")

// logger returns the logger of the lines about msg (m as handlers see it),
// which carry its place, its correlation id rid, its key and the route's
// LogHeaders.
func (r *retry) logger(msg *sarama.ConsumerMessage, m message.Message, rid string) zerolog.Logger {
	keyName := r.KeyName
	if keyName == "" {
		keyName = "key"
	}
	c := r.log.With().Str("topic", msg.Topic).Int32("partition", msg.Partition).Int64("offset", msg.Offset).
		Str("request_id", rid).Str(keyName, m.Key)
	for _, h := range r.LogHeaders {
		c = c.Str(h, m.Headers[h])
	}
	return c.Logger()
}

// attempt calls Handle until an attempt succeeds or fails for good, or the
// message has had MaxAttempts attempts, sleeping a backoff between
// attempts. An attempt's number is the handler's durable count, which
// includes earlier deliveries, and never less than the attempts made in this
// delivery, so an attempt the handler could not count still counts. It
// returns the attempt's number and nil when one succeeded; the number of
// attempts and the last error when the message is to be given up; 0 and an
// error wrapping message.ErrMalformed when it cannot be read; or 0 and an
// error when stop or ctx ended before any of these.
func (r *retry) attempt(stop, ctx context.Context, msg message.Message) (int, error) {
	log := zerolog.Ctx(ctx)
	made := 1
	for waits := 1; ; waits++ {
		counted, err := r.Handler.Handle(ctx, msg)
		n := max(counted, made)
		switch {
		case err == nil:
			return n, nil
		case ctx.Err() != nil, errors.Is(err, message.ErrMalformed):
			return 0, err
		case counted == 0 && errors.Is(err, message.ErrUnavailable):
			// The store that counts attempts is away: this was no attempt.
			wait := backoff(r.backoff, r.maxBackoff, waits)
			log.Warn().Err(err).Dur("retry_in", wait).Msg("task store unavailable; waiting")
			if !sleep(stop, wait) {
				return 0, err
			}
			continue
		case errors.Is(err, message.ErrPermanent) || n >= r.MaxAttempts:
			return n, err
		}
		wait := backoff(r.backoff, r.maxBackoff, n)
		log.Warn().Err(err).Int("attempt", n).Dur("retry_in", wait).Msg("task attempt failed")
		r.metrics.retried(msg.Topic)
		if !sleep(stop, wait) {
			return 0, err
		}
		made++
	}
}

// giveUp calls the handler's GiveUp until it is recorded or fails for a
// reason other than its store being unavailable, or stop ends.
func (r *retry) giveUp(stop, ctx context.Context, msg message.Message, attempts int, cause error) (string, error) {
	for waits := 1; ; waits++ {
		code, err := r.Handler.GiveUp(ctx, msg, attempts, cause)
		if !errors.Is(err, message.ErrUnavailable) {
			return code, err
		}
		wait := backoff(r.backoff, r.maxBackoff, waits)
		zerolog.Ctx(ctx).Warn().Err(err).Dur("retry_in", wait).Msg("record given-up task: store unavailable; waiting")
		if !sleep(stop, wait) {
			return code, err
		}
	}
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
