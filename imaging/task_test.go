package imaging_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/product/correlation"
	"github.com/pms-dev/pms/product/message"
)

func TestTaskMessagesImageTask(t *testing.T) {
	productID, imageID := uuid.New(), uuid.New()
	at := time.Date(2026, 5, 1, 12, 0, 0, 123456000, time.FixedZone("CEST", 2*3600))
	ctx := correlation.WithID(context.Background(), "req-1")
	m, err := imaging.NewTaskMessages("tasks").ImageTask(ctx, productID, imageID, "https://example.com/a.jpg", at)
	if err != nil {
		t.Fatalf("ImageTask() error = %v", err)
	}
	task, err := imaging.DecodeTask(m)
	if err != nil {
		t.Fatalf("DecodeTask(ImageTask()) error = %v", err)
	}
	want := imaging.Task{ID: task.ID, ProductID: productID, ImageID: imageID, SourceURL: "https://example.com/a.jpg", RequestedAt: at.UTC()}
	if diff := cmp.Diff(want, task); diff != "" || task.ID == uuid.Nil {
		t.Errorf("task (-want +got):\n%s", diff)
	}
	if m.Topic != "tasks" || m.Key != productID.String() {
		t.Errorf("message on %q keyed %q, want on tasks keyed by the product id %s", m.Topic, m.Key, productID)
	}
	wantHeaders := map[string]string{imaging.HeaderTaskID: task.ID.String(), correlation.Header: "req-1"}
	if diff := cmp.Diff(wantHeaders, m.Headers); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	again, err := imaging.NewTaskMessages("tasks").ImageTask(context.Background(), productID, imageID, "https://example.com/a.jpg", at)
	if err != nil || again.Headers[imaging.HeaderTaskID] == task.ID.String() || again.Headers[correlation.Header] != "" {
		t.Errorf("a second ImageTask() without a correlation id = %v, %v; want a task of its own with no request id", again.Headers, err)
	}
}

func TestDecodeTaskRefusesMalformedMessages(t *testing.T) {
	for name, payload := range map[string]string{
		"not JSON":   "<xml/>",
		"no product": `{"task_id":"0196a0c4-5b1e-7000-8000-000000000001"}`,
		"empty":      "",
		"bad id":     `{"product_id":"nope"}`,
	} {
		t.Run(name, func(t *testing.T) {
			msg := message.Message{Topic: "tasks", Payload: []byte(payload)}
			if _, err := imaging.DecodeTask(msg); !errors.Is(err, message.ErrMalformed) {
				t.Errorf("DecodeTask(%q) error = %v, want message.ErrMalformed", payload, err)
			}
			// The handler refuses it before any processing: it has no processor.
			n, err := imaging.NewTaskHandler(nil).Handle(context.Background(), msg)
			if n != 0 || !errors.Is(err, message.ErrMalformed) {
				t.Errorf("TaskHandler.Handle(%q) = %d, %v; want 0, message.ErrMalformed", payload, n, err)
			}
		})
	}
}

func TestErrPermanentIsTheMessageOne(t *testing.T) {
	err := imaging.Permanent("not_an_image", errors.New("text/html"))
	if !errors.Is(err, message.ErrPermanent) || errors.Is(imaging.Transient("source_unavailable", errors.New("503")), message.ErrPermanent) {
		t.Errorf("permanent and transient failures against message.ErrPermanent: want only the permanent one to match")
	}
}
