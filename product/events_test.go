package product_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
	"github.com/pms-dev/pms/product/correlation"
)

// eventsOf decodes the event messages among those the store wrote, in order.
func eventsOf(t *testing.T, store *memStore) []product.Event {
	t.Helper()
	var evs []product.Event
	for _, m := range store.written() {
		if m.Topic != "pms.events" {
			continue
		}
		ev, d, err := product.DecodeEvent(m.Payload)
		if err != nil {
			t.Fatalf("DecodeEvent(%s) error = %v", m.Payload, err)
		}
		if m.Key != d.ProductID.String() || m.Headers[product.HeaderContentType] != product.EventContentType {
			t.Errorf("event message key %q headers %v, want the product id and the CloudEvents content type", m.Key, m.Headers)
		}
		evs = append(evs, ev)
	}
	return evs
}

func TestServiceAnnouncesChanges(t *testing.T) {
	owner := account.Caller{UserID: uuid.New()}
	store := newMemStore()
	svc := product.NewService(store, fakeTasks{}, product.Policy{})
	svc.UseEvents(product.Events{Topic: "pms.events"})
	ctx := correlation.WithID(context.Background(), "req-events")

	p, _, err := svc.Create(ctx, owner, product.Draft{Name: "Lamp", Price: 100, ImageURLs: []string{"https://example.com/a.jpg"}}, "")
	if err != nil {
		t.Fatalf("Create() error = %v", err)
	}
	name := "Renamed"
	if _, err := svc.Update(ctx, owner, p.ID, product.Patch{Name: &name}, 0); err != nil {
		t.Fatalf("Update() error = %v", err)
	}
	if _, err := svc.Update(ctx, owner, p.ID, product.Patch{Name: &name}, 0); err != nil {
		t.Fatalf("Update() changing nothing error = %v", err)
	}
	if err := svc.Delete(ctx, owner, p.ID, 1); err != product.ErrVersionMismatch {
		t.Fatalf("Delete(If-Match 1) at version 2 = %v, want ErrVersionMismatch", err)
	}
	if err := svc.Delete(ctx, owner, p.ID, 0); err != nil {
		t.Fatalf("Delete() error = %v", err)
	}
	evs := eventsOf(t, store)
	want := []struct {
		typ     string
		version int
	}{{product.EventProductCreated, 1}, {product.EventProductUpdated, 2}, {product.EventProductDeleted, 3}}
	if len(evs) != len(want) {
		t.Fatalf("wrote %d events %+v, want %d", len(evs), evs, len(want))
	}
	for i, w := range want {
		ev := evs[i]
		if ev.Type != w.typ || ev.ProductVersion != w.version || ev.Subject != p.ID.String() || ev.CorrelationID != "req-events" || ev.SpecVersion != "1.0" {
			t.Errorf("event %d = %s at version %d about %s (correlation %q), want %s at %d about %s (req-events)",
				i, ev.Type, ev.ProductVersion, ev.Subject, ev.CorrelationID, w.typ, w.version, p.ID)
		}
	}
}

func TestServiceWithoutEventsAnnouncesNothing(t *testing.T) {
	owner := account.Caller{UserID: uuid.New()}
	store := newMemStore()
	svc := product.NewService(store, fakeTasks{}, product.Policy{})
	p, _, err := svc.Create(context.Background(), owner, product.Draft{Name: "Lamp", Price: 100}, "")
	if err != nil {
		t.Fatalf("Create() error = %v", err)
	}
	if err := svc.Delete(context.Background(), owner, p.ID, 0); err != nil {
		t.Fatalf("Delete() error = %v", err)
	}
	if evs := eventsOf(t, store); len(evs) != 0 {
		t.Errorf("a Service without events wrote %+v", evs)
	}
}
