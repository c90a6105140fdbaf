package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/IBM/sarama"

	"github.com/pms-dev/pms/product/correlation"
	"github.com/pms-dev/pms/product/message"
)

// Handler handles the messages of one topic. The consumer runs it inside
// the retry and dead-letter loop every handler shares (see retry.go).
type Handler interface {
	// Handle makes one attempt at msg and returns its number, counted
	// durably by the handler across deliveries, or 0 when the handler does
	// not count attempts (the loop then counts those of this delivery). It
	// returns nil when msg is done, an error wrapping message.ErrMalformed
	// when msg cannot be read, one wrapping message.ErrPermanent when no
	// retry can help, and another error when a later attempt may succeed.
	// An attempt cut short because ctx ended (the consumer stopping on
	// purpose) must not count against msg.
	Handle(ctx context.Context, msg message.Message) (attempt int, err error)
	// GiveUp records that msg failed for good, after a permanent error or
	// its last attempt, and returns the failure code its dead-letter copy
	// carries ("" for CodeInternal). It is not called for a message that
	// cannot be read.
	GiveUp(ctx context.Context, msg message.Message, attempts int, cause error) (code string, err error)
}

// Route sends the messages of one topic to its handler.
type Route struct {
	Topic   string
	Handler Handler
	// MaxAttempts is how many attempts a message gets in all: across
	// deliveries when the handler counts them, so it matches the handler's
	// own limit (imaging.MaxAttempts for image tasks).
	MaxAttempts int
	// KeyName is the log field of the message key, e.g. "product_id";
	// "key" when empty.
	KeyName string
	// LogHeaders are headers that go into every log line about a message,
	// as fields of their names (e.g. imaging.HeaderTaskID).
	LogHeaders []string
	// Ordered handles the messages of one key one after another, in
	// partition order (the next starts when the one before is done or
	// given up); otherwise they run concurrently, up to
	// Config.Concurrency.
	Ordered bool
}

// validateRoutes reports every problem with the routes a consumer is given.
func validateRoutes(routes []Route, deadLetterTopic string) error {
	if len(routes) == 0 {
		return errors.New("kafka consumer: no routes")
	}
	var errs []error
	seen := make(map[string]bool, len(routes))
	for i, r := range routes {
		bad := func(problem string) {
			errs = append(errs, fmt.Errorf("kafka consumer route %d (%q): %s", i, r.Topic, problem))
		}
		switch {
		case r.Topic == "":
			bad("no topic")
		case r.Topic == deadLetterTopic:
			bad("the dead-letter topic cannot be routed")
		case seen[r.Topic]:
			bad("topic routed twice")
		}
		seen[r.Topic] = true
		if r.Handler == nil {
			bad("no handler")
		}
		if r.MaxAttempts < 1 {
			bad("max attempts must be at least 1")
		}
	}
	return errors.Join(errs...)
}

// consumed is msg as handlers see it: the first header of each name.
func consumed(msg *sarama.ConsumerMessage) message.Message {
	m := message.Message{Topic: msg.Topic, Key: string(msg.Key), Payload: msg.Value, Headers: make(map[string]string, len(msg.Headers))}
	for _, h := range msg.Headers {
		if h == nil {
			continue
		}
		if _, dup := m.Headers[string(h.Key)]; !dup {
			m.Headers[string(h.Key)] = string(h.Value)
		}
	}
	return m
}

// correlationID returns the first correlation id among headers, under
// correlation.Header or the HTTP-style X-Request-ID, or "".
func correlationID(headers []*sarama.RecordHeader) string {
	for _, h := range headers {
		if h == nil {
			continue
		}
		if k := string(h.Key); k == correlation.Header || strings.EqualFold(k, headerRequestIDAlt) {
			return string(h.Value)
		}
	}
	return ""
}
