package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pms-dev/pms/product/message"
)

// RelayConfig says how the outbox relay works.
type RelayConfig struct {
	PollInterval time.Duration `mapstructure:"poll_interval"` // also catches messages whose NOTIFY was missed
	BatchSize    int           `mapstructure:"batch_size"`
	// Linger is how long the relay waits, once told of a commit, before it
	// claims: the commits of that while go out in one claim and one send.
	// Without it, writes that commit one after another (as they do when
	// postgres.max_concurrent_writes queues them) cost a claim each.
	Linger time.Duration `mapstructure:"linger"`
	// TurnTimeout is how long a relay may hold the relays' turn without a
	// word to PostgreSQL, publishing its batch, before PostgreSQL ends its
	// session: the turn then passes on, and the batch, not deleted, goes
	// out again with the next relay (see claimSettings). Keep it above the
	// longest publish Kafka may take.
	TurnTimeout time.Duration `mapstructure:"turn_timeout"`
}

// DefaultRelayConfig returns the defaults of every relay setting.
func DefaultRelayConfig() RelayConfig {
	return RelayConfig{PollInterval: time.Second, BatchSize: 100, Linger: 20 * time.Millisecond, TurnTimeout: 30 * time.Second}
}

// Validate reports every problem with the config.
func (c RelayConfig) Validate() error {
	var errs []error
	if c.PollInterval < 10*time.Millisecond {
		errs = append(errs, errors.New("relay.poll_interval: must be at least 10ms"))
	}
	if c.Linger < 0 || c.Linger > time.Second {
		errs = append(errs, errors.New("relay.linger: must be between 0 and 1s"))
	}
	if c.TurnTimeout < time.Second || c.TurnTimeout > 10*time.Minute {
		errs = append(errs, errors.New("relay.turn_timeout: must be between 1s and 10m"))
	}
	if c.BatchSize < 1 || c.BatchSize > 10_000 {
		errs = append(errs, errors.New("relay.batch_size: must be between 1 and 10000"))
	}
	return errors.Join(errs...)
}

// Publisher delivers messages to their topics. Publish returns nil only
// when every message is durably accepted; after an error some may have
// been delivered, and delivering them again is safe.
type Publisher interface {
	Publish(ctx context.Context, msgs []message.Message) error
}

// Relay publishes the outbox with a Publisher. Several relays may run
// against one database (one in each pms serve), and they take turns: a
// relay claims a batch only once the batch before it, whichever relay
// claimed it, is published and gone (see claimSettings). So no message is
// sent twice in normal operation, and a product's messages reach Kafka in
// the order they were written even with several serve processes; two
// relays publishing at once could interleave them. A message leaves the
// outbox only after the publisher accepted it, so none is lost.
type Relay struct {
	db  *DB
	pub Publisher
	cfg RelayConfig
	log zerolog.Logger

	published, publishErrors prometheus.Counter

	claimSettings string // claimSettings with cfg.TurnTimeout

	// mark is the creation time of the newest message published, and
	// scanned when the outbox was last read from its start; only Run's
	// goroutine uses them.
	mark, scanned time.Time
}

// lookback is how far before mark a claim that follows a commit starts.
// created_at is the transaction's start, so a message that committed later
// than newer ones is still found unless its transaction ran longer than
// this; a read from the start, at least every PollInterval, finds it then.
const lookback = time.Second

// NewRelay returns a relay from db's outbox to pub.
func NewRelay(cfg RelayConfig, db *DB, pub Publisher, log zerolog.Logger) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Relay{db: db, pub: pub, cfg: cfg, log: log,
		claimSettings: fmt.Sprintf(claimSettings, cfg.TurnTimeout.Milliseconds()),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pms_outbox_published_total", Help: "Outbox messages the relay published.",
		}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pms_outbox_publish_errors_total", Help: "Batches of outbox messages the publisher (Kafka) refused or did not acknowledge; they stay pending.",
		}),
	}, nil
}

