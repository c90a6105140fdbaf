package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

// Config says how deliveries are sent and retried.
type Config struct {
	// Concurrency is how many deliveries one worker sends at once.
	Concurrency int `mapstructure:"concurrency"`
	// PerSubscription caps the deliveries of one subscription in flight at
	// once, so a slow receiver holds at most that many senders.
	PerSubscription int           `mapstructure:"per_subscription"`
	Timeout         time.Duration `mapstructure:"timeout"`            // of one attempt, connect to last byte
	MaxResponseSize int64         `mapstructure:"max_response_bytes"` // read of a response body, then dropped
	RetryBase       time.Duration `mapstructure:"retry_base"`         // before the second attempt
	RetryMax        time.Duration `mapstructure:"retry_max"`          // cap of the doubling backoff
	// RetrySpan is how long a delivery is retried, from when it was (last) queued,
	// before it fails and its subscription is disabled as failing.
	RetrySpan    time.Duration `mapstructure:"retry_span"`
	PollInterval time.Duration `mapstructure:"poll_interval"` // for due retries and other workers' deliveries
	// SecretOverlap is how long a rotated-out secret keeps signing.
	SecretOverlap time.Duration `mapstructure:"secret_overlap"`
	// SecretKeys seal the signing secrets in the database: 32 random bytes
	// each, in base64; the first seals, every one opens (see platform/seal).
	// None: secrets are stored in clear. pms checks them (cmd), as this
	// package does not seal.
	SecretKeys []string `mapstructure:"secret_keys"`
}

// DefaultConfig returns the defaults of every setting.
func DefaultConfig() Config {
	return Config{Concurrency: 16, PerSubscription: 4, Timeout: 10 * time.Second, MaxResponseSize: 64 << 10,
		RetryBase: 5 * time.Second, RetryMax: time.Hour, RetrySpan: 24 * time.Hour,
		PollInterval: 500 * time.Millisecond, SecretOverlap: 24 * time.Hour, SecretKeys: []string{}}
}

// Validate reports every problem with the config.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, problem string) { errs = append(errs, fmt.Errorf("webhooks.%s: %s", key, problem)) }
	if c.Concurrency < 1 || c.PerSubscription < 1 {
		bad("concurrency, per_subscription", "must be at least 1")
	}
	if c.Timeout <= 0 || c.PollInterval < time.Millisecond {
		bad("timeout, poll_interval", "must be positive (poll_interval at least 1ms)")
	}
	if c.MaxResponseSize < 0 {
		bad("max_response_bytes", "must not be negative")
	}
	if c.RetryBase <= 0 || c.RetryMax < c.RetryBase || c.RetrySpan < c.RetryBase {
		bad("retry_base, retry_max, retry_span", "must be positive, with retry_max and retry_span at least retry_base")
	}
	if c.SecretOverlap < 0 {
		bad("secret_overlap", "must not be negative")
	}
	return errors.Join(errs...)
}

// The states of a delivery.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
)

// Delivery is one event on its way to one subscription, and what became
// of it so far.
type Delivery struct {
	ID        uuid.UUID
	Seq       int64 // orders a subscription's deliveries
	WebhookID uuid.UUID
	EventID   uuid.UUID // the webhook-id header: the same on every attempt
	EventType string
	ProductID uuid.UUID
	Payload   []byte
	Status    string
	Attempts  int
	// ResponseCode is the status of the last response; 0 when the last
	// attempt got none.
	ResponseCode  int
	LastError     string
	Latency       time.Duration // of the last attempt
	CreatedAt     time.Time
	QueuedAt      time.Time // when last queued: the retry span runs from it
	NextAttemptAt time.Time // of a pending delivery
	FinishedAt    time.Time // zero while pending
}

// Claimed is a delivery leased to a sender, with what sending needs.
type Claimed struct {
	Delivery
	URL     string
	Secrets []string
	// Err, when set, says why the delivery cannot be sent (its secrets
	// could not be read): its attempt fails with it, as a failed send does.
	Err error
}

// Outcome is what one attempt made of a delivery, for DeliveryStore.Record.
type Outcome struct {
	Status       string // StatusPending: retry at NextAttemptAt
	ResponseCode int
	Error        string
	Latency      time.Duration
	At           time.Time // when the attempt ended
	// NextAttemptAt is when a pending delivery is tried again.
	NextAttemptAt time.Time
	// Disable, when not "", disables the subscription with this reason;
	// Failing marks it as disabled for failing, not for a 410.
	Disable string
	Failing bool
}

// DeliveryStore is the queue of deliveries.
type DeliveryStore interface {
	// Enqueue adds one pending delivery of the event for each enabled
	// subscription that wants its type and whose owner may read the
	// product (its owner, an admin, or anyone when anyoneReads), once per
	// subscription however often it is called, and returns how many it
	// added.
	Enqueue(ctx context.Context, ev Event, anyoneReads bool) (int, error)
	// Claim leases up to n due deliveries for lease and returns them. Each
	// is the oldest pending delivery of its subscription and product, of an
	// enabled subscription with fewer than perSubscription leased.
	Claim(ctx context.Context, n, perSubscription int, lease time.Duration) ([]Claimed, error)
	// Record stores the outcome of an attempt at the delivery and ends its
	// lease.
	Record(ctx context.Context, d Claimed, o Outcome) error
}

// Event is an event to fan out: its ids and type, the product's owner,
// and the body every delivery of it sends.
type Event struct {
	ID        uuid.UUID
	Type      string
	ProductID uuid.UUID
	OwnerID   uuid.UUID
	Body      []byte
	At        time.Time
}

// Dialer connects to receivers. imaging.Fetcher's DialContext, which
// checks every address after DNS, is the one pms uses.
type Dialer func(ctx context.Context, network, address string) (net.Conn, error)

