package webhook

import (
	"context"
	"fmt"

	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/message"
)

// Fanout turns each event of the events topic into one delivery per
// subscription that wants it. It is the consumer's handler of that topic:
// it only writes to the delivery queue, so a slow receiver never holds up
// the partition; the Dispatcher sends.
type Fanout struct {
	store  DeliveryStore
	policy product.Policy
	wake   func()
}

// NewFanout returns a Fanout queueing deliveries in store for the
// subscribers policy lets read the product, calling wake (if not nil) when
// it queued some.
func NewFanout(store DeliveryStore, policy product.Policy, wake func()) *Fanout {
	return &Fanout{store: store, policy: policy, wake: wake}
}

// Handle queues the deliveries of the event in msg; queueing one twice
// adds nothing. It does not count attempts.
func (f *Fanout) Handle(ctx context.Context, msg message.Message) (int, error) {
	ev, d, err := product.DecodeEvent(msg.Payload)
	if err != nil {
		return 0, err
	}
	n, err := f.store.Enqueue(ctx, Event{ID: ev.ID, Type: ev.Type, ProductID: d.ProductID, OwnerID: d.UserID, Body: msg.Payload, At: ev.Time},
		f.policy.PublicReads)
	if err != nil {
		return 0, fmt.Errorf("queue deliveries of event %s: %w", ev.ID, err)
	}
	if n > 0 && f.wake != nil {
		f.wake()
	}
	return 0, nil
}

// GiveUp records nothing: the event's dead-letter copy is its record.
func (f *Fanout) GiveUp(context.Context, message.Message, int, error) (string, error) {
	return "", nil
}
