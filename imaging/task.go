package imaging

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/product/message"
)

// Task asks for one product image to be processed. Tasks travel as
// messages on the image task topic and may be delivered more than once;
// processing one twice changes nothing.
type Task struct {
	ID          uuid.UUID `json:"task_id"`
	ProductID   uuid.UUID `json:"product_id"`
	ImageID     uuid.UUID `json:"image_id"`
	SourceURL   string    `json:"source_url"`
	RequestedAt time.Time `json:"requested_at"`
	// Reprocess asks for a ready image to be made again with the worker's
	// presets, if it was made with others (pms reprocess).
	Reprocess bool `json:"reprocess,omitempty"`
}

// HeaderTaskID is the message header that carries the task's id.
const HeaderTaskID = "task_id"

// MaxAttempts is how many times a task is tried in all, counting the first
// try and tries in earlier deliveries, before it is given up and
// dead-lettered.
const MaxAttempts = 3

// Message returns the task as a message on topic: its JSON, keyed by
// product id so that one product's tasks keep their order, with its id and
// the correlation id in ctx in headers.
func (t Task) Message(ctx context.Context, topic string) (message.Message, error) {
	body, err := json.Marshal(t)
	if err != nil {
		return message.Message{}, fmt.Errorf("encode image task %s: %w", t.ID, err)
	}
	m := message.New(ctx, topic, t.ProductID.String(), body)
	m.Headers[HeaderTaskID] = t.ID.String()
	return m, nil
}

// DecodeTask reads the task in msg. A message that holds no task is an
// error wrapping message.ErrMalformed.
func DecodeTask(msg message.Message) (Task, error) {
	var t Task
	if err := json.Unmarshal(msg.Payload, &t); err != nil {
		return Task{}, fmt.Errorf("decode task: %w: %w", message.ErrMalformed, err)
	}
	if t.ProductID == uuid.Nil {
		return Task{}, fmt.Errorf("decode task: %w: no product_id", message.ErrMalformed)
	}
	return t, nil
}

// TaskMessages makes the messages that ask for new images to be
// processed, on one topic. It is the product.ImageTasks of pms: the product
// service decides that an image needs a task, and imaging what the task
// says.
type TaskMessages struct{ topic string }

// NewTaskMessages returns TaskMessages for the image task topic.
func NewTaskMessages(topic string) TaskMessages { return TaskMessages{topic: topic} }

// ImageTask returns the message of a new task for the image, carrying the
// correlation id in ctx.
func (tm TaskMessages) ImageTask(ctx context.Context, productID, imageID uuid.UUID, sourceURL string, requestedAt time.Time) (message.Message, error) {
	return tm.message(ctx, Task{ProductID: productID, ImageID: imageID, SourceURL: sourceURL, RequestedAt: requestedAt.UTC()})
}

// ReprocessTask returns the message of a task that re-makes a ready image
// with the worker's presets (see Task.Reprocess).
func (tm TaskMessages) ReprocessTask(ctx context.Context, productID, imageID uuid.UUID, sourceURL string, requestedAt time.Time) (message.Message, error) {
	return tm.message(ctx, Task{ProductID: productID, ImageID: imageID, SourceURL: sourceURL, RequestedAt: requestedAt.UTC(), Reprocess: true})
}

// message gives t a new id and returns it as a message.
func (tm TaskMessages) message(ctx context.Context, t Task) (message.Message, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return message.Message{}, fmt.Errorf("make task id: %w", err)
	}
	t.ID = id
	return t.Message(ctx, tm.topic)
}

// TaskHandler handles the messages of the image task topic with a
// Processor: it is the consumer's handler of that topic, whose retry loop
// it drives with the attempt numbers Process counts.
type TaskHandler struct{ p *Processor }

// NewTaskHandler returns a TaskHandler that runs tasks with p.
func NewTaskHandler(p *Processor) *TaskHandler { return &TaskHandler{p: p} }

// Handle reads the task in msg and runs one attempt at it; see
// Processor.Process. A message that holds no task is an error wrapping
// message.ErrMalformed.
func (h *TaskHandler) Handle(ctx context.Context, msg message.Message) (attempt int, err error) {
	t, err := DecodeTask(msg)
	if err != nil {
		return 0, err
	}
	return h.p.Process(ctx, t)
}

// GiveUp records that the task in msg failed for good after attempts, and
// returns its failure code (see FailureCode).
func (h *TaskHandler) GiveUp(ctx context.Context, msg message.Message, attempts int, cause error) (code string, err error) {
	code = FailureCode(cause)
	t, err := DecodeTask(msg)
	if err != nil {
		return code, err
	}
	return code, h.p.GiveUp(ctx, t, attempts, cause)
}
