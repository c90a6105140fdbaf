package cmd

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/product"
)

var benchEventPosts = flag.Int("bench.event_posts", 250, "POSTs per round and mode in BenchmarkEvents/post")

// BenchmarkEvents measures what events cost and carry on the local stack
// (pms all with its development broker): POST p50/p99 of products with
// events (kafka.events_topic set) and without, two stacks started side by
// side and measured in alternating rounds; and events/s through the outbox
// and the relay to Kafka. Run it with -benchtime 1x: each sub-benchmark
// runs a fixed amount of work.
func BenchmarkEvents(b *testing.B) {
	if testing.Short() {
		b.Skip("integration benchmark: runs pms all")
	}
	quiet := map[string]string{"PMS_LOG_LEVEL": "warn", "PMS_RATE_LIMIT_WRITE_RATE": "100000", "PMS_RATE_LIMIT_WRITE_BURST": "100000"}
	with, _ := startAll(b, quiet)
	without, _ := startAll(b, merged(quiet, map[string]string{"PMS_KAFKA_EVENTS_TOPIC": ""}))

	b.Run("post", func(b *testing.B) {
		var took [2][]time.Duration
		for b.Loop() {
			for round := range 4 {
				for mode, s := range []*stack{with, without} {
					for i := range *benchEventPosts {
						body := fmt.Sprintf(`{"product_name":"Bench %d-%d","product_price":1}`, round, i)
						start := time.Now()
						if code := s.do(b, http.MethodPost, "/api/v1/products", body, "", nil); code != http.StatusCreated {
							b.Fatalf("POST = %d", code)
						}
						took[mode] = append(took[mode], time.Since(start))
					}
				}
			}
		}
		for mode, name := range []string{"events", "no-events"} {
			slices.Sort(took[mode])
			b.ReportMetric(ms(took[mode][len(took[mode])/2]), name+"-p50-ms")
			b.ReportMetric(ms(took[mode][len(took[mode])*99/100]), name+"-p99-ms")
		}
	})

	b.Run("outbox_to_kafka", func(b *testing.B) {
		db, err := sql.Open("postgres", with.app.cfg.Postgres.URL)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		const n = 20_000
		ctx := context.Background()
		events := product.Events{Topic: with.app.cfg.Kafka.EventsTopic}
		for b.Loop() {
			// The events of n products, written in one statement as n creates
			// would, then timed until the relay has had the broker accept all.
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			stmt, err := tx.PrepareContext(ctx, `INSERT INTO outbox (id, topic, key, payload, headers, created_at) VALUES ($1, $2, $3, $4, $5, clock_timestamp())`)
			if err != nil {
				b.Fatal(err)
			}
			for range n {
				m, err := events.ProductEvent(ctx, product.EventProductCreated, product.Product{ID: uuid.New(), UserID: uuid.New(), Name: "Bench", Version: 1})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := stmt.ExecContext(ctx, uuid.Must(uuid.NewV7()), m.Topic, m.Key, m.Payload, `{"content-type":"application/cloudevents+json"}`); err != nil {
					b.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			for {
				var pending int
				if err := db.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&pending); err != nil {
					b.Fatal(err)
				}
				if pending == 0 {
					break
				}
				if time.Since(start) > 5*time.Minute {
					b.Fatalf("%d events still pending after 5 minutes", pending)
				}
				time.Sleep(10 * time.Millisecond)
			}
			b.ReportMetric(n/time.Since(start).Seconds(), "events/s")
		}
	})
}

// merged returns a copy of a with b's entries added.
func merged(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
