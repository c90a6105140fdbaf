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
	"github.com/pms-dev/pms/product/correlation"
	"github.com/pms-dev/pms/product/message"
)

// fakeTasks is a product.ImageTasks whose messages name the image, its
// source URL and when it was requested, and carry the correlation id in ctx.
type fakeTasks struct{ err error }

func (f fakeTasks) ImageTask(ctx context.Context, productID, imageID uuid.UUID, sourceURL string, at time.Time) (message.Message, error) {
	if f.err != nil {
		return message.Message{}, f.err
	}
	return message.Message{Topic: "tasks", Key: productID.String(), Payload: []byte(imageID.String() + " " + sourceURL),
		Headers: map[string]string{"request_id": correlation.ID(ctx), "at": at.Format(time.RFC3339Nano)}}, nil
}

// taskFor is the message fakeTasks makes for p's image i under requestID.
func taskFor(p product.Product, i int, requestID string) message.Message {
	im := p.Images[i]
	return message.Message{Topic: "tasks", Key: p.ID.String(), Payload: []byte(im.ID.String() + " " + im.SourceURL),
		Headers: map[string]string{"request_id": requestID, "at": im.UpdatedAt.Format(time.RFC3339Nano)}}
}

func TestServiceCreateAsksForEachImage(t *testing.T) {
	owner := account.Caller{UserID: uuid.New()}
	tests := []struct {
		name string
		urls []string
	}{
		{"no images", nil},
		{"one image", []string{"https://example.com/a.jpg"}},
		{"images in order", []string{"https://example.com/b.jpg", "https://example.com/a.jpg", "https://example.com/c.jpg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newMemStore()
			svc := product.NewService(store, fakeTasks{}, product.Policy{})
			ctx := correlation.WithID(context.Background(), "req-create")
			p, _, err := svc.Create(ctx, owner, product.Draft{Name: "Lamp", Price: 100, ImageURLs: tt.urls}, "")
			if err != nil {
				t.Fatalf("Create() error = %v", err)
			}
			var want []message.Message
			for i := range p.Images {
				want = append(want, taskFor(p, i, "req-create"))
			}
			if diff := cmp.Diff(want, store.written()); diff != "" {
				t.Errorf("Create() wrote messages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServiceCreateWithoutTaskStoresNothing(t *testing.T) {
	store := newMemStore()
	broken := errors.New("no random numbers")
	svc := product.NewService(store, fakeTasks{err: broken}, product.Policy{})
	d := product.Draft{Name: "Lamp", Price: 100, ImageURLs: []string{"https://example.com/a.jpg"}}
	if _, _, err := svc.Create(context.Background(), account.Caller{UserID: uuid.New()}, d, ""); !errors.Is(err, broken) {
		t.Errorf("Create() with a failing ImageTasks = %v, want %v", err, broken)
	}
	if len(store.products) != 0 || len(store.outbox) != 0 {
		t.Errorf("Create() that failed stored %d products and %d messages, want none", len(store.products), len(store.outbox))
	}
}

func TestServiceUpdateAsksForAddedImagesOnly(t *testing.T) {
	owner := account.Caller{UserID: uuid.New()}
	a, b, c := "https://example.com/a.jpg", "https://example.com/b.jpg", "https://example.com/c.jpg"
	name := "Renamed"
	tests := []struct {
		name  string
		as    account.Caller
		patch product.Patch
		added []string // source URLs of the images that get a task, in order
		err   string   // a part of the error, "" for none
	}{
		{"an image added", owner, product.Patch{ImageURLs: &[]string{a, c, b}}, []string{c}, ""},
		{"an image replaced", owner, product.Patch{ImageURLs: &[]string{c, b}}, []string{c}, ""},
		{"all replaced", owner, product.Patch{ImageURLs: &[]string{c, "https://example.com/d.jpg"}}, []string{c, "https://example.com/d.jpg"}, ""},
		{"reordered", owner, product.Patch{ImageURLs: &[]string{b, a}}, nil, ""},
		{"an image removed", owner, product.Patch{ImageURLs: &[]string{b}}, nil, ""},
		{"renamed", owner, product.Patch{Name: &name}, nil, ""},
		{"nothing changed", owner, product.Patch{ImageURLs: &[]string{a, b}}, nil, ""},
		{"by someone else", account.Caller{UserID: uuid.New()}, product.Patch{ImageURLs: &[]string{c}}, nil, "product not found"},
		{"invalid", owner, product.Patch{ImageURLs: &[]string{a, "ftp://example.com/x.jpg"}}, nil, "invalid input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newMemStore()
			svc := product.NewService(store, fakeTasks{}, product.Policy{})
			ctx := context.Background()
			p, _, err := svc.Create(ctx, owner, product.Draft{Name: "Lamp", Price: 100, ImageURLs: []string{a, b}}, "")
			if err != nil {
				t.Fatalf("Create() error = %v", err)
			}
			store.written()

			got, err := svc.Update(correlation.WithID(ctx, "req-update"), tt.as, p.ID, tt.patch, 0)
			if (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Update() error = %v, want one containing %q", err, tt.err)
			}
			var want []message.Message
			for i, im := range got.Images {
				for _, u := range tt.added {
					if im.SourceURL == u {
						want = append(want, taskFor(got, i, "req-update"))
					}
				}
			}
			if diff := cmp.Diff(want, store.written()); diff != "" {
				t.Errorf("Update() wrote messages (-want +got):\n%s", diff)
			}
			for _, im := range got.Images {
				if im.UpdatedAt.IsZero() {
					t.Errorf("Update() left image %s without a time", im.SourceURL)
				}
			}
		})
	}
}
