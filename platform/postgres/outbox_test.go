package postgres_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/kafka"
	"github.com/pms-dev/pms/platform/kafka/kafkatest"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
	"github.com/pms-dev/pms/product/correlation"
	"github.com/pms-dev/pms/product/message"
)

// pendingOutbox counts the unpublished messages with key.
func pendingOutbox(t *testing.T, raw *sql.DB, key string) int {
	t.Helper()
	var n int
	const q = `SELECT count(*) FROM outbox WHERE key = $1 AND published_at IS NULL`
	if err := raw.QueryRowContext(t.Context(), q, key).Scan(&n); err != nil {
		t.Fatalf("count pending outbox messages: %v", err)
	}
	return n
}

// TestOutboxRelaysTwoTopicsToKafka: messages of two topics, written with a
// product in its transaction, wait in the outbox while Kafka is down and
// are then published once each, to their own topics, with their keys,
// payloads and headers, in the order they were written.
func TestOutboxRelaysTwoTopicsToKafka(t *testing.T) {
	t.Parallel()
	db, raw := privateDB(t) // the relay publishes every row
	kc := kafkatest.New(t)
	cfg := kc.Config()
	const eventTopic = "pms.product-events"
	kc.CreateTopic(t, eventTopic, 1)

	ctx := correlation.WithID(context.Background(), "req-two-topics")
	store := newProductStore(t, db, postgres.DefaultIdempotencyConfig())
	svc := product.NewService(store, imaging.NewTaskMessages(cfg.Topic), product.Policy{})
	u, err := account.NewService(postgres.NewAccountStore(db)).CreateUser(ctx, uuid.NewString()+"@example.com", "Tester", false)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := svc.Create(ctx, account.Caller{UserID: u.ID}, product.Draft{Name: "Lamp", Price: 100,
		ImageURLs: []string{"https://example.com/1.jpg", "https://example.com/2.jpg"}}, "")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	// A second kind of message, written with another product.
	other := product.Product{ID: uuid.Must(uuid.NewV7()), UserID: u.ID, Name: "Chair", Price: 200, Version: 1,
		CreatedAt: p.CreatedAt, UpdatedAt: p.CreatedAt}
	events := []message.Message{
		message.New(ctx, eventTopic, other.ID.String(), []byte(`{"event":"created"}`)),
		{Topic: eventTopic, Key: other.ID.String(), Payload: []byte{0, 0xff, 1}, Headers: map[string]string{"kind": "binary"}},
	}
	if _, _, err := store.Create(ctx, other, product.IdempotencyKey{}, events); err != nil {
		t.Fatalf("store.Create: %v", err)
	}

	producer, err := kafka.NewProducer(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { producer.Close() })
	relay, err := postgres.NewRelay(relayConfig(time.Second, 10),
		db, producer, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	kc.Stop()
	stopped, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n, err := relay.PublishBatch(stopped); err == nil {
		t.Fatalf("PublishBatch with Kafka down = %d, nil; want an error", n)
	}
	if n := pendingOutbox(t, raw, p.ID.String()) + pendingOutbox(t, raw, other.ID.String()); n != 4 {
		t.Errorf("%d messages pending while Kafka is down, want 4", n)
	}
	kc.Restart(t)
	drain(t, relay)
	drain(t, relay)

	tasks := kc.WaitMessages(t, cfg.Topic, 2, 10*time.Second)
	if len(tasks) != 2 {
		t.Fatalf("task topic holds %d messages, want 2", len(tasks))
	}
	for i, m := range tasks {
		task, err := imaging.DecodeTask(message.Message{Payload: m.Value})
		if err != nil || task.ImageID != p.Images[i].ID || task.SourceURL != p.Images[i].SourceURL {
			t.Errorf("task message %d = %s (%v), want the task of image %s", i, m.Value, err, p.Images[i].ID)
		}
		want := map[string]string{correlation.Header: "req-two-topics", imaging.HeaderTaskID: task.ID.String()}
		if string(m.Key) != p.ID.String() || !cmp.Equal(m.Headers, want) {
			t.Errorf("task message %d has key %s and headers %v, want %s and %v", i, m.Key, m.Headers, p.ID, want)
		}
	}
	got := kc.WaitMessages(t, eventTopic, 2, 10*time.Second)
	if len(got) != 2 {
		t.Fatalf("event topic holds %d messages, want 2", len(got))
	}
	for i, m := range got {
		want := events[i]
		if string(m.Key) != want.Key || string(m.Value) != string(want.Payload) || !cmp.Equal(m.Headers, want.Headers) {
			t.Errorf("event message %d = %s=%q %v, want %s=%q %v", i, m.Key, m.Value, m.Headers, want.Key, want.Payload, want.Headers)
		}
	}
	if n := pendingOutbox(t, raw, p.ID.String()) + pendingOutbox(t, raw, other.ID.String()); n != 0 {
		t.Errorf("%d messages still pending after the relay ran, want 0", n)
	}
}

// TestOutboxWritesNothingForReplays: a replayed create stores no second
// task, and a failed update none at all.
func TestOutboxWritesNothingForReplays(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	raw := rawDB(t)
	ctx := context.Background()
	d := product.Draft{Name: "Lamp", Price: 100, ImageURLs: []string{"https://example.com/once.jpg"}}
	key := "key-" + uuid.NewString()
	p, _, err := f.svc.Create(ctx, f.as, d, key)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, replayed, err := f.svc.Create(ctx, f.as, d, key); err != nil || !replayed {
		t.Fatalf("Create again = replayed %v, %v; want a replay", replayed, err)
	}
	urls := []string{"https://example.com/once.jpg", "https://example.com/never.jpg"}
	if _, err := f.svc.Update(ctx, f.as, p.ID, product.Patch{ImageURLs: &urls}, p.Version+1); err == nil {
		t.Fatal("Update at a stale version succeeded, want ErrVersionMismatch")
	}
	if n := pendingOutbox(t, raw, p.ID.String()); n != 1 {
		t.Errorf("%d task messages for the product, want the first create's alone", n)
	}
}

// TestOutboxMigrationMovesPendingTasks: the migration to the generic
// outbox moves the image tasks still pending to it as the messages pms
// writes now, on the default image task topic or the one the session
// names; a task a process of the last release writes afterwards follows
// them; rolling the migration back moves them back.
func TestOutboxMigrationMovesPendingTasks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, options, topic string
	}{
		{"default topic", "", "pms.image-tasks"},
		{"topic from the session", "-c pms.image_task_topic=shop.image-tasks", "shop.image-tasks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dbURL := postgrestest.Empty(t)
			if tt.options != "" {
				dbURL += "&options=" + strings.ReplaceAll(strings.ReplaceAll(tt.options, " ", "%20"), "=", "%3D")
			}
			db, err := postgres.Open(postgrestest.Config(t, dbURL))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			m, err := db.Migrator()
			if err != nil {
				t.Fatal(err)
			}
			raw, err := sql.Open("postgres", dbURL)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { raw.Close() })
			ctx := context.Background()
			if err := m.Up(ctx, func(postgres.Migration) {}); err != nil {
				t.Fatalf("Up: %v", err)
			}
			migrateBelowOutbox(t, m)

			created := time.Date(2026, 5, 1, 12, 30, 0, 123456000, time.UTC)
			pending := imaging.Task{ID: uuid.New(), ProductID: uuid.New(), ImageID: uuid.New(),
				SourceURL: "https://example.com/pending.jpg", RequestedAt: created}
			anonymous := imaging.Task{ID: uuid.New(), ProductID: uuid.New(), ImageID: uuid.New(),
				SourceURL: "https://example.com/anonymous.jpg", RequestedAt: created.Add(time.Second)}
			const insert = `
INSERT INTO image_task_outbox (id, product_id, image_id, source_url, request_id, created_at, published_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)`
			// late is written as the last release wrote tasks, after the migration.
			late := imaging.Task{ID: uuid.New(), ProductID: uuid.New(), ImageID: uuid.New(),
				SourceURL: "https://example.com/late.jpg", RequestedAt: created.Add(2 * time.Second)}
			const insertLate = `
INSERT INTO image_task_outbox (id, product_id, image_id, source_url, request_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6)`
			for _, row := range []struct {
				task      imaging.Task
				requestID string
				published *time.Time
			}{{pending, "req-old", nil}, {anonymous, "", nil}, {imaging.Task{ID: uuid.New(), ProductID: uuid.New(),
				ImageID: uuid.New(), SourceURL: "https://example.com/done.jpg", RequestedAt: created}, "req-done", &created}} {
				if _, err := raw.ExecContext(ctx, insert, row.task.ID, row.task.ProductID, row.task.ImageID,
					row.task.SourceURL, row.requestID, row.task.RequestedAt, row.published); err != nil {
					t.Fatalf("insert a task into the old outbox: %v", err)
				}
			}
			if err := m.Up(ctx, func(postgres.Migration) {}); err != nil {
				t.Fatalf("Up to the generic outbox: %v", err)
			}
			if _, err := raw.ExecContext(ctx, insertLate, late.ID, late.ProductID, late.ImageID, late.SourceURL,
				"req-late", late.RequestedAt); err != nil {
				t.Fatalf("insert a task as the last release did: %v", err)
			}
			var left int
			if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM image_task_outbox WHERE published_at IS NULL`).Scan(&left); err != nil || left != 0 {
				t.Errorf("%d tasks pending in the old outbox after the migration (%v), want none", left, err)
			}

			got := outboxMessages(t, raw)
			want := []message.Message{
				{Topic: tt.topic, Key: pending.ProductID.String(),
					Headers: map[string]string{imaging.HeaderTaskID: pending.ID.String(), correlation.Header: "req-old"}},
				{Topic: tt.topic, Key: anonymous.ProductID.String(),
					Headers: map[string]string{imaging.HeaderTaskID: anonymous.ID.String()}},
				{Topic: tt.topic, Key: late.ProductID.String(),
					Headers: map[string]string{imaging.HeaderTaskID: late.ID.String(), correlation.Header: "req-late"}},
			}
			if len(got) != len(want) {
				t.Fatalf("outbox holds %d messages after the migration, want the %d pending tasks: %+v", len(got), len(want), got)
			}
			for i, task := range []imaging.Task{pending, anonymous, late} {
				decoded, err := imaging.DecodeTask(got[i])
				if err != nil {
					t.Fatalf("moved message %d: %v", i, err)
				}
				if !decoded.RequestedAt.Equal(task.RequestedAt) {
					t.Errorf("moved task %d requested at %v, want %v", i, decoded.RequestedAt, task.RequestedAt)
				}
				decoded.RequestedAt = task.RequestedAt
				if diff := cmp.Diff(task, decoded); diff != "" {
					t.Errorf("moved task %d (-old +moved):\n%s", i, diff)
				}
				got[i].Payload = nil
				if diff := cmp.Diff(want[i], got[i]); diff != "" {
					t.Errorf("moved message %d (-want +got):\n%s", i, diff)
				}
			}

			migrateBelowOutbox(t, m)
			var back int
			if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM image_task_outbox WHERE published_at IS NULL AND
				((id = $1 AND request_id = 'req-old') OR (id = $2 AND request_id = '') OR (id = $3 AND request_id = 'req-late'))`,
				pending.ID, anonymous.ID, late.ID).Scan(&back); err != nil || back != 3 {
				t.Errorf("after rolling back, %d of the 3 pending tasks are back in the old outbox (%v)", back, err)
			}
		})
	}
}

// migrateBelowOutbox rolls migrations back until the one that made the
// generic outbox is not applied.
func migrateBelowOutbox(t *testing.T, m *postgres.Migrator) {
	t.Helper()
	for {
		status, err := m.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		i := len(status) - 1
		for i >= 0 && !strings.Contains(status[i].Name, "generic_outbox") {
			i--
		}
		if i < 0 {
			t.Fatal("no migration makes the generic outbox")
		}
		if !status[i].Applied {
			return
		}
		if _, err := m.Down(context.Background()); err != nil {
			t.Fatalf("Down: %v", err)
		}
	}
}

// outboxMessages returns the pending messages in the outbox, oldest first.
func outboxMessages(t *testing.T, raw *sql.DB) []message.Message {
	t.Helper()
	rows, err := raw.QueryContext(t.Context(), `SELECT topic, key, payload, headers FROM outbox WHERE published_at IS NULL ORDER BY created_at, id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []message.Message
	for rows.Next() {
		var m message.Message
		var headers []byte
		if err := rows.Scan(&m.Topic, &m.Key, &m.Payload, &headers); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(headers, &m.Headers); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