// Dispatcher sends the deliveries of a DeliveryStore. Several may run
// against one store: a delivery is leased to one sender at a time.
type Dispatcher struct {
	cfg    Config
	store  DeliveryStore
	check  URLCheck
	client *http.Client
	log    zerolog.Logger
	ring   chan struct{}
	now    func() time.Time
}

// NewDispatcher validates cfg and returns a Dispatcher sending store's
// deliveries through dial, to URLs check allows. It follows no redirects
// and ignores proxy settings, which would dial on its behalf.
func NewDispatcher(cfg Config, store DeliveryStore, check URLCheck, dial Dialer, log zerolog.Logger) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DialContext: dial, MaxResponseHeaderBytes: 64 << 10,
			MaxIdleConnsPerHost: cfg.PerSubscription, IdleConnTimeout: 90 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       cfg.Timeout,
	}
	return &Dispatcher{cfg: cfg, store: store, check: check, client: client, log: log,
		ring: make(chan struct{}, 1), now: time.Now}, nil
}

// Wake makes the dispatcher look for deliveries now instead of at its next
// poll.
func (d *Dispatcher) Wake() {
	select {
	case d.ring <- struct{}{}:
	default:
	}
}

// Run sends deliveries until ctx ends, then waits for those in flight and
// returns nil.
func (d *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	free := make(chan struct{}, d.cfg.Concurrency)
	for range d.cfg.Concurrency {
		free <- struct{}{}
	}
	// A lease outlives the attempt, so no other sender takes it meanwhile.
	lease := 2*d.cfg.Timeout + 10*time.Second
	for poll := true; ; {
		// A claim reads the whole queue's index, so it waits until half
		// the senders are free, or the poll.
		n := len(free)
		var claimed []Claimed
		if n > 0 && (poll || n >= (d.cfg.Concurrency+1)/2) {
			var err error
			if claimed, err = d.store.Claim(ctx, n, d.cfg.PerSubscription, lease); err != nil && ctx.Err() == nil {
				d.log.Warn().Err(err).Msg("claim webhook deliveries")
			}
		}
		for _, c := range claimed {
			<-free
			wg.Go(func() {
				defer d.Wake() // a sender is free, and the next of its queue may be due
				defer func() { free <- struct{}{} }()
				d.deliver(context.WithoutCancel(ctx), c)
			})
		}
		if len(claimed) == n && n > 0 {
			continue // there may be more
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.ring:
			poll = false
		case <-time.After(d.cfg.PollInterval):
			poll = true
		}
	}
}

// deliver makes one attempt at c and records it.
func (d *Dispatcher) deliver(ctx context.Context, c Claimed) {
	start := d.now()
	code, err := d.send(ctx, c, start)
	o := d.outcome(c, code, err, start)
	log := d.log.With().Stringer("webhook_id", c.WebhookID).Stringer("delivery_id", c.ID).Int("attempt", c.Attempts+1).
		Int("response_code", code).Dur("took", o.Latency).Logger()
	if err != nil {
		log.Warn().Err(err).Str("status", o.Status).Msg("webhook attempt failed")
	} else {
		log.Debug().Str("status", o.Status).Msg("webhook attempt")
	}
	if err := d.store.Record(ctx, c, o); err != nil {
		// The lease runs out and the delivery is tried again.
		log.Error().Err(err).Msg("record webhook attempt")
	}
}

// send posts the delivery, signed at `at`, and returns the response status.
// A non-2xx status is an error.
func (d *Dispatcher) send(ctx context.Context, c Claimed, at time.Time) (int, error) {
	if c.Err != nil {
		return 0, c.Err
	}
	if err := d.check(c.URL); err != nil {
		return 0, err
	}
	id := c.EventID.String()
	sig, err := Signatures(c.Secrets, id, at, c.Payload)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(c.Payload))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("User-Agent", "pms-webhooks")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := d.client.Do(req)
	if err != nil {
		// The url.Error around the cause repeats the URL, which may hold a token.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, err
	}
	defer resp.Body.Close()
	// Read (a capped part of) the body so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, d.cfg.MaxResponseSize))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("receiver answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// outcome decides what the attempt that got code and err means: delivered,
// retried after a backoff, or failed for good.
func (d *Dispatcher) outcome(c Claimed, code int, err error, start time.Time) Outcome {
	end := d.now()
	o := Outcome{ResponseCode: code, Latency: end.Sub(start), At: end}
	switch {
	case err == nil:
		o.Status = StatusDelivered
		return o
	case code == http.StatusGone:
		o.Status, o.Error = StatusFailed, err.Error()
		o.Disable = "the receiver answered 410 Gone"
		return o
	}
	o.Error = err.Error()
	first := c.QueuedAt
	next := end.Add(d.backoff(c.Attempts + 1))
	if next.Sub(first) > d.cfg.RetrySpan {
		o.Status = StatusFailed
		o.Disable = fmt.Sprintf("delivery %s failed for %v (%d attempts), last: %s", c.ID, d.cfg.RetrySpan, c.Attempts+1, o.Error)
		o.Failing = true
		return o
	}
	o.Status, o.NextAttemptAt = StatusPending, next
	return o
}

// backoff is the wait after the attempt-th attempt: RetryBase doubling,
// capped at RetryMax, with ±50% jitter so receivers that come back are not
// hit by every delivery at once.
func (d *Dispatcher) backoff(attempt int) time.Duration {
	wait := d.cfg.RetryBase
	for i := 1; i < attempt && wait < d.cfg.RetryMax; i++ {
		wait *= 2
	}
	wait = min(wait, d.cfg.RetryMax)
	return time.Duration(float64(wait) * (0.5 + rand.Float64()))
}
