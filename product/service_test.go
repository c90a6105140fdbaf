package product_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
)

// fixture is a Service on a memStore and a clock, and three callers: an
// owner, another user and an admin.
type fixture struct {
	svc                 *product.Service
	store               *memStore
	clock               *clock
	owner, other, admin account.Caller
}

func newFixture(policy product.Policy) fixture {
	f := fixture{store: newMemStore(), clock: newClock(),
		owner: account.Caller{UserID: uuid.New(), KeyID: uuid.New()},
		other: account.Caller{UserID: uuid.New(), KeyID: uuid.New()},
		admin: account.Caller{UserID: uuid.New(), KeyID: uuid.New(), Admin: true},
	}
	f.svc = product.NewService(f.store, fakeTasks{}, policy)
	product.SetClock(f.svc, f.clock.Now)
	return f
}

// now is the clock's time as the Service stamps it.
func (f fixture) now() time.Time { return f.clock.Now().UTC().Truncate(time.Microsecond) }

// create makes a product of the owner's from validDraft and advances the
// clock, so products are created in order.
func (f fixture) create(t *testing.T) product.Product {
	t.Helper()
	d := validDraft()
	d.UserID = f.owner.UserID
	p, _, err := f.svc.Create(context.Background(), f.owner, d, "")
	if err != nil {
		t.Fatalf("Create(%+v) error = %v", d, err)
	}
	f.clock.Advance(time.Second)
	return p
}

// fieldsOf returns the fields a *product.ValidationError in err names, or
// nil when err holds none.
func fieldsOf(err error) []string {
	var ve *product.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var fields []string
	for _, fe := range ve.Fields {
		fields = append(fields, fe.Field)
	}
	return fields
}

func TestCreateStoresAPendingProductOfTheCaller(t *testing.T) {
	f := newFixture(product.Policy{})
	d := validDraft()
	d.UserID = uuid.Nil // the caller's
	p, replayed, err := f.svc.Create(context.Background(), f.owner, d, "")
	if err != nil || replayed {
		t.Fatalf("Create(%+v) = replayed %v, error %v; want a new product", d, replayed, err)
	}
	now := f.now()
	want := product.Product{ID: p.ID, UserID: f.owner.UserID, Name: d.Name, Description: d.Description, Price: d.Price,
		Version: 1, CreatedAt: now, UpdatedAt: now}
	for i, u := range d.ImageURLs {
		want.Images = append(want.Images, product.Image{ID: p.Images[i].ID, Position: i, SourceURL: u,
			Status: product.ImagePending, UpdatedAt: now})
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("Create() product (-want +got):\n%s", diff)
	}
	ids := map[uuid.UUID]bool{p.ID: true}
	for _, im := range p.Images {
		ids[im.ID] = true
	}
	for id := range ids {
		if id.Version() != 7 {
			t.Errorf("Create() made id %s of version %d, want UUIDv7", id, id.Version())
		}
	}
	if len(ids) != 1+len(p.Images) {
		t.Errorf("Create() made ids %v, want %d different ones", ids, 1+len(p.Images))
	}
	if len(f.store.creates) != 1 || f.store.creates[0].key != (product.IdempotencyKey{}) {
		t.Errorf("store.Create calls = %+v, want one without an idempotency key", f.store.creates)
	} else if diff := cmp.Diff(want, f.store.creates[0].p); diff != "" {
		t.Errorf("store.Create got (-want +got):\n%s", diff)
	}
}

func TestCreateForAnotherUserIsForAdmins(t *testing.T) {
	f := newFixture(product.Policy{PublicReads: true}) // reading all is not writing for all
	tests := []struct {
		name    string
		caller  account.Caller
		owner   uuid.UUID
		wantErr error
	}{
		{"owner for themselves", f.owner, f.owner.UserID, nil},
		{"user for another", f.other, f.owner.UserID, account.ErrForbidden},
		{"admin for another", f.admin, f.owner.UserID, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := f.store.callCount()
			d := validDraft()
			d.UserID = tt.owner
			p, _, err := f.svc.Create(context.Background(), tt.caller, d, "")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Create(for %s) as %+v error = %v, want %v", tt.owner, tt.caller, err, tt.wantErr)
			}
			switch {
			case err != nil && f.store.callCount() != calls:
				t.Errorf("Create() refused but called the store")
			case err == nil && p.UserID != tt.owner:
				t.Errorf("Create() owner = %s, want %s", p.UserID, tt.owner)
			}
		})
	}
}

