package product_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
	"github.com/pms-dev/pms/product/message"
)

func ptr[T any](v T) *T { return &v }

func TestUpdateIsForOwnersAndAdmins(t *testing.T) {
	for _, tt := range []struct {
		name    string
		policy  product.Policy
		caller  func(fixture) account.Caller
		wantErr error
	}{
		{"owner", product.Policy{}, owner, nil},
		{"admin", product.Policy{}, admin, nil},
		{"other", product.Policy{}, other, product.ErrNotFound},
		{"other, public reads", product.Policy{PublicReads: true}, other, product.ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(tt.policy)
			p := f.create(t)
			got, err := f.svc.Update(context.Background(), tt.caller(f), p.ID, product.Patch{Name: ptr("Desk lamp")}, 0)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Update() error = %v, want %v", err, tt.wantErr)
			}
			stored, _ := f.store.stored(p.ID)
			if err != nil {
				if diff := cmp.Diff(p, stored); diff != "" {
					t.Errorf("a refused Update() changed the product (-before +after):\n%s", diff)
				}
				return
			}
			if got.Name != "Desk lamp" || got.Version != 2 || got.UserID != p.UserID {
				t.Errorf("Update() = %+v, want the name changed at version 2, owner kept", got)
			}
			if diff := cmp.Diff(got, stored); diff != "" {
				t.Errorf("Update() returned what it did not store (-returned +stored):\n%s", diff)
			}
		})
	}
	f := newFixture(product.Policy{})
	if _, err := f.svc.Update(context.Background(), f.admin, uuid.New(), product.Patch{Name: ptr("x")}, 0); !errors.Is(err, product.ErrNotFound) {
		t.Errorf("Update(unknown id) error = %v, want ErrNotFound", err)
	}
}

func TestUpdateIfMatch(t *testing.T) {
	for _, tt := range []struct {
		name    string
		caller  func(fixture) account.Caller
		ifMatch int
		wantErr error
	}{
		{"none", owner, 0, nil},
		{"current", owner, 2, nil},
		{"old", owner, 1, product.ErrVersionMismatch},
		{"future", owner, 3, product.ErrVersionMismatch},
		// Someone who may not change the product learns nothing of its versions.
		{"other, old", other, 1, product.ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(product.Policy{})
			p := f.create(t)
			p, err := f.svc.Update(context.Background(), f.owner, p.ID, product.Patch{Price: ptr(p.Price + 1)}, 0)
			if err != nil || p.Version != 2 {
				t.Fatalf("Update() = version %d, error %v; want version 2", p.Version, err)
			}
			_, err = f.svc.Update(context.Background(), tt.caller(f), p.ID, product.Patch{Price: ptr(p.Price + 1)}, tt.ifMatch)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Update(If-Match %d) error = %v, want %v", tt.ifMatch, err, tt.wantErr)
			}
			wantVersion := 3
			if err != nil {
				wantVersion = 2
			}
			if stored, _ := f.store.stored(p.ID); stored.Version != wantVersion {
				t.Errorf("after Update(If-Match %d) the product is at version %d, want %d", tt.ifMatch, stored.Version, wantVersion)
			}
		})
	}
}

