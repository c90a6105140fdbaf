package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
)

// imageTasks makes the image task messages the services under test write.
var imageTasks = imaging.NewTaskMessages(taskTopic)

// taskTopic is the image task topic of the tests.
const taskTopic = "pms.image-tasks"

type fixture struct {
	db    *postgres.DB
	svc   *product.Service
	owner uuid.UUID
	as    account.Caller // the owner
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	return newFixtureOn(t, postgrestest.New(t))
}

// newFixtureOn is newFixture on db.
func newFixtureOn(t *testing.T, db *postgres.DB) fixture {
	t.Helper()
	svc := product.NewService(newProductStore(t, db, postgres.DefaultIdempotencyConfig()), imageTasks, product.Policy{})
	u, err := account.NewService(postgres.NewAccountStore(db)).CreateUser(context.Background(), uuid.NewString()+"@example.com", "Tester", false)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return fixture{db: db, svc: svc, owner: u.ID, as: account.Caller{UserID: u.ID}}
}

func (f fixture) create(t *testing.T, ctx context.Context, urls ...string) product.Product {
	t.Helper()
	p, _, err := f.svc.Create(ctx, f.as, product.Draft{UserID: f.owner, Name: "Lamp", Price: 100, ImageURLs: urls}, "")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return p
}

func TestImageResults(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := f.create(t, ctx, "https://example.com/r.jpg")
	results := postgres.NewImageResults(f.db)
	task := imaging.Task{ProductID: p.ID, ImageID: p.Images[0].ID, SourceURL: p.Images[0].SourceURL}

	if n, err := results.Begin(ctx, task); err != nil || n != 1 {
		t.Fatalf("Begin = %d, %v; want attempt 1", n, err)
	}
	got, _ := f.svc.Get(ctx, f.as, p.ID)
	if im := got.Images[0]; im.Status != product.ImageProcessing || im.Attempts != 1 || got.Version != p.Version+1 {
		t.Errorf("after Begin product = v%d %+v, want processing with 1 attempt at version %d", got.Version, im, p.Version+1)
	}
	res := imaging.Result{Variants: []imaging.Variant{
		{Name: "main", URL: "http://s3/x.jpg", Width: 800, Height: 600, Bytes: 1234, Format: "jpeg"},
		{Name: "thumbnail", URL: "http://s3/t.jpg", Width: 320, Height: 240, Bytes: 321, Format: "jpeg"},
	}}
	if err := results.Ready(ctx, task, res); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	got, _ = f.svc.Get(ctx, f.as, p.ID)
	im := got.Images[0]
	if main, _ := im.Main(); im.Status != product.ImageReady || main.URL != res.Main().URL || len(im.Variants) != 2 ||
		got.Version != p.Version+2 {
		t.Errorf("after Ready product = v%d %+v, want ready with the result and version %d", got.Version, im, p.Version+2)
	}
	if urls := got.CompressedURLs(); len(urls) != 1 || urls[0] != res.Main().URL {
		t.Errorf("CompressedURLs() = %v, want [%s]", urls, res.Main().URL)
	}
	// A redelivered task finds nothing to do.
	if _, err := results.Begin(ctx, task); !errors.Is(err, imaging.ErrStale) {
		t.Errorf("Begin after Ready = %v, want ErrStale", err)
	}
}

func TestImageResultsIgnoreReplacedImages(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := f.create(t, ctx, "https://example.com/old.jpg")
	old := imaging.Task{ProductID: p.ID, ImageID: p.Images[0].ID, SourceURL: p.Images[0].SourceURL}
	urls := []string{"https://example.com/new.jpg"}
	if _, err := f.svc.Update(ctx, f.as, p.ID, product.Patch{ImageURLs: &urls}, 0); err != nil {
		t.Fatalf("Update: %v", err)
	}
	results := postgres.NewImageResults(f.db)
	if _, err := results.Begin(ctx, old); !errors.Is(err, imaging.ErrStale) {
		t.Errorf("Begin for a replaced image = %v, want ErrStale", err)
	}
	if err := results.Failed(ctx, old, 3, "source_not_found"); err != nil {
		t.Errorf("Failed for a replaced image = %v, want nil (no change)", err)
	}
	got, _ := f.svc.Get(ctx, f.as, p.ID)
	if len(got.Images) != 1 || got.Images[0].Status != product.ImagePending {
		t.Errorf("images after a stale result = %+v, want the new image still pending", got.Images)
	}
}

func TestImageResultsFailed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := f.create(t, ctx, "https://example.com/404.jpg")
	task := imaging.Task{ProductID: p.ID, ImageID: p.Images[0].ID, SourceURL: p.Images[0].SourceURL}
	results := postgres.NewImageResults(f.db)
	if err := results.Failed(ctx, task, 3, "source_not_found"); err != nil {
		t.Fatalf("Failed: %v", err)
	}
	got, _ := f.svc.Get(ctx, f.as, p.ID)
	if im := got.Images[0]; im.Status != product.ImageFailed || im.ErrorCode != "source_not_found" || im.Attempts != 3 {
		t.Errorf("after Failed image = %+v, want failed, source_not_found, 3 attempts", im)
	}
}

func TestKeyStore(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	auth := account.NewService(postgres.NewAccountStore(f.db))
	plain, key, err := auth.CreateKey(ctx, f.owner)
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	caller, err := auth.Authenticate(ctx, plain)
	if err != nil || caller.UserID != f.owner || caller.KeyID != key.ID {
		t.Fatalf("Authenticate(new key) = %+v, %v; want user %s", caller, err, f.owner)
	}
	auth.Wait() // last_used_at is written beside the request
	keys, err := auth.ListKeys(ctx, f.owner)
	if err != nil || len(keys) != 1 || keys[0].LastUsedAt.IsZero() {
		t.Errorf("ListKeys = %+v, %v; want the one key, used", keys, err)
	}
	wrong := plain[:len(plain)-1] + "A"
	if wrong == plain {
		wrong = plain[:len(plain)-1] + "B"
	}
	for name, k := range map[string]string{"empty": "", "malformed": "pms_x", "wrong secret": wrong, "unknown": "pms_AAAAAAAAAAAA_" + plain[len(plain)-43:]} {
		if _, err := auth.Authenticate(ctx, k); !errors.Is(err, account.ErrUnauthenticated) {
			t.Errorf("Authenticate(%s) = %v, want ErrUnauthenticated", name, err)
		}
	}
	if _, err := auth.RevokeKey(ctx, key.ID); err != nil {
		t.Fatalf("RevokeKey: %v", err)
	}
	if _, err := auth.Authenticate(ctx, plain); !errors.Is(err, account.ErrUnauthenticated) {
		t.Errorf("Authenticate(revoked) = %v, want ErrUnauthenticated", err)
	}
	if _, err := auth.RevokeKey(ctx, uuid.New()); !errors.Is(err, account.ErrKeyNotFound) || errors.Is(err, product.ErrNotFound) {
		t.Errorf("RevokeKey(unknown) = %v, want ErrKeyNotFound, not product.ErrNotFound", err)
	}
	if _, _, err := auth.CreateKey(ctx, uuid.New()); !errors.Is(err, account.ErrUserNotFound) {
		t.Errorf("CreateKey(unknown user) = %v, want ErrUserNotFound", err)
	}
}