func TestCreateRefusesBadInputBeforeTheStore(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(*product.Draft)
		key       string
		wantField string // "" when valid
	}{
		{"blank name", func(d *product.Draft) { d.Name = " " }, "", "product_name"},
		{"bad image", func(d *product.Draft) { d.ImageURLs = []string{"ftp://example.com/a.jpg"} }, "", "product_images[0]"},
		{"key of 255", func(*product.Draft) {}, strings.Repeat("~", 255), ""},
		{"key of 1", func(*product.Draft) {}, "!", ""},
		{"key of 256", func(*product.Draft) {}, strings.Repeat("k", 256), product.IdempotencyKeyField},
		{"key with a space", func(*product.Draft) {}, "my key", product.IdempotencyKeyField},
		{"key with a tab", func(*product.Draft) {}, "key\t1", product.IdempotencyKeyField},
		{"key with DEL", func(*product.Draft) {}, "key\x7f", product.IdempotencyKeyField},
		{"key not ASCII", func(*product.Draft) {}, "clé", product.IdempotencyKeyField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(product.Policy{})
			d := validDraft()
			d.UserID = f.owner.UserID
			tt.edit(&d)
			_, _, err := f.svc.Create(context.Background(), f.owner, d, tt.key)
			if tt.wantField == "" {
				if err != nil || len(f.store.creates) != 1 || f.store.creates[0].key.Key != tt.key {
					t.Errorf("Create(key %q) error = %v, store got %+v; want the key stored", tt.key, err, f.store.creates)
				}
				return
			}
			if got := fieldsOf(err); !cmp.Equal(got, []string{tt.wantField}) {
				t.Errorf("Create(key %q) error = %v, want a validation error naming %s", tt.key, err, tt.wantField)
			}
			if n := f.store.callCount(); n != 0 {
				t.Errorf("Create() refused input after %d store calls, want none", n)
			}
		})
	}
}

// TestIdempotencyKeyIdentifiesTheRequest checks the request hash the
// Service hands the store: the same for a retry, different for any change
// a client could make.
func TestIdempotencyKeyIdentifiesTheRequest(t *testing.T) {
	f := newFixture(product.Policy{})
	ctx := context.Background()
	base := validDraft()
	base.UserID = f.owner.UserID
	first, _, err := f.svc.Create(ctx, f.owner, base, "retry-1")
	if err != nil {
		t.Fatalf("Create() error = %v", err)
	}
	implicit := base
	implicit.UserID = uuid.Nil
	again, replayed, err := f.svc.Create(ctx, f.owner, implicit, "retry-1")
	if err != nil || !replayed || again.ID != first.ID {
		t.Fatalf("Create(same request, owner implied) = %s, replayed %v, error %v; want %s replayed", again.ID, replayed, err, first.ID)
	}
	hash := f.store.creates[0].key.RequestHash
	if hash == "" || f.store.creates[1].key.RequestHash != hash {
		t.Errorf("request hashes %q and %q, want one non-empty hash", hash, f.store.creates[1].key.RequestHash)
	}
	for name, edit := range map[string]func(*product.Draft){
		"name":           func(d *product.Draft) { d.Name += "!" },
		"description":    func(d *product.Draft) { d.Description = "" },
		"price":          func(d *product.Draft) { d.Price++ },
		"fewer images":   func(d *product.Draft) { d.ImageURLs = d.ImageURLs[:1] },
		"images swapped": func(d *product.Draft) { d.ImageURLs = []string{d.ImageURLs[1], d.ImageURLs[0]} },
		"text moved from description to name": func(d *product.Draft) {
			d.Name, d.Description = d.Name+" "+d.Description[:1], d.Description[1:]
		},
	} {
		d := base
		d.ImageURLs = append([]string(nil), base.ImageURLs...)
		edit(&d)
		if _, _, err := f.svc.Create(ctx, f.owner, d, "retry-1"); !errors.Is(err, product.ErrIdempotencyKey) {
			t.Errorf("Create(key reused, %s changed) error = %v, want ErrIdempotencyKey", name, err)
		}
	}
}

func TestGetFollowsOwnershipAndPolicy(t *testing.T) {
	for _, tt := range []struct {
		name     string
		policy   product.Policy
		caller   func(fixture) account.Caller
		wantSeen bool
	}{
		{"owner", product.Policy{}, func(f fixture) account.Caller { return f.owner }, true},
		{"admin", product.Policy{}, func(f fixture) account.Caller { return f.admin }, true},
		{"other", product.Policy{}, func(f fixture) account.Caller { return f.other }, false},
		{"other, public reads", product.Policy{PublicReads: true}, func(f fixture) account.Caller { return f.other }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(tt.policy)
			p := f.create(t)
			got, err := f.svc.Get(context.Background(), tt.caller(f), p.ID)
			switch {
			case tt.wantSeen && (err != nil || got.ID != p.ID):
				t.Errorf("Get() = %s, %v; want %s", got.ID, err, p.ID)
			case !tt.wantSeen && !errors.Is(err, product.ErrNotFound):
				t.Errorf("Get() = %s, %v; want ErrNotFound, as for a product that does not exist", got.ID, err)
			}
		})
	}
	f := newFixture(product.Policy{})
	if _, err := f.svc.Get(context.Background(), f.admin, uuid.New()); !errors.Is(err, product.ErrNotFound) {
		t.Errorf("Get(unknown id) error = %v, want ErrNotFound", err)
	}
}

