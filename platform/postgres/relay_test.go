package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/correlation"
	"github.com/pms-dev/pms/product/message"
)

// publisher records published messages; fail makes Publish fail while
// set. It stands in for Kafka, a remote collaborator.
type publisher struct {
	mu    sync.Mutex
	msgs  []message.Message
	fail  error
	delay time.Duration
}

func (p *publisher) Publish(_ context.Context, msgs []message.Message) error {
	time.Sleep(p.delay)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.msgs = append(p.msgs, msgs...)
	return nil
}

func (p *publisher) setFail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail = err
}

// tasksOf returns the recorded image task messages of one product, in
// order.
func (p *publisher) tasksOf(productID uuid.UUID) []message.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []message.Message
	for _, m := range p.msgs {
		if m.Topic == taskTopic && m.Key == productID.String() {
			out = append(out, m)
		}
	}
	return out
}

// relayConfig is the default relay config with poll interval poll and
// batches of batch.
func relayConfig(poll time.Duration, batch int) postgres.RelayConfig {
	cfg := postgres.DefaultRelayConfig()
	cfg.PollInterval, cfg.BatchSize, cfg.Linger = poll, batch, 0
	return cfg
}

func newRelay(t *testing.T, db *postgres.DB, pub postgres.Publisher, poll time.Duration) *postgres.Relay {
	t.Helper()
	r, err := postgres.NewRelay(relayConfig(poll, 50), db, pub, zerolog.Nop())
	if err != nil {
		t.Fatalf("NewRelay: %v", err)
	}
	return r
}

// drain publishes until the outbox is empty.
func drain(t *testing.T, r *postgres.Relay) {
	t.Helper()
	for {
		n, err := r.PublishBatch(context.Background())
		if err != nil {
			t.Fatalf("PublishBatch: %v", err)
		}
		if n == 0 {
			return
		}
	}
}

// decodeTasks returns the tasks in msgs, failing the test for a message
// that holds none.
func decodeTasks(t *testing.T, msgs []message.Message) []imaging.Task {
	t.Helper()
	tasks := make([]imaging.Task, len(msgs))
	for i, m := range msgs {
		task, err := imaging.DecodeTask(m)
		if err != nil {
			t.Fatalf("message %d = %+v: %v", i, m, err)
		}
		tasks[i] = task
	}
	return tasks
}

func TestRelayPublishesEachTaskOnceWithRequestID(t *testing.T) {
	f := newFixture(t)
	ctx := correlation.WithID(context.Background(), "req-42")
	p := f.create(t, ctx, "https://example.com/a.jpg", "https://example.com/b.jpg")
	pub := &publisher{}
	r := newRelay(t, f.db, pub, time.Second)
	drain(t, r)
	drain(t, r)
	got := pub.tasksOf(p.ID)
	if len(got) != 2 {
		t.Fatalf("published %d tasks for the product, want 2: %+v", len(got), got)
	}
	for i, task := range decodeTasks(t, got) {
		im := p.Images[i]
		if task.ProductID != p.ID || task.ImageID != im.ID || task.SourceURL != im.SourceURL || task.ID == uuid.Nil {
			t.Errorf("task %d = %+v, want image %s %s", i, task, im.ID, im.SourceURL)
		}
		if h := got[i].Headers; h[correlation.Header] != "req-42" || h[imaging.HeaderTaskID] != task.ID.String() {
			t.Errorf("task %d headers = %v, want request id req-42 and task id %s", i, h, task.ID)
		}
	}
}

// TestUpdateQueuesOnlyAddedImages: an update that adds an image writes its
// task with the change; one that only reorders or renames writes none.
func TestUpdateQueuesOnlyAddedImages(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a, b := "https://example.com/keep-a.jpg", "https://example.com/keep-b.jpg"
	p := f.create(t, ctx, a)
	pub := &publisher{}
	r := newRelay(t, f.db, pub, time.Second)
	drain(t, r)

	urls := []string{b, a}
	added, err := f.svc.Update(correlation.WithID(ctx, "req-update"), f.as, p.ID, product.Patch{ImageURLs: &urls}, 0)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	name, reordered := "Renamed", []string{a, b}
	if _, err := f.svc.Update(ctx, f.as, p.ID, product.Patch{Name: &name, ImageURLs: &reordered}, 0); err != nil {
		t.Fatalf("Update: %v", err)
	}
	drain(t, r)
	got := pub.tasksOf(p.ID)
	if len(got) != 2 {
		t.Fatalf("published %d tasks for the product, want the create's and the added image's: %+v", len(got), got)
	}
	task := decodeTasks(t, got[1:])[0]
	if task.ImageID != added.Images[0].ID || task.SourceURL != b || got[1].Headers[correlation.Header] != "req-update" {
		t.Errorf("task of the update = %+v with headers %v, want image %s (%s) under req-update",
			task, got[1].Headers, added.Images[0].ID, b)
	}
}

