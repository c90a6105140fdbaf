package product

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/product/account"
	"github.com/pms-dev/pms/product/message"
)

// Store keeps products. Methods return ErrNotFound for a missing product,
// account.ErrUserNotFound for an owner who does not exist, and ErrUnavailable
// when the storage cannot be reached.
type Store interface {
	// Create stores a new product with its images and returns it, and
	// writes msgs to the outbox, in one transaction. With a non-zero key it
	// also claims the key for the product's owner, in the same transaction,
	// keeping the product as created. If the owner used the key before and
	// it has not expired, Create stores nothing and returns
	// that first product as it was created (even if it has changed or been
	// deleted since) with replayed set, or ErrIdempotencyKey when the
	// earlier request differed.
	Create(ctx context.Context, p Product, key IdempotencyKey, msgs []message.Message) (created Product, replayed bool, err error)
	// Get returns a product that is not deleted.
	Get(ctx context.Context, id uuid.UUID) (Product, error)
	// List returns up to f.Limit+1 products matching f, in f's order after f.After.
	List(ctx context.Context, f Filter) ([]Product, error)
	// Update locks the product, calls change on it and, if change returns
	// nil and bumped the version, stores the result and writes the messages
	// change returned to the outbox, all in one transaction. Images with IDs
	// the product did not have are new.
	Update(ctx context.Context, id uuid.UUID, change func(*Product) ([]message.Message, error)) (Product, error)
	// Delete marks a product deleted. With version > 0 it deletes only that
	// version and returns ErrVersionMismatch otherwise.
	// It writes msgs to the outbox with the delete, in one transaction.
	Delete(ctx context.Context, id uuid.UUID, version int, msgs []message.Message) error
}

// IdempotencyKey lets a client retry a create safely. The zero value means
// the request has none.
type IdempotencyKey struct {
	Key         string
	RequestHash string // identifies the request's content
}

// MaxIdempotencyKeyLen is the length of the longest idempotency key.
const MaxIdempotencyKeyLen = 255

// IdempotencyKeyField is the public name of the idempotency key in errors.
const IdempotencyKeyField = "Idempotency-Key"

// IdempotencyKeyProblem says what is wrong with a client's idempotency key,
// or returns "". A key is 1 to 255 visible ASCII characters (0x21 to 0x7E):
// enough for a UUID or any token a client makes, and text every store and
// log keeps as it is.
func IdempotencyKeyProblem(key string) string {
	if key == "" || len(key) > MaxIdempotencyKeyLen {
		return "must be 1 to 255 characters"
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return "must be visible ASCII characters (no spaces, controls or non-ASCII)"
		}
	}
	return ""
}

// Policy says who may see what.
type Policy struct {
	// PublicReads lets any caller read and list every user's products.
	// Without it a caller sees only their own, unless an admin.
	PublicReads bool
}

// Service applies the product rules on top of a Store. Every method takes the
// account.Caller it acts for: a product belongs to its owner, and only the
// owner or an admin may change it. A change that adds images asks for their
// processing with messages it hands to the Store (see ImageTasks).
type Service struct {
	store  Store
	tasks  ImageTasks
	policy Policy
	events Events
	now    func() time.Time
}

// NewService returns a Service that keeps products in store and asks for
// new images to be processed with the messages tasks makes.
func NewService(store Store, tasks ImageTasks, policy Policy) *Service {
	return &Service{store: store, tasks: tasks, policy: policy, now: time.Now}
}

// UseEvents makes every change announce itself with an event from e,
// written with the change (see Events).
func (s *Service) UseEvents(e Events) { s.events = e }

// CanRead reports whether c may read products owned by owner: the owner,
// an admin, anyone under the PublicReads policy.
func (p Policy) CanRead(c account.Caller, owner uuid.UUID) bool {
	return p.PublicReads || c.Admin || owner == c.UserID
}

// canRead reports whether c may see p.
func (s *Service) canRead(c account.Caller, p Product) bool { return s.policy.CanRead(c, p.UserID) }

// canChange reports whether c may change or delete p.
func canChange(c account.Caller, p Product) bool { return c.Admin || p.UserID == c.UserID }

// timestamp returns the current time at the precision PostgreSQL keeps.
func (s *Service) timestamp() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Create validates d and stores it as a new product whose images are
// pending, with a task message for each image (see ImageTasks). The owner
// is the caller unless d names one: only an admin may create for someone
// else (account.ErrForbidden), and the owner must exist
// (account.ErrUserNotFound). With an idempotency key the same request, until
// the key expires, returns the first product as that create returned it,
// with replayed set; a different request with the key returns
// ErrIdempotencyKey. A malformed key is a *ValidationError naming
// IdempotencyKeyField.
func (s *Service) Create(ctx context.Context, c account.Caller, d Draft, idempotencyKey string) (p Product, replayed bool, err error) {
	if d.UserID == uuid.Nil {
		d.UserID = c.UserID
	}
	if d.UserID != c.UserID && !c.Admin {
		return Product{}, false, fmt.Errorf("create a product for another user: %w", account.ErrForbidden)
	}
	if err := d.Validate(); err != nil {
		return Product{}, false, err
	}
	if idempotencyKey != "" {
		if problem := IdempotencyKeyProblem(idempotencyKey); problem != "" {
			return Product{}, false, &ValidationError{Fields: []FieldError{{Field: IdempotencyKeyField, Problem: problem}}}
		}
	}
	now := s.timestamp()
	p = Product{
		ID: mustV7(), UserID: d.UserID, Name: d.Name, Description: d.Description, Price: d.Price,
		Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	for i, u := range d.ImageURLs {
		im := newImage(u)
		im.Position, im.UpdatedAt = i, now
		p.Images = append(p.Images, im)
	}
	var key IdempotencyKey
	if idempotencyKey != "" {
		key = IdempotencyKey{Key: idempotencyKey, RequestHash: d.hash()}
	}
	msgs, err := s.imageTasks(ctx, p, p.Images)
	if err != nil {
		return Product{}, false, err
	}
	if msgs, err = s.announce(ctx, msgs, EventProductCreated, p); err != nil {
		return Product{}, false, err
	}
	// A replay needs no read check: the caller could make this very
	// product, so they own it or are an admin.
	return s.store.Create(ctx, p, key, msgs)
}

// hash identifies the draft's content, for idempotency checks.
func (d Draft) hash() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%q\x00%q\x00%d\x00%d", d.UserID, d.Name, d.Description, d.Price, len(d.ImageURLs))
	fmt.Fprintf(h, "\x00%s", strings.Join(d.ImageURLs, "\x00"))
	return hex.EncodeToString(h.Sum(nil))
}