// Run publishes pending messages until ctx ends. It wakes on NOTIFY and
// polls, backs off while the publisher or database is down, and returns nil
// when ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	listener := pq.NewListener(r.db.dsn, 100*time.Millisecond, 10*time.Second, func(ev pq.ListenerEventType, err error) {
		if err != nil {
			r.log.Warn().Err(err).Msg("outbox listener connection problem")
		}
	})
	defer listener.Close()
	if err := listener.Listen(outboxChannel); err != nil {
		// Polling still delivers every message; NOTIFY only makes it sooner.
		r.log.Warn().Err(err).Msg("outbox listen failed, polling only")
	}
	ring, leave := r.db.bell.join()
	defer leave()
	r.pruneMarked(ctx)
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	backoff := time.Duration(0)
	for {
		n, err := r.drain(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			backoff = min(max(2*backoff, r.cfg.PollInterval), 30*time.Second)
			r.log.Warn().Err(err).Dur("retry_in", backoff).Msg("outbox relay cannot publish")
		default:
			backoff = 0
			if n > 0 {
				r.log.Debug().Int("messages", n).Msg("outbox messages published")
			}
		}
		wait := r.cfg.PollInterval
		if backoff > 0 {
			wait = backoff
		}
		select {
		case <-ctx.Done():
			return nil
		case <-listener.NotificationChannel():
			sleep(ctx, max(backoff, r.cfg.Linger))
		case <-ring:
			sleep(ctx, max(backoff, r.cfg.Linger))
		case <-prune.C:
			r.pruneMarked(ctx)
		case <-time.After(wait):
		}
	}
}

// drain publishes batches until the outbox is empty and returns how many
// messages it published. Each claim starts where claimFrom says, so a relay
// that stays busy (every batch full, the drain never ending) still moves its
// start on with every batch and still reads from the start every
// PollInterval.
func (r *Relay) drain(ctx context.Context) (int, error) {
	total := 0
	for ctx.Err() == nil {
		n, newest, err := r.publishBatch(ctx, r.claimFrom(time.Now()))
		total += n
		if newest.After(r.mark) {
			r.mark = newest
		}
		if err != nil || n < r.cfg.BatchSize {
			return total, err
		}
	}
	return total, nil
}

// claimFrom returns the creation time the next claim starts at: the zero
// time (the outbox's start) when the relay has not read from there for
// PollInterval, else shortly before the newest message it published, so
// that a busy relay, rung at every commit, never steps over the index
// entries of rows deleted since the last vacuum.
func (r *Relay) claimFrom(now time.Time) time.Time {
	if now.Sub(r.scanned) >= r.cfg.PollInterval {
		r.scanned = now
		return time.Time{}
	}
	return r.mark.Add(-lookback)
}

// PublishBatch publishes one batch of pending messages, oldest first, and
// returns its size. The batch leaves the outbox in a transaction that holds
// its rows while the publisher accepts them and commits only then; on any
// error it rolls back and the messages stay pending.
func (r *Relay) PublishBatch(ctx context.Context) (int, error) {
	n, _, err := r.publishBatch(ctx, time.Time{})
	return n, err
}

// finishTimeout bounds how long a claimed batch is seen through after the
// relay's context ends.
const finishTimeout = 15 * time.Second