func TestRelayKeepsTasksWhileQueueIsDown(t *testing.T) {
	f := newFixture(t)
	p := f.create(t, context.Background(), "https://example.com/down.jpg")
	pub := &publisher{fail: errors.New("kafka down")}
	r := newRelay(t, f.db, pub, time.Second)
	if _, err := r.PublishBatch(context.Background()); err == nil {
		t.Fatal("PublishBatch with the publisher down succeeded, want an error")
	}
	pub.setFail(nil)
	drain(t, r)
	if got := pub.tasksOf(p.ID); len(got) != 1 {
		t.Fatalf("after the publisher came back, published %d tasks, want 1", len(got))
	}
}

func TestRelaysShareTheOutboxWithoutDuplicates(t *testing.T) {
	f := newFixture(t)
	var products []product.Product
	for i := range 20 {
		products = append(products, f.create(t, context.Background(), fmt.Sprintf("https://example.com/%d.jpg", i)))
	}
	pub := &publisher{delay: 5 * time.Millisecond}
	var wg sync.WaitGroup
	for range 3 {
		r := newRelay(t, f.db, pub, time.Second)
		wg.Go(func() { drain(t, r) })
	}
	wg.Wait()
	for _, p := range products {
		if got := pub.tasksOf(p.ID); len(got) != 1 {
			t.Errorf("product %s: published %d times, want once", p.ID, len(got))
		}
	}
}