// Get returns the product with the given id, or ErrNotFound when there is
// none the caller may see.
func (s *Service) Get(ctx context.Context, c account.Caller, id uuid.UUID) (Product, error) {
	p, err := s.store.Get(ctx, id)
	if err != nil {
		return Product{}, err
	}
	if !s.canRead(c, p) {
		return Product{}, ErrNotFound
	}
	return p, nil
}

// List returns the page of products f selects, or a *ValidationError for a
// bad filter. Without a user_id filter a caller lists their own products and
// an admin every product; filtering by another user is for admins, or for
// everyone under the PublicReads policy (else account.ErrForbidden).
func (s *Service) List(ctx context.Context, c account.Caller, f Filter) (Page, error) {
	switch {
	case f.UserID == nil && !c.Admin:
		f.UserID = &c.UserID
	case f.UserID != nil && *f.UserID != c.UserID && !c.Admin && !s.policy.PublicReads:
		return Page{}, fmt.Errorf("list another user's products: %w", account.ErrForbidden)
	}
	if err := f.Validate(); err != nil {
		return Page{}, err
	}
	items, err := s.store.List(ctx, f)
	if err != nil {
		return Page{}, err
	}
	page := Page{Items: items}
	if len(items) > f.Limit {
		page.Items = items[:f.Limit]
		page.Next = cursorAfter(f, page.Items[f.Limit-1])
	}
	return page, nil
}

// Update applies the patch to the product. With ifMatch > 0 the product must
// still be at that version, else ErrVersionMismatch. A change bumps the
// version, and each image it adds (a new source URL) asks for processing;
// a patch that changes nothing returns the product as it is.
func (s *Service) Update(ctx context.Context, c account.Caller, id uuid.UUID, patch Patch, ifMatch int) (Product, error) {
	return s.store.Update(ctx, id, func(p *Product) ([]message.Message, error) {
		if !canChange(c, *p) {
			return nil, ErrNotFound // others' products are not revealed
		}
		if ifMatch > 0 && p.Version != ifMatch {
			return nil, ErrVersionMismatch
		}
		before := p.Images
		if !patch.apply(p) {
			return nil, nil
		}
		if err := (Draft{p.UserID, p.Name, p.Description, p.Price, p.SourceURLs()}).Validate(); err != nil {
			return nil, err
		}
		now := s.timestamp()
		p.Version++
		p.UpdatedAt = now
		for i := range p.Images {
			if p.Images[i].UpdatedAt.IsZero() {
				p.Images[i].UpdatedAt = now
			}
		}
		msgs, err := s.imageTasks(ctx, *p, addedImages(before, p.Images))
		if err != nil {
			return nil, err
		}
		return s.announce(ctx, msgs, EventProductUpdated, *p)
	})
}

// announce appends the event of type typ about p to msgs, when s makes
// events.
func (s *Service) announce(ctx context.Context, msgs []message.Message, typ string, p Product) ([]message.Message, error) {
	if !s.events.On() {
		return msgs, nil
	}
	m, err := s.events.ProductEvent(ctx, typ, p)
	if err != nil {
		return nil, err
	}
	return append(msgs, m), nil
}

// Delete removes the product. With ifMatch > 0 it must still be at that
// version, else ErrVersionMismatch. Others' products are ErrNotFound.
func (s *Service) Delete(ctx context.Context, c account.Caller, id uuid.UUID, ifMatch int) error {
	for tries := 1; ; tries++ {
		// The owner never changes, so checking it before deleting cannot race.
		p, err := s.store.Get(ctx, id)
		if err != nil {
			return err
		}
		if !canChange(c, p) {
			return ErrNotFound
		}
		if !s.events.On() {
			return s.store.Delete(ctx, id, ifMatch, nil)
		}
		if ifMatch > 0 && p.Version != ifMatch {
			return ErrVersionMismatch
		}
		// The event names the version the delete makes, so the delete
		// must meet the version read; a change in between reads again.
		deleted := p
		deleted.Version++
		msgs, err := s.announce(ctx, nil, EventProductDeleted, deleted)
		if err != nil {
			return err
		}
		err = s.store.Delete(ctx, id, p.Version, msgs)
		if !errors.Is(err, ErrVersionMismatch) || ifMatch > 0 || tries == 3 {
			return err
		}
	}
}
