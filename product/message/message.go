// Package message is the envelope in which pms's domain packages state what
// a change tells the rest of the system, and in which handlers receive it:
// a topic, a key, a payload and headers.
//
// product.Service hands the messages a change produces to its Store, which
// writes them to the outbox in the transaction of the change; the relay
// publishes them, and the consumer hands each one to the handler of its
// topic, reading what the handler's errors mean from ErrPermanent and
// ErrMalformed. The package imports nothing of pms but correlation, so the
// domain packages and every adapter may use it.
package message

import (
	"context"
	"errors"

	"github.com/pms-dev/pms/product/correlation"
)

// Message is one message on a topic.
type Message struct {
	Topic string
	// Key keeps order: messages with one key are delivered in the order
	// they were written. "" means no key.
	Key     string
	Payload []byte
	// Headers travel beside the payload; nil means none.
	Headers map[string]string
}

// New returns a message on topic with key and payload that carries the
// correlation id in ctx, if any, in its correlation.Header.
func New(ctx context.Context, topic, key string, payload []byte) Message {
	m := Message{Topic: topic, Key: key, Payload: payload, Headers: map[string]string{}}
	if id := correlation.ID(ctx); id != "" {
		m.Headers[correlation.Header] = id
	}
	return m
}

// What a handler's error means to the consumer that called it. Any other
// error is worth another attempt.
var (
	// ErrPermanent marks a failure that no retry can fix: the message is
	// given up after this attempt.
	ErrPermanent = errors.New("permanent failure")
	// ErrMalformed marks a message its handler cannot read at all: it is
	// dead-lettered at once, and nothing is recorded about it.
	ErrMalformed = errors.New("malformed message")
	// ErrUnavailable marks a failure of the store a handler keeps its
	// attempts and results in (product.ErrUnavailable is this error). When
	// the handler could not even count the attempt, the consumer does not
	// count it either: it waits, with backoff, and tries again until the
	// store answers or the consumer stops, so an outage of the store uses up
	// no attempts and loses no message. A give-up that cannot be recorded
	// is retried the same way.
	ErrUnavailable = errors.New("storage unavailable")
)
