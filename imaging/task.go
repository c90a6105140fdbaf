package imaging

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Task asks for one product image to be processed. Tasks are queued through
// the outbox and may be delivered more than once; processing one twice
// changes nothing.
type Task struct {
	ID          uuid.UUID `json:"task_id"`
	ProductID   uuid.UUID `json:"product_id"`
	ImageID     uuid.UUID `json:"image_id"`
	SourceURL   string    `json:"source_url"`
	RequestedAt time.Time `json:"requested_at"`
	// RequestID is the id of the HTTP request that caused the task. It
	// travels in a message header, not in the JSON body.
	RequestID string `json:"-"`
}

// Queue delivers tasks to workers. Enqueue returns nil only when every task
// is durably accepted.
type Queue interface {
	Enqueue(ctx context.Context, tasks []Task) error
}

// MaxAttempts is how many times a task is tried in all, counting the first
// try and tries in earlier deliveries, before it is given up and
// dead-lettered.
const MaxAttempts = 3

// Handler processes tasks for a queue consumer.
type Handler interface {
	// Process runs one attempt of the task and returns its number, counted
	// durably across deliveries, or 0 when it could not be counted. It
	// returns nil when the task is finished, an error wrapping ErrPermanent
	// when it can never succeed, and another error when another attempt
	// may succeed. An attempt cut short because ctx ended (the consumer
	// stopping on purpose) does not count against the task.
	Process(ctx context.Context, t Task) (attempt int, err error)
	// GiveUp records that the task failed for good, after a permanent
	// error or the last attempt.
	GiveUp(ctx context.Context, t Task, attempts int, cause error) error
}

type requestIDKey struct{}

// WithRequestID returns a context carrying the request/correlation id that
// tasks made under it will carry.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request/correlation id in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
