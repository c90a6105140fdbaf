package postgres_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/product/message"
)

// TestRequeue: a failed image becomes pending with its task in the outbox,
// in one transaction; an image that is not failed (ready, or pending
// after the first requeue) is left alone with nothing written.
func TestRequeue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	raw := rawDB(t)
	ctx := context.Background()
	p := f.create(t, ctx, "https://example.com/requeue-a.jpg", "https://example.com/requeue-b.jpg")
	failed, ready := taskOf(p, 0), taskOf(p, 1)
	results := postgres.NewImageResults(f.db)
	if err := results.Failed(ctx, failed, 3, "source_unavailable"); err != nil {
		t.Fatal(err)
	}
	if err := results.Ready(ctx, ready, mainOnly("https://cdn.example/b.jpg")); err != nil {
		t.Fatal(err)
	}
	outbox := func() int {
		var n int
		const q = `SELECT count(*) FROM outbox WHERE key = $1 AND headers->>'replay' = 'yes'`
		if err := raw.QueryRowContext(ctx, q, p.ID.String()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	msg := func() message.Message {
		return message.Message{Topic: "pms.image-tasks", Key: p.ID.String(), Payload: []byte(`{}`), Headers: map[string]string{"replay": "yes"}}
	}
	before := readImage(t, raw, failed.ImageID)
	got, err := results.FailedNow(ctx, []uuid.UUID{failed.ImageID, ready.ImageID})
	if err != nil || !got[failed.ImageID] || got[ready.ImageID] {
		t.Errorf("FailedNow = %v, %v; want only the failed image", got, err)
	}

	if ok, err := results.Requeue(ctx, failed, msg()); !ok || err != nil {
		t.Fatalf("Requeue(failed image) = %v, %v; want true", ok, err)
	}
	if s := readImage(t, raw, failed.ImageID); s.Status != "pending" || s.Attempts != 0 || s.ErrorCode != "" || s.Version != before.Version+1 {
		t.Errorf("after Requeue the image is %+v, want pending, no attempts or code, version %d", s, before.Version+1)
	}
	if n := outbox(); n != 1 {
		t.Errorf("outbox holds %d requeued tasks, want 1", n)
	}
	for _, tt := range []struct {
		name string
		idx  int
	}{{"ready", 1}, {"already requeued", 0}} {
		task := taskOf(p, tt.idx)
		v := readImage(t, raw, task.ImageID).Version
		if ok, err := results.Requeue(ctx, task, msg()); ok || err != nil {
			t.Errorf("Requeue(%s image) = %v, %v; want false, nil", tt.name, ok, err)
		}
		if s := readImage(t, raw, task.ImageID); s.Version != v {
			t.Errorf("Requeue(%s image) changed the version %d -> %d", tt.name, v, s.Version)
		}
	}
	if n := outbox(); n != 1 {
		t.Errorf("outbox holds %d requeued tasks after the no-ops, want still 1", n)
	}
}
