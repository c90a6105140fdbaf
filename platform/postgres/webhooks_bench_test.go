package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
	"github.com/pms-dev/pms/webhook"
)

// BenchmarkWebhookDeliveries measures deliveries/s from the queue in
// PostgreSQL to a receiver on loopback that answers 204 at once: 4
// subscriptions, 2,000 events over 200 products each (8,000 deliveries),
// queued first, then sent by one Dispatcher with the default config; and
// the same with 200 events (800 deliveries), a smaller backlog.
func BenchmarkWebhookDeliveries(b *testing.B) {
	db := postgrestest.New(b)
	ctx := context.Background()
	u, err := account.NewService(postgres.NewAccountStore(db)).CreateUser(ctx, uuid.NewString()+"@example.com", "Bench", false)
	if err != nil {
		b.Fatal(err)
	}
	var got atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	store := postgres.NewWebhookStore(db, nil)
	svc := webhook.NewService(store, func(string) error { return nil }, time.Hour)
	for range 4 {
		if _, err := svc.Create(ctx, account.Caller{UserID: u.ID}, webhook.Draft{URL: rcv.URL, EventTypes: []string{product.EventProductUpdated}}); err != nil {
			b.Fatal(err)
		}
	}
	products := make([]uuid.UUID, 200)
	for i := range products {
		products[i] = uuid.New()
	}
	for _, n := range []int{200, 2000} {
		b.Run(fmt.Sprintf("backlog=%d", 4*n), func(b *testing.B) { benchDeliveries(b, n, store, u.ID, products, &got) })
	}
}

// benchDeliveries queues n events for each subscription, then times one
// Dispatcher until all are delivered.
func benchDeliveries(b *testing.B, n int, store *postgres.WebhookStore, user uuid.UUID, products []uuid.UUID, got *atomic.Int64) {
	ctx := context.Background()
	events := product.Events{Topic: "pms.events"}
	var dialer net.Dialer
	for b.Loop() {
		for i := range n {
			p := product.Product{ID: products[i%len(products)], UserID: user, Name: "Bench", Version: i}
			m, err := events.ProductEvent(ctx, product.EventProductUpdated, p)
			if err != nil {
				b.Fatal(err)
			}
			ev, _, _ := product.DecodeEvent(m.Payload)
			if _, err := store.Enqueue(ctx, webhook.Event{ID: ev.ID, Type: ev.Type, ProductID: p.ID, OwnerID: user, Body: m.Payload, At: ev.Time}, false); err != nil {
				b.Fatal(err)
			}
		}
		want := got.Load() + int64(4*n)
		d, err := webhook.NewDispatcher(webhook.DefaultConfig(), store, func(string) error { return nil }, dialer.DialContext, zerolog.Nop())
		if err != nil {
			b.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- d.Run(runCtx) }()
		for got.Load() < want {
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("%d of %d deliveries in 5 minutes", got.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
		took := time.Since(start)
		stop()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(4*n)/took.Seconds(), "deliveries/s")
		var pending int
		raw, _ := sql.Open("postgres", postgrestest.URL(b))
		_ = raw.QueryRowContext(ctx, `SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'`).Scan(&pending)
		raw.Close()
		if pending != 0 {
			b.Fatalf("%d deliveries not recorded delivered", pending)
		}
	}
}
