package cmd

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms-dev/pms/platform/redis/redistest"
)

// TestDLQReplay runs `pms all` against a database, Kafka cluster and S3
// server of the test's own, with an image source that answers 404: the
// image fails and its task is dead-lettered. `pms dlq list` (the binary)
// shows it; `pms dlq replay --dry-run` changes nothing; once the source
// serves the image, `pms dlq replay --code` re-queues it through the outbox
// and the image ends ready; replaying it again is a no-op.
func TestDLQReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs pms all and the pms binary")
	}
	t.Parallel()
	bin := buildPMS(t)
	var fixed atomic.Bool
	img := noisyPNG(t, 12)
	src := newSource(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		if !fixed.Load() {
			http.NotFound(w, nil)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(img)
	})
	r := newRig(t)
	env := r.env(map[string]string{"PMS_REDIS_ADDR": redistest.Addr(t), "PMS_KAFKA_RETRY_BACKOFF": "50ms"})
	s, _ := startAll(t, env)
	cli := func(args ...string) string {
		t.Helper()
		return withoutLogs(pmsCLI(t, bin, env, append(args, "--config", "../config.yaml")...))
	}

	id := createProduct(t, s, "dlq-replay-1", src.URL("/lamp.png"))
	if p := waitSettled(t, s, id, 30*time.Second); p.Images[0].Status != "failed" || p.Images[0].ErrorCode != "source_not_found" {
		t.Fatalf("image of a 404 source = %+v, want failed with source_not_found", p.Images[0])
	}
	dl := r.kafka.WaitMessages(t, deadLetterTopic, 1, 30*time.Second)[0]
	var task struct {
		ImageID string `json:"image_id"`
	}
	if err := json.Unmarshal(dl.Value, &task); err != nil || task.ImageID == "" {
		t.Fatalf("dead letter %s: %v", dl.Value, err)
	}

	list := cli("dlq", "list")
	t.Logf("pms dlq list:\n%s", list)
	row := regexp.MustCompile(`(?m)^` + task.ImageID + `\s+` + id + `\s+source_not_found\s+1\s+\d+s\s+dlq-replay-1$`)
	if !strings.Contains(list, "IMAGE  ") || !row.MatchString(list) || !strings.Contains(list, "1 failed image(s) in 1 dead letter(s)") {
		t.Fatalf("pms dlq list:\n%s\nwant a header and the image's row: image, product, error code, attempts, age, request id", list)
	}
	if out := cli("dlq", "replay", "--code", "source_not_found", "--dry-run"); !strings.Contains(out, "would replay 1 image(s)") || !strings.Contains(out, task.ImageID) {
		t.Fatalf("replay --dry-run:\n%s\nwant the image and 'would replay 1'", out)
	}
	if out, err := pmsRun(t, bin, env, "dlq", "replay", "--config", "../config.yaml"); err == nil || !strings.Contains(out, "give one of --all, --image ID or --code CODE") {
		t.Errorf("replay with no choice = %v:\n%s\nwant a usage error", err, out)
	}
	time.Sleep(300 * time.Millisecond) // a dry run that did requeue would show by now
	if p := getProduct(t, s, id); p.Images[0].Status != "failed" {
		t.Fatalf("after a dry run the image is %q, want still failed", p.Images[0].Status)
	}

	fixed.Store(true)
	out := cli("dlq", "replay", "--code", "source_not_found")
	t.Logf("pms dlq replay:\n%s", out)
	if !strings.Contains(out, "replayed 1 image(s) through the outbox; 0 no longer failed") {
		t.Fatalf("replay:\n%s\nwant 1 replayed", out)
	}
	p := s.waitProduct(t, id, 30*time.Second, func(p e2eProduct) bool { return p.Images[0].Status == "ready" })
	if len(p.CompressedProductImages) != 1 || p.Images[0].Attempts != 1 {
		t.Errorf("replayed image = %+v, want ready after 1 new attempt, with its compressed URL", p.Images[0])
	}
	if again := cli("dlq", "replay", "--image", task.ImageID); !strings.Contains(again, "replayed 0 image(s)") {
		t.Errorf("replaying an image that has since succeeded:\n%s\nwant nothing replayed", again)
	}
	if list := cli("dlq", "list"); !strings.Contains(list, "0 failed image(s) in 1 dead letter(s); 1 image(s) since resolved") {
		t.Errorf("pms dlq list after the replay:\n%s\nwant the image counted as resolved", list)
	}
	if q := getProduct(t, s, id); q.Version != p.Version || src.Hits("/lamp.png") != 2 {
		t.Errorf("after the no-op replay: version %d (was %d), %d fetches of the source, want it unchanged and 2 fetches", q.Version, p.Version, src.Hits("/lamp.png"))
	}
}