// TestRelayWakesOnWrite: a relay publishes a new message at once, not at
// its next poll, whether it was written in this process (the relay's bell)
// or in another (a NOTIFY).
func TestRelayWakesOnWrite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writer func(t *testing.T, f fixture) *product.Service
	}{
		{"same process", func(t *testing.T, f fixture) *product.Service { return f.svc }},
		{"other process", func(t *testing.T, f fixture) *product.Service {
			return product.NewService(newProductStore(t, postgrestest.New(t), postgres.DefaultIdempotencyConfig()), imageTasks, product.Policy{})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			writer := tc.writer(t, f)
			pub := &publisher{}
			r := newRelay(t, f.db, pub, time.Minute) // polling alone would be far too slow
			ctx := runRelay(t, r)
			time.Sleep(300 * time.Millisecond) // let the listener connect and the first drain finish
			for i := range 3 {
				p, _, err := writer.Create(ctx, f.as, product.Draft{UserID: f.owner, Name: "Lamp", Price: 100,
					ImageURLs: []string{fmt.Sprintf("https://example.com/wake-%d.jpg", i)}}, "")
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				deadline := time.Now().Add(5 * time.Second)
				for len(pub.tasksOf(p.ID)) == 0 {
					if time.Now().After(deadline) {
						t.Fatalf("task %d not published within 5s of the commit", i)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
}

// callsPublisher records when each non-empty Publish came and how many
// messages it carried.
type callsPublisher struct {
	mu    sync.Mutex
	at    []time.Time
	sizes []int
}

func (p *callsPublisher) Publish(_ context.Context, msgs []message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(msgs) > 0 {
		p.at, p.sizes = append(p.at, time.Now()), append(p.sizes, len(msgs))
	}
	return nil
}

func (p *callsPublisher) calls() ([]time.Time, []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.at), slices.Clone(p.sizes)
}

// TestRelayLingersToClaimCommitsTogether: told of a commit, the relay waits
// relay.linger before it claims, so commits that follow within it go out
// in the same claim and the same send, not in one each.
func TestRelayLingersToClaimCommitsTogether(t *testing.T) {
	f := newFixture(t)
	const linger, commits = time.Second, 5
	pub := &callsPublisher{}
	cfg := relayConfig(time.Minute, 50)
	cfg.Linger = linger
	r, err := postgres.NewRelay(cfg, f.db, pub, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx := runRelay(t, r)
	time.Sleep(300 * time.Millisecond) // let the first drain finish
	var first time.Time
	for i := range commits {
		f.create(t, ctx, fmt.Sprintf("https://example.com/linger-%d.jpg", i))
		if i == 0 {
			first = time.Now()
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, sizes := pub.calls()
		n := 0
		for _, s := range sizes {
			n += s
		}
		if n >= commits {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d tasks published within 10 s", n, commits)
		}
		time.Sleep(10 * time.Millisecond)
	}
	at, sizes := pub.calls()
	if len(sizes) > 2 {
		t.Errorf("%d commits went out in %d sends %v, want them together (one, or two if the machine stalled for the linger)", commits, len(sizes), sizes)
	}
	if waited := at[0].Sub(first); waited < linger*9/10 {
		t.Errorf("the first send came %v after the first commit, before the linger of %v", waited, linger)
	}
}

// TestRelayPublishesInOrder: a batch holds the oldest messages first, and
// one change's messages in the order the change stated them.
func TestRelayPublishesInOrder(t *testing.T) {
	f := newFixture(t)
	urls := []string{"https://example.com/o1.jpg", "https://example.com/o2.jpg", "https://example.com/o3.jpg"}
	first := f.create(t, context.Background(), urls...)
	second := f.create(t, context.Background(), urls[0])
	pub := &publisher{}
	drain(t, newRelay(t, f.db, pub, time.Second))
	var got []string
	for _, task := range decodeTasks(t, append(pub.tasksOf(first.ID), pub.tasksOf(second.ID)...)) {
		got = append(got, task.ImageID.String())
	}
	want := []string{first.Images[0].ID.String(), first.Images[1].ID.String(), first.Images[2].ID.String(), second.Images[0].ID.String()}
	if !slices.Equal(got, want) {
		t.Errorf("published images %v, want %v", got, want)
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	at := func(id string) int {
		return slices.IndexFunc(pub.msgs, func(m message.Message) bool {
			task, err := imaging.DecodeTask(m)
			return err == nil && task.ImageID.String() == id
		})
	}
	if at(want[2]) > at(want[3]) {
		t.Errorf("the second product's task was published before the first product's last")
	}
}

// TestRelayFindsLateCommits: a busy relay claims from shortly before the
// newest message it published, so a message whose transaction started long
// before (created_at is the transaction's start) and committed after newer
// ones were published is still published, by the read from the start that
// the relay makes at least every poll interval.
func TestRelayFindsLateCommits(t *testing.T) {
	t.Parallel()
	db, raw := privateDB(t)
	f := newFixtureOn(t, db)

	pub := &publisher{}
	r := newRelay(t, db, pub, 500*time.Millisecond)
	ctx := runRelay(t, r)

	// The late message's transaction starts now and commits only after a
	// stream of newer messages has been published for several seconds.
	late, err := raw.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Rollback()
	const lateKey = "late-commit"
	if _, err := late.ExecContext(ctx, `INSERT INTO outbox (id, topic, key, payload, created_at) VALUES ($1, $2, $3, '\x00', now())`,
		uuid.Must(uuid.NewV7()), taskTopic, lateKey); err != nil {
		t.Fatal(err)
	}
	var last product.Product
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		last = f.create(t, ctx, "https://example.com/newer.jpg")
	}
	waitFor(t, 10*time.Second, "the newer messages to be published", func() bool { return len(pub.tasksOf(last.ID)) == 1 })
	if err := late.Commit(); err != nil {
		t.Fatal(err)
	}
	committed := time.Now()
	waitFor(t, 10*time.Second, "the late message to be published", func() bool { return len(pub.byKey(lateKey)) == 1 })
	t.Logf("the late message was published %v after its commit", time.Since(committed).Round(time.Millisecond))
}

// TestRelayFindsLateCommitsWhileBusy: a relay that never runs out of work
// (every batch full, so one drain goes on and on) still reads from the
// outbox's start every poll interval, and so still publishes a message
// whose transaction started long before the newest one it published. The
// start of each claim is worked out anew for each batch: worked out once
// per drain, a busy relay kept claiming from where the drain began,
// stepping over the index entries of every row it had deleted since (in
// make load each claim then took 100–200 ms), and never read from the start.
func TestRelayFindsLateCommitsWhileBusy(t *testing.T) {
	t.Parallel()
	db, raw := privateDB(t)
	f := newFixtureOn(t, db)

	// At most 5 messages per 20 ms: the stream below outruns it.
	pub := &publisher{delay: 20 * time.Millisecond}
	const poll = 4 * time.Second
	r, err := postgres.NewRelay(relayConfig(poll, 5), db, pub, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx := runRelay(t, r) // its first drain reads from the start
	late, err := raw.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Rollback()
	const lateKey = "late-commit-busy"
	if _, err := late.ExecContext(ctx, `INSERT INTO outbox (id, topic, key, payload, created_at) VALUES ($1, $2, $3, '\x00', now())`,
		uuid.Must(uuid.NewV7()), taskTopic, lateKey); err != nil {
		t.Fatal(err)
	}
	// A message published 1.5 s after the late one started puts the
	// relay's mark past the late message's start plus the lookback.
	time.Sleep(1500 * time.Millisecond)
	first := f.create(t, ctx, "https://example.com/first.jpg")
	waitFor(t, poll/2, "the first message to be published", func() bool { return len(pub.tasksOf(first.ID)) == 1 })

	// 2,000 messages a second, until the test ends; the create rings the
	// relay, whose drain then never finds a batch short.
	stream, stop := context.WithCancel(ctx)
	defer stop()
	streamed := make(chan error, 1)
	go func() {
		for {
			_, err := raw.ExecContext(stream, `INSERT INTO outbox (id, topic, key, payload, created_at)
				SELECT gen_random_uuid(), $1, 'stream', '\x00', now() FROM generate_series(1, 20)`, taskTopic)
			if stream.Err() != nil {
				streamed <- nil
				return
			}
			if err != nil {
				streamed <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	waitFor(t, 5*time.Second, "the stream to fill more than a batch", func() bool {
		var n int
		err := raw.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE key = 'stream'`).Scan(&n)
		return err == nil && n > 100
	})
	f.create(t, ctx, "https://example.com/ring.jpg")
	if err := late.Commit(); err != nil {
		t.Fatal(err)
	}
	committed := time.Now()
	waitFor(t, 3*poll, "the late message to be published while the relay is busy", func() bool { return len(pub.byKey(lateKey)) == 1 })
	t.Logf("the late message was published %v after its commit", time.Since(committed).Round(time.Millisecond))
	var pending int
	if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE key = 'stream'`).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if pending == 0 {
		t.Errorf("the outbox was empty when the late message was published: the relay was not kept busy, so the test shows nothing")
	}
	stop()
	if err := <-streamed; err != nil {
		t.Fatalf("stream of messages: %v", err)
	}
}

// byKey returns the recorded messages with the key.
func (p *publisher) byKey(key string) []message.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []message.Message
	for _, m := range p.msgs {
		if m.Key == key {
			out = append(out, m)
		}
	}
	return out
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// runRelay runs r until the test ends and returns the context it runs
// with; Run must then return nil.
func runRelay(t *testing.T, r *postgres.Relay) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v, want nil after cancel", err)
		}
	})
	return ctx
}

// privateDB opens a database of the test's own (see postgrestest.Private),
// as the store uses it and raw.
func privateDB(t *testing.T) (*postgres.DB, *sql.DB) {
	t.Helper()
	dbURL := postgrestest.Private(t)
	db, err := postgres.Open(postgrestest.Config(t, dbURL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	raw, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return db, raw
}

// TestRelayPrunesRowsAnEarlierReleaseMarked: relays before this one marked
// published rows and kept them a day; this one deletes what it publishes,
// and deletes such marked rows when it starts (and hourly), so none stays
// behind after an upgrade. Pending rows are left to be published.
func TestRelayPrunesRowsAnEarlierReleaseMarked(t *testing.T) {
	t.Parallel()
	db, raw := privateDB(t)
	ctx := context.Background()
	for key, published := range map[string]any{"marked": time.Now(), "pending": nil} {
		if _, err := raw.ExecContext(ctx, `INSERT INTO outbox (id, topic, key, payload, created_at, published_at)
			VALUES ($1, $2, $3, '\x00', now(), $4)`, uuid.Must(uuid.NewV7()), taskTopic, key, published); err != nil {
			t.Fatal(err)
		}
	}
	pub := &publisher{}
	runRelay(t, newRelay(t, db, pub, time.Minute))
	waitFor(t, 10*time.Second, "the marked row to be pruned and the pending one published", func() bool {
		var left int
		if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		return left == 0 && len(pub.byKey("pending")) == 1
	})
	if got := pub.byKey("marked"); len(got) != 0 {
		t.Errorf("the relay published %d rows an earlier release had published, want 0", len(got))
	}
}

// TestRelaysTakeTurns: a relay claims only once the relay before it has
// published its batch and committed, so that two relays never publish at
// once and interleave one product's messages. The turn is held here by a
// transaction of the test, as a relay in another process would hold it.
func TestRelaysTakeTurns(t *testing.T) {
	db, raw := privateDB(t)
	f := newFixtureOn(t, db)
	p := f.create(t, t.Context(), "https://example.com/turn.jpg")
	other, err := raw.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	if _, err := other.ExecContext(t.Context(), "SELECT pg_advisory_xact_lock("+postgres.RelayTurn+")"); err != nil {
		t.Fatal(err)
	}
	pub := &publisher{}
	r := newRelay(t, db, pub, time.Second)
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := r.PublishBatch(t.Context())
		done <- result{n, err}
	}()
	select {
	case res := <-done:
		t.Fatalf("a relay claimed while another held the turn: %d messages, %v", res.n, res.err)
	case <-time.After(300 * time.Millisecond):
	}
	if got := pub.tasksOf(p.ID); len(got) != 0 {
		t.Fatalf("published %d tasks while another relay held the turn", len(got))
	}
	if err := other.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		if res.err != nil || res.n != 1 {
			t.Fatalf("after the turn came: %d messages, %v; want 1", res.n, res.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the relay did not claim within 10 s of its turn")
	}
	if got := pub.tasksOf(p.ID); len(got) != 1 {
		t.Fatalf("published %d tasks, want 1", len(got))
	}
}

// hung is a publisher that hangs until released, then accepts the batch.
type hung struct {
	publisher
	entered, release chan struct{}
}

func (h *hung) Publish(ctx context.Context, msgs []message.Message) error {
	close(h.entered)
	<-h.release
	return h.publisher.Publish(ctx, msgs)
}

// TestRelayTurnOfAHungRelayPassesOn: a relay that hangs while it holds the
// turn loses it after relay.turn_timeout, and the next relay publishes the
// batch; the hung relay, when it comes back, cannot delete what it claimed.
func TestRelayTurnOfAHungRelayPassesOn(t *testing.T) {
	db, _ := privateDB(t)
	f := newFixtureOn(t, db)
	p := f.create(t, t.Context(), "https://example.com/hung.jpg")
	cfg := relayConfig(time.Minute, 50)
	cfg.TurnTimeout = time.Second
	stuck := &hung{entered: make(chan struct{}), release: make(chan struct{})}
	first, err := postgres.NewRelay(cfg, db, stuck, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	firstDone := make(chan error, 1)
	go func() {
		_, err := first.PublishBatch(t.Context())
		firstDone <- err
	}()
	select {
	case <-stuck.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first relay did not claim within 10 s")
	}

	pub := &publisher{}
	next, err := postgres.NewRelay(cfg, db, pub, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, err := next.PublishBatch(t.Context())
	waited := time.Since(start)
	if err != nil || n != 1 {
		t.Fatalf("the next relay's batch = %d, %v; want the product's task", n, err)
	}
	if waited < 500*time.Millisecond {
		t.Errorf("the next relay claimed after %v, before the hung relay's turn timed out", waited)
	}
	if got := pub.tasksOf(p.ID); len(got) != 1 {
		t.Errorf("the next relay published %d tasks, want 1", len(got))
	}
	close(stuck.release)
	if err := <-firstDone; err == nil {
		t.Error("the hung relay's batch committed after its turn had passed on")
	}
}

// stopping is a publisher during whose Publish the relay's process is told
// to stop: it cancels the relay's context, then accepts the batch.
type stopping struct {
	publisher
	stop context.CancelFunc
}

func (s *stopping) Publish(ctx context.Context, msgs []message.Message) error {
	s.stop()
	return s.publisher.Publish(ctx, msgs)
}

// TestRelaySeesABatchThroughWhenStopped: a stop that comes while a batch
// is being published lets the batch's delete commit, so the next relay does
// not publish it a second time.
func TestRelaySeesABatchThroughWhenStopped(t *testing.T) {
	db, _ := privateDB(t)
	f := newFixtureOn(t, db)
	p := f.create(t, t.Context(), "https://example.com/stop.jpg")
	ctx, stop := context.WithCancel(t.Context())
	pub := &stopping{stop: stop}
	n, err := newRelay(t, f.db, pub, time.Second).PublishBatch(ctx)
	if err != nil || n != 1 || ctx.Err() == nil {
		t.Fatalf("PublishBatch with a stop during the publish = %d, %v (stopped: %v); want the batch of 1 published", n, err, ctx.Err())
	}
	again := &publisher{}
	drain(t, newRelay(t, f.db, again, time.Second))
	if got := again.tasksOf(p.ID); len(got) != 0 {
		t.Errorf("the next relay published the task again (%d times)", len(got))
	}
	if got := pub.tasksOf(p.ID); len(got) != 1 {
		t.Errorf("published the task %d times, want once", len(got))
	}
}