// publishBatch is PublishBatch for the messages created at or after from;
// it also returns the creation time of the newest one it published.
//
// Once claimed, a batch is seen through even when ctx ends (the process
// stopping): its publish and its delete run on for up to finishTimeout.
// Cut off between the two, the delete would roll back and the next relay
// publish the batch a second time. The wait for the relays' turn and the
// claim itself still end with ctx.
func (r *Relay) publishBatch(ctx context.Context, from time.Time) (int, time.Time, error) {
	claim, err := r.db.prepared(ctx, claimMessages)
	if err != nil {
		return 0, time.Time{}, translate(fmt.Errorf("prepare the outbox claim: %w", err))
	}
	finish, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	var rows []outboxRow
	err = r.db.withTx(finish, func(t *txn) error {
		rows = nil
		// The delete commits only after the publisher accepted the batch, so
		// losing it in a crash only publishes the batch again, which is
		// safe: it need not wait for its WAL flush like a change does.
		// See claimSettings.
		if _, err := t.ExecContext(ctx, r.claimSettings); err != nil {
			return fmt.Errorf("set up the outbox claim: %w", err)
		}
		if err := t.StmtxContext(ctx, claim).SelectContext(ctx, &rows, r.cfg.BatchSize, from); err != nil {
			return fmt.Errorf("claim outbox messages: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		// RETURNING keeps no order.
		slices.SortFunc(rows, func(a, b outboxRow) int {
			if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
				return c
			}
			return bytes.Compare(a.ID[:], b.ID[:])
		})
		msgs := make([]message.Message, len(rows))
		spans := make([]trace.Span, len(rows))
		for i, row := range rows {
			m, err := row.toMessage()
			if err != nil {
				return err
			}
			msgs[i], spans[i] = publishSpan(ctx, row, m)
		}
		err := r.pub.Publish(finish, msgs)
		for _, span := range spans {
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, "publish failed")
			}
			span.End()
		}
		if err != nil {
			r.publishErrors.Inc()
			return fmt.Errorf("publish %d messages: %w", len(msgs), err)
		}
		return nil
	})
	if err != nil || len(rows) == 0 {
		return 0, time.Time{}, translate(err)
	}
	r.published.Add(float64(len(rows)))
	return len(rows), rows[len(rows)-1].CreatedAt, nil
}

// claimSettings start the claim transaction: it commits without waiting
// for its WAL flush (losing it in a crash of PostgreSQL is harmless); a
// statement that runs for 10 s fails, so that a claim that goes wrong is
// logged and tried again instead of holding the relay silently; and it
// waits for the relays' turn, a transaction-scoped advisory lock, which the
// relay before it gives up when its batch has been published and deleted
// (or rolled back). A relay that hangs while it holds the turn (its
// process stopped, say) loses its session after RelayConfig.TurnTimeout
// idle in the transaction (the %d, in milliseconds), which gives the turn
// and its batch back; a publish that slow is cut off the same way, and its
// batch published again. Relays of releases before the lock claim without
// it: while a rolling upgrade runs, they may still publish alongside.
const claimSettings = `SET LOCAL synchronous_commit = off; SET LOCAL statement_timeout = '10s';
SET LOCAL idle_in_transaction_session_timeout = %d; SELECT pg_advisory_xact_lock(` + relayTurn + `)`

// relayTurn is the key of the relays' advisory lock: "pms.rela" in ASCII,
// so that it is unlikely to meet a lock of another application sharing the
// database.
const relayTurn = "8101257948034329697"

// pruneMarked deletes the rows that relays of earlier releases marked
// published instead of deleting them: those left from before an upgrade,
// and those such relays mark while a rolling upgrade runs.
func (r *Relay) pruneMarked(ctx context.Context) {
	res, err := r.db.db.ExecContext(ctx, deleteMarked)
	if err != nil {
		r.log.Warn().Err(err).Msg("outbox prune failed")
		return
	}
	if n, _ := res.RowsAffected(); n > 0 {
		r.log.Info().Int64("rows", n).Msg("outbox rows published by an earlier release pruned")
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// tracer starts the relay's spans.
var tracer = otel.Tracer("github.com/pms-dev/pms/platform/postgres")

// publishSpan starts the producer span of one outbox message, in the trace
// its headers carry (the change that wrote it), and returns the message
// carrying the span's own context instead, for its handler to continue.
func publishSpan(ctx context.Context, row outboxRow, m message.Message) (message.Message, trace.Span) {
	parent := otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(m.Headers))
	ctx, span := tracer.Start(parent, "publish "+m.Topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", m.Topic),
			attribute.String("pms.outbox_id", row.ID.String()), attribute.Float64("pms.outbox_wait_seconds", time.Since(row.CreatedAt).Seconds())))
	m.Headers = withTraceContext(ctx, m.Headers)
	return m, span
}
