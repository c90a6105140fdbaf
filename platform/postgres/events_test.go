package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/message"
)

const eventsTopic = "pms.events"

// eventTypes returns the types of the product's events in the outbox, in
// the order the relay publishes them.
func eventTypes(t *testing.T, f fixture, id uuid.UUID) []string {
	t.Helper()
	const q = `SELECT payload FROM outbox WHERE topic = $1 AND key = $2 ORDER BY created_at, id`
	rows, err := rawDB(t).QueryContext(t.Context(), q, eventsTopic, id.String())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var types []string
	for rows.Next() {
		var payload []byte
		if err := rows.Scan(&payload); err != nil {
			t.Fatal(err)
		}
		ev, _, err := product.DecodeEvent(payload)
		if err != nil {
			t.Fatalf("outbox event: %v", err)
		}
		types = append(types, ev.Type)
	}
	return types
}

// TestEventsLastImagesSettlingAtOnce: images of one product that settle
// at the same time each write their event, and exactly one of them
// product.images_ready, after both.
func TestEventsLastImagesSettlingAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.svc.UseEvents(product.Events{Topic: eventsTopic})
	results := postgres.NewImageResults(f.db)
	results.UseEvents(product.Events{Topic: eventsTopic})
	ctx := context.Background()
	for round := 0; round < 10; round++ {
		p := f.create(t, ctx, "https://example.com/a.jpg", "https://example.com/b.jpg", "https://example.com/c.jpg")
		var wg sync.WaitGroup
		for i := range p.Images {
			wg.Go(func() {
				task := taskOf(p, i)
				var err error
				if i == 2 {
					err = results.Failed(ctx, task, 1, "source_not_found")
				} else {
					err = results.Ready(ctx, task, mainOnly("http://s3/x.jpg"))
				}
				if err != nil {
					t.Errorf("result of image %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		types := eventTypes(t, f, p.ID)
		if len(types) != 5 || types[0] != product.EventProductCreated || types[4] != product.EventImagesReady {
			t.Fatalf("round %d: events %v, want created, three image events, then images_ready once", round, types)
		}
	}
}

// TestEventsDeleteOfAChangedProduct: a delete announces the version it
// makes; one that meets another version writes neither.
func TestEventsDeleteOfAChangedProduct(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	store := newProductStore(t, f.db, postgres.DefaultIdempotencyConfig())
	ctx := context.Background()
	p := f.create(t, ctx)
	msgs, err := product.Events{Topic: eventsTopic}.ProductEvent(ctx, product.EventProductDeleted, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, p.ID, p.Version+1, []message.Message{msgs}); err != product.ErrVersionMismatch {
		t.Fatalf("Delete with an event at a version the product is not at = %v, want ErrVersionMismatch", err)
	}
	if types := eventTypes(t, f, p.ID); len(types) != 0 {
		t.Fatalf("a delete that did not happen wrote events %v", types)
	}
	if err := store.Delete(ctx, p.ID, p.Version, []message.Message{msgs}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if types := eventTypes(t, f, p.ID); len(types) != 1 || types[0] != product.EventProductDeleted {
		t.Fatalf("delete wrote events %v, want product.deleted", types)
	}
}