// TestUpdateBumpsTheVersionOnlyForChanges patches a product with one ready
// and one pending image: a patch that changes nothing leaves the version
// and updated_at alone; any change bumps both, and images whose URL stays
// keep their state.
func TestUpdateBumpsTheVersionOnlyForChanges(t *testing.T) {
	f := newFixture(product.Policy{})
	p := f.create(t)
	a, b := p.Images[0].SourceURL, p.Images[1].SourceURL
	p, err := f.store.Update(context.Background(), p.ID, func(p *product.Product) ([]message.Message, error) {
		p.Images[0].Status = product.ImageReady // as the worker's result would
		p.Images[0].Variants = []product.Variant{{Name: "main", URL: "https://cdn.example/a.jpg", Width: 640}}
		p.Version++
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	const c = "https://example.com/c.webp"
	tests := []struct {
		name      string
		patch     product.Patch
		changed   bool
		wantURLs  []string
		wantReady string // the source URL of the ready image, which keeps its state
	}{
		{"empty patch", product.Patch{}, false, []string{a, b}, a},
		{"same name", product.Patch{Name: ptr(p.Name)}, false, []string{a, b}, a},
		{"same description", product.Patch{Description: ptr(p.Description)}, false, []string{a, b}, a},
		{"same price", product.Patch{Price: ptr(p.Price)}, false, []string{a, b}, a},
		{"same images", product.Patch{ImageURLs: ptr([]string{a, b})}, false, []string{a, b}, a},
		{"all the same", product.Patch{Name: ptr(p.Name), Price: ptr(p.Price), ImageURLs: ptr([]string{a, b})}, false, []string{a, b}, a},
		{"new name", product.Patch{Name: ptr("Desk lamp")}, true, []string{a, b}, a},
		{"no description", product.Patch{Description: ptr("")}, true, []string{a, b}, a},
		{"new price", product.Patch{Price: ptr(p.Price + 1)}, true, []string{a, b}, a},
		{"images swapped", product.Patch{ImageURLs: ptr([]string{b, a})}, true, []string{b, a}, a},
		{"image added", product.Patch{ImageURLs: ptr([]string{a, b, c})}, true, []string{a, b, c}, a},
		{"image removed", product.Patch{ImageURLs: ptr([]string{a})}, true, []string{a}, a},
		{"ready image removed", product.Patch{ImageURLs: ptr([]string{b})}, true, []string{b}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.store.products[p.ID] = clone(p) // as it was before any patch
			f.clock.Advance(time.Hour)
			got, err := f.svc.Update(context.Background(), f.owner, p.ID, tt.patch, p.Version)
			if err != nil {
				t.Fatalf("Update(%s) error = %v", tt.name, err)
			}
			wantVersion, wantUpdated := p.Version, p.UpdatedAt
			if tt.changed {
				wantVersion, wantUpdated = p.Version+1, f.now()
			}
			if got.Version != wantVersion || !got.UpdatedAt.Equal(wantUpdated) {
				t.Errorf("Update(%s) = version %d, updated %s; want %d, %s", tt.name, got.Version, got.UpdatedAt, wantVersion, wantUpdated)
			}
			if diff := cmp.Diff(tt.wantURLs, got.SourceURLs()); diff != "" {
				t.Errorf("Update(%s) images (-want +got):\n%s", tt.name, diff)
			}
			for i, im := range got.Images {
				before := imageOf(p, im.SourceURL)
				switch {
				case im.Position != i:
					t.Errorf("image %d has position %d", i, im.Position)
				case before == nil && (im.Status != product.ImagePending || im.ID == uuid.Nil || !im.UpdatedAt.Equal(f.now())):
					t.Errorf("new image %+v, want pending with a new id, updated now", im)
				case before != nil && (im.ID != before.ID || im.Status != before.Status || !reflect.DeepEqual(im.Variants, before.Variants) ||
					!im.UpdatedAt.Equal(before.UpdatedAt)):
					t.Errorf("kept image %+v, was %+v: want its id and state kept", im, *before)
				}
			}
			if tt.wantReady != "" && imageOf(got, tt.wantReady).Status != product.ImageReady {
				t.Errorf("the ready image %s is no longer ready", tt.wantReady)
			}
		})
	}
}

// imageOf returns p's image with the source URL, or nil.
func imageOf(p product.Product, sourceURL string) *product.Image {
	for i := range p.Images {
		if p.Images[i].SourceURL == sourceURL {
			return &p.Images[i]
		}
	}
	return nil
}

func TestUpdateRefusesAnInvalidResult(t *testing.T) {
	images := make([]string, product.MaxImages+1)
	for i := range images {
		images[i] = "https://example.com/" + strings.Repeat("i", i+1) + ".jpg"
	}
	for name, tt := range map[string]struct {
		patch product.Patch
		field string
	}{
		"blank name":     {product.Patch{Name: ptr("  ")}, "product_name"},
		"negative price": {product.Patch{Price: ptr(product.Price(-1))}, "product_price"},
		"too many":       {product.Patch{ImageURLs: &images}, "product_images"},
		"repeated image": {product.Patch{ImageURLs: ptr([]string{"https://example.com/x.jpg", "https://example.com/x.jpg"})}, "product_images[1]"},
	} {
		f := newFixture(product.Policy{})
		p := f.create(t)
		_, err := f.svc.Update(context.Background(), f.owner, p.ID, tt.patch, 0)
		if got := fieldsOf(err); !cmp.Equal(got, []string{tt.field}) {
			t.Errorf("Update(%s) error = %v, want a validation error naming %s", name, err, tt.field)
		}
		if stored, _ := f.store.stored(p.ID); !cmp.Equal(stored, p) {
			t.Errorf("Update(%s) was refused but changed the product to %+v", name, stored)
		}
	}
}

func TestDeleteIsForOwnersAndAdmins(t *testing.T) {
	for _, tt := range []struct {
		name    string
		policy  product.Policy
		caller  func(fixture) account.Caller
		ifMatch int
		wantErr error
	}{
		{"owner", product.Policy{}, owner, 0, nil},
		{"owner, current version", product.Policy{}, owner, 1, nil},
		{"owner, old version", product.Policy{}, owner, 7, product.ErrVersionMismatch},
		{"admin", product.Policy{}, admin, 0, nil},
		{"other", product.Policy{}, other, 0, product.ErrNotFound},
		{"other, public reads", product.Policy{PublicReads: true}, other, 0, product.ErrNotFound},
		{"other, old version", product.Policy{}, other, 7, product.ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(tt.policy)
			p := f.create(t)
			err := f.svc.Delete(context.Background(), tt.caller(f), p.ID, tt.ifMatch)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Delete(If-Match %d) error = %v, want %v", tt.ifMatch, err, tt.wantErr)
			}
			if _, kept := f.store.stored(p.ID); kept != (err != nil) {
				t.Errorf("after Delete() error %v the product is kept: %v", err, kept)
			}
		})
	}
	f := newFixture(product.Policy{})
	if err := f.svc.Delete(context.Background(), f.admin, uuid.New(), 0); !errors.Is(err, product.ErrNotFound) {
		t.Errorf("Delete(unknown id) error = %v, want ErrNotFound", err)
	}
}
