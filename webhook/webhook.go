// Package webhook sends pms's events to the URLs users subscribe, signed as
// the Standard Webhooks specification says: the subscriptions and their
// rules (Service), the signature (sign.go), the fan-out of each event into
// one delivery per subscription that wants it (Fanout) and the sending of
// deliveries with retries, in order per subscription and product
// (Dispatcher).
package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
	"github.com/pms-dev/pms/product/input"
)

// ErrNotFound is returned for a subscription or delivery that does not
// exist or is not the caller's.
var ErrNotFound = errors.New("webhook not found")

// Subscription is a user's request to have events of some types sent to a
// URL. Secret and PreviousSecret sign the deliveries; the API shows Secret
// only when it is made.
type Subscription struct {
	ID         uuid.UUID
	UserID     uuid.UUID
	URL        string
	EventTypes []string
	Enabled    bool
	// DisabledReason says why pms disabled the subscription (a 410, or a
	// delivery that failed for the whole retry span); "" when it is enabled
	// or its owner disabled it.
	DisabledReason string
	FailingSince   time.Time // zero unless pms disabled it for failing
	Secret         string
	// PreviousSecret signs too until PreviousSecretUntil, after a rotation.
	PreviousSecret      string
	PreviousSecretUntil time.Time
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// Secrets returns the secrets that sign a delivery at t: the current one,
// and the previous one while a rotation overlaps.
func (s Subscription) Secrets(t time.Time) []string {
	if s.PreviousSecret != "" && t.Before(s.PreviousSecretUntil) {
		return []string{s.Secret, s.PreviousSecret}
	}
	return []string{s.Secret}
}

// Draft is a new subscription as a user asks for it. Enabled nil means true.
type Draft struct {
	URL        string
	EventTypes []string
	Enabled    *bool
}

// Patch changes a subscription; nil fields stay as they are. Enabling a
// subscription pms disabled clears its reason.
type Patch struct {
	URL        *string
	EventTypes *[]string
	Enabled    *bool
}

// Store keeps subscriptions and their deliveries. Methods return
// ErrNotFound for a missing one and product.ErrUnavailable when the
// storage cannot be reached.
type Store interface {
	Create(ctx context.Context, s Subscription) error
	Get(ctx context.Context, id uuid.UUID) (Subscription, error)
	// List returns the user's subscriptions, oldest first.
	List(ctx context.Context, userID uuid.UUID) ([]Subscription, error)
	// Update locks the subscription, calls change on it and stores the
	// result if change returns nil.
	Update(ctx context.Context, id uuid.UUID, change func(*Subscription) error) (Subscription, error)
	Delete(ctx context.Context, id uuid.UUID) error
	// Deliveries returns up to limit deliveries of the subscription, newest
	// first, those with a seq below before (0: from the newest).
	Deliveries(ctx context.Context, webhookID uuid.UUID, limit int, before int64) ([]Delivery, error)
	// Retry queues the delivery again, now and behind every delivery of
	// its product queued so far, and returns it.
	Retry(ctx context.Context, webhookID, deliveryID uuid.UUID) (Delivery, error)
}

// URLCheck refuses a URL that deliveries must not be sent to (the SSRF
// rules of image fetches: imaging.Fetcher.CheckURL), with an error that
// says why.
type URLCheck func(rawURL string) error

// Service applies the subscription rules: a subscription belongs to its
// owner, who alone sees and changes it.
type Service struct {
	store   Store
	check   URLCheck
	overlap time.Duration
	now     func() time.Time
}

// NewService returns a Service keeping subscriptions in store, refusing
// URLs check refuses, and signing with the previous secret for overlap
// after a rotation.
func NewService(store Store, check URLCheck, overlap time.Duration) *Service {
	return &Service{store: store, check: check, overlap: overlap, now: time.Now}
}

func (s *Service) timestamp() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// MaxURLLen is the length of the longest subscription URL.
const MaxURLLen = 2048

// validate reports every problem with a subscription's URL and types.
func (s *Service) validate(rawURL string, types []string) error {
	var ps input.Problems
	switch u, err := url.Parse(rawURL); {
	case rawURL == "":
		ps.Add("url", "must not be empty")
	case len(rawURL) > MaxURLLen:
		ps.Add("url", fmt.Sprintf("must be at most %d characters", MaxURLLen))
	case err != nil || !u.IsAbs():
		ps.Add("url", "must be an absolute http or https URL")
	default:
		if err := s.check(rawURL); err != nil {
			ps.Add("url", err.Error())
		}
	}
	if len(types) == 0 {
		ps.Add("event_types", "must name at least one event type")
	}
	for _, t := range types {
		if !slices.Contains(product.EventTypes, t) {
			ps.Add("event_types", fmt.Sprintf("%q is not an event type (one of %v)", t, product.EventTypes))
		}
	}
	return ps.Err()
}

// Create validates d and stores it as the caller's subscription, with a
// new secret, which the returned subscription shows.
func (s *Service) Create(ctx context.Context, c account.Caller, d Draft) (Subscription, error) {
	types := dedupe(d.EventTypes)
	if err := s.validate(d.URL, types); err != nil {
		return Subscription{}, err
	}
	secret, err := NewSecret()
	if err != nil {
		return Subscription{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Subscription{}, fmt.Errorf("make webhook id: %w", err)
	}
	now := s.timestamp()
	sub := Subscription{ID: id, UserID: c.UserID, URL: d.URL, EventTypes: types, Enabled: d.Enabled == nil || *d.Enabled,
		Secret: secret, CreatedAt: now, UpdatedAt: now}
	if err := s.store.Create(ctx, sub); err != nil {
		return Subscription{}, err
	}
	return sub, nil
}

// Get returns the caller's subscription, or ErrNotFound.
func (s *Service) Get(ctx context.Context, c account.Caller, id uuid.UUID) (Subscription, error) {
	sub, err := s.store.Get(ctx, id)
	if err != nil {
		return Subscription{}, err
	}
	if sub.UserID != c.UserID {
		return Subscription{}, ErrNotFound
	}
	return sub, nil
}

// List returns the caller's subscriptions, oldest first.
func (s *Service) List(ctx context.Context, c account.Caller) ([]Subscription, error) {
	return s.store.List(ctx, c.UserID)
}

// Update applies the patch to the caller's subscription.
func (s *Service) Update(ctx context.Context, c account.Caller, id uuid.UUID, p Patch) (Subscription, error) {
	return s.store.Update(ctx, id, func(sub *Subscription) error {
		if sub.UserID != c.UserID {
			return ErrNotFound
		}
		if p.URL != nil {
			sub.URL = *p.URL
		}
		if p.EventTypes != nil {
			sub.EventTypes = dedupe(*p.EventTypes)
		}
		if err := s.validate(sub.URL, sub.EventTypes); err != nil {
			return err
		}
		if p.Enabled != nil {
			sub.Enabled = *p.Enabled
			if sub.Enabled {
				sub.DisabledReason, sub.FailingSince = "", time.Time{}
			}
		}
		sub.UpdatedAt = s.timestamp()
		return nil
	})
}

// RotateSecret gives the caller's subscription a new secret, which the
// returned subscription shows; the old one keeps signing beside it for the
// Service's overlap, so receivers can switch without losing a delivery.
func (s *Service) RotateSecret(ctx context.Context, c account.Caller, id uuid.UUID) (Subscription, error) {
	secret, err := NewSecret()
	if err != nil {
		return Subscription{}, err
	}
	return s.store.Update(ctx, id, func(sub *Subscription) error {
		if sub.UserID != c.UserID {
			return ErrNotFound
		}
		now := s.timestamp()
		sub.PreviousSecret, sub.PreviousSecretUntil = sub.Secret, now.Add(s.overlap)
		sub.Secret, sub.UpdatedAt = secret, now
		return nil
	})
}

// Delete removes the caller's subscription and its deliveries.
func (s *Service) Delete(ctx context.Context, c account.Caller, id uuid.UUID) error {
	if _, err := s.Get(ctx, c, id); err != nil {
		return err
	}
	return s.store.Delete(ctx, id)
}

// MaxDeliveriesPage is the most deliveries one page of the log holds.
const MaxDeliveriesPage = 100

// Deliveries returns a page of the log of the caller's subscription, newest
// first: up to limit (1 to MaxDeliveriesPage) deliveries with a seq below
// before, 0 meaning from the newest.
func (s *Service) Deliveries(ctx context.Context, c account.Caller, id uuid.UUID, limit int, before int64) ([]Delivery, error) {
	if limit < 1 || limit > MaxDeliveriesPage {
		return nil, &input.ValidationError{Fields: []input.FieldError{{Field: "limit", Problem: fmt.Sprintf("must be 1 to %d", MaxDeliveriesPage)}}}
	}
	if _, err := s.Get(ctx, c, id); err != nil {
		return nil, err
	}
	return s.store.Deliveries(ctx, id, limit, before)
}

// Retry sends a delivery of the caller's subscription again, whatever
// became of it, as the newest of its product's queue.
func (s *Service) Retry(ctx context.Context, c account.Caller, id, deliveryID uuid.UUID) (Delivery, error) {
	if _, err := s.Get(ctx, c, id); err != nil {
		return Delivery{}, err
	}
	return s.store.Retry(ctx, id, deliveryID)
}

// dedupe returns types without repeats, in first-seen order.
func dedupe(types []string) []string {
	out := make([]string, 0, len(types))
	for _, t := range types {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}