func TestListDefaultsToTheCallersProducts(t *testing.T) {
	for _, tt := range []struct {
		name     string
		policy   product.Policy
		caller   func(fixture) account.Caller
		filterBy func(fixture) *uuid.UUID // the user_id filter, nil for none
		wantUser func(fixture) *uuid.UUID // what the store is asked for
		want     int                      // products listed
		wantErr  error
	}{
		{"owner, no filter", product.Policy{}, owner, none, ownerID, 3, nil},
		{"other, no filter", product.Policy{PublicReads: true}, other, none, otherID, 2, nil},
		{"admin, no filter", product.Policy{}, admin, none, none, 5, nil},
		{"owner, own filter", product.Policy{}, owner, ownerID, ownerID, 3, nil},
		{"other, owner's filter", product.Policy{}, other, ownerID, nil, 0, account.ErrForbidden},
		{"other, owner's filter, public reads", product.Policy{PublicReads: true}, other, ownerID, ownerID, 3, nil},
		{"admin, owner's filter", product.Policy{}, admin, ownerID, ownerID, 3, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(tt.policy)
			for range 3 {
				f.create(t)
			}
			for range 2 {
				d := validDraft()
				d.UserID = f.other.UserID
				if _, _, err := f.svc.Create(context.Background(), f.other, d, ""); err != nil {
					t.Fatalf("Create(%+v) as its owner error = %v", d, err)
				}
			}
			lists := len(f.store.filters)
			page, err := f.svc.List(context.Background(), tt.caller(f), product.Filter{UserID: tt.filterBy(f), Sort: product.SortCreated, Limit: 10})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("List() error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if len(f.store.filters) != lists {
					t.Errorf("List() refused after asking the store")
				}
				return
			}
			if got, want := f.store.filters[len(f.store.filters)-1].UserID, tt.wantUser(f); !cmp.Equal(got, want) {
				t.Errorf("List() asked the store for user %v, want %v", got, want)
			}
			if len(page.Items) != tt.want || page.Next != nil {
				t.Errorf("List() = %d products, next %v; want %d on one page", len(page.Items), page.Next, tt.want)
			}
		})
	}
}

func owner(f fixture) account.Caller { return f.owner }
func other(f fixture) account.Caller { return f.other }
func admin(f fixture) account.Caller { return f.admin }
func none(fixture) *uuid.UUID        { return nil }
func ownerID(f fixture) *uuid.UUID   { return &f.owner.UserID }
func otherID(f fixture) *uuid.UUID   { return &f.other.UserID }

// TestListPages walks a list page by page: each page holds Limit products
// and a cursor that continues after its last, the last page none.
func TestListPages(t *testing.T) {
	f := newFixture(product.Policy{})
	var want []uuid.UUID
	for range 5 {
		want = append(want, f.create(t).ID)
	}
	filter := product.Filter{Sort: product.SortCreated, Limit: 2}
	var got []uuid.UUID
	var sizes []int
	for page := 1; ; page++ {
		p, err := f.svc.List(context.Background(), f.owner, filter)
		if err != nil {
			t.Fatalf("List(page %d) error = %v", page, err)
		}
		sizes = append(sizes, len(p.Items))
		for _, it := range p.Items {
			got = append(got, it.ID)
		}
		if p.Next == nil || page == 5 {
			break
		}
		filter.After = p.Next
	}
	if diff := cmp.Diff(want, got); diff != "" || !cmp.Equal(sizes, []int{2, 2, 1}) {
		t.Errorf("List pages of sizes %v, products (-want +got):\n%s", sizes, diff)
	}

	full, err := f.svc.List(context.Background(), f.owner, product.Filter{Sort: product.SortCreated, Limit: 5})
	if err != nil || len(full.Items) != 5 || full.Next != nil {
		t.Errorf("List(limit 5 of 5) = %d products, next %v, error %v; want 5 and no next page", len(full.Items), full.Next, err)
	}
}

func TestListRefusesBadFiltersBeforeTheStore(t *testing.T) {
	f := newFixture(product.Policy{})
	f.create(t)
	f.create(t)
	page, err := f.svc.List(context.Background(), f.owner, product.Filter{Sort: product.SortCreated, Limit: 1})
	if err != nil || page.Next == nil {
		t.Fatalf("List(limit 1 of 2) = next %v, error %v; want a next page", page.Next, err)
	}
	for name, tt := range map[string]struct {
		filter product.Filter
		want   []string
	}{
		"limit 0":              {product.Filter{Sort: product.SortCreated}, []string{"limit"}},
		"unknown order":        {product.Filter{Sort: "colour", Limit: 1}, []string{"sort"}},
		"cursor of other list": {product.Filter{Sort: product.SortCreated, Name: "Lamp", Limit: 1, After: page.Next}, []string{"cursor"}},
	} {
		lists := len(f.store.filters)
		if _, err := f.svc.List(context.Background(), f.owner, tt.filter); !cmp.Equal(fieldsOf(err), tt.want) {
			t.Errorf("List(%s) error = %v, want a validation error naming %v", name, err, tt.want)
		}
		if len(f.store.filters) != lists {
			t.Errorf("List(%s) asked the store", name)
		}
	}
}
