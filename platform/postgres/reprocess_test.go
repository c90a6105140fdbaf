package postgres_test

import (
	"errors"
	"testing"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/product/message"
)

// TestReprocessAttemptsCounted: the attempts at re-making a ready image are
// counted durably, as a first making's are: a fourth is refused with the
// count (the worker then gives the task up as worker_crashed), giving up
// starts the count again for a replay, one given back is taken off, and
// queueing the image again starts a new count. The image stays ready
// throughout.
func TestReprocessAttemptsCounted(t *testing.T) {
	db, raw := privateDB(t)
	f := newFixtureOn(t, db)
	ctx := t.Context()
	p := f.create(t, ctx, "https://example.com/reprocess.jpg")
	task := taskOf(p, 0)
	results := postgres.NewImageResults(db)
	if _, err := results.Begin(ctx, task); err != nil {
		t.Fatal(err)
	}
	if err := results.Ready(ctx, task, imaging.Result{PresetSet: "old",
		Variants: []imaging.Variant{{Name: "main", URL: "https://cdn.example/a.webp", Width: 10, Height: 10, Bytes: 10, Format: "webp"}}}); err != nil {
		t.Fatal(err)
	}
	queue := func(set string) {
		t.Helper()
		n, err := results.QueueReprocess(ctx, set, 10, func(postgres.ReprocessImage) (message.Message, error) {
			return message.Message{Topic: "pms.image-tasks", Key: p.ID.String(), Payload: []byte(`{}`)}, nil
		})
		if err != nil || n != 1 {
			t.Fatalf("QueueReprocess(%s) = %d, %v; want the one image", set, n, err)
		}
	}
	queue("new")
	task.Reprocess = true
	for want := 1; want <= imaging.MaxAttempts; want++ {
		if n, err := results.BeginReprocess(ctx, task, "new"); err != nil || n != want {
			t.Fatalf("BeginReprocess #%d = %d, %v; want attempt %d", want, n, err, want)
		}
	}
	n, err := results.BeginReprocess(ctx, task, "new")
	if !errors.Is(err, imaging.ErrAttemptsUsed) || n != imaging.MaxAttempts {
		t.Fatalf("BeginReprocess after %d unfinished attempts = %d, %v; want %d, ErrAttemptsUsed", imaging.MaxAttempts, n, err, imaging.MaxAttempts)
	}
	if s := readImage(t, raw, task.ImageID); s.Status != "ready" || s.URL != "https://cdn.example/a.webp" {
		t.Errorf("image during its reprocess attempts: %+v, want ready with its variants", s)
	}
	if err := results.Failed(ctx, task, n, imaging.CodeWorkerCrashed); err != nil {
		t.Fatal(err)
	}
	if s := readImage(t, raw, task.ImageID); s.Status != "ready" || s.URL != "https://cdn.example/a.webp" {
		t.Errorf("image after its reprocess was given up: %+v, want ready with its variants", s)
	}
	// A replay of the dead-lettered task gets its attempts again.
	for want := 1; want <= imaging.MaxAttempts; want++ {
		if n, err := results.BeginReprocess(ctx, task, "new"); err != nil || n != want {
			t.Fatalf("BeginReprocess #%d of the replay = %d, %v; want attempt %d", want, n, err, want)
		}
	}
	if err := results.Abandon(ctx, task, imaging.MaxAttempts); err != nil {
		t.Fatal(err)
	}
	if n, err := results.BeginReprocess(ctx, task, "new"); err != nil || n != imaging.MaxAttempts {
		t.Fatalf("BeginReprocess after one given back = %d, %v; want attempt %d", n, err, imaging.MaxAttempts)
	}
	queue("newer")
	if n, err := results.BeginReprocess(ctx, task, "newer"); err != nil || n != 1 {
		t.Fatalf("BeginReprocess after the image was queued again = %d, %v; want attempt 1", n, err)
	}
	if err := results.Ready(ctx, task, imaging.Result{PresetSet: "newer",
		Variants: []imaging.Variant{{Name: "main", URL: "https://cdn.example/b.webp", Width: 10, Height: 10, Bytes: 10, Format: "webp"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := results.BeginReprocess(ctx, task, "newer"); !errors.Is(err, imaging.ErrStale) {
		t.Errorf("BeginReprocess of an image made with the set = %v, want ErrStale", err)
	}
}
