package cmd

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pms-dev/pms/platform/redis/redistest"
)

// TestReprocess: after the ladder changes, `pms reprocess` queues the ready
// images an older preset set made, a batch at a time and resuming where a
// limited run stopped; the worker re-makes them with the new set while they
// stay ready, and the objects only the old variants used are removed after
// the grace period.
func TestReprocess(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs pms all and the pms binary")
	}
	t.Parallel()
	bin := buildPMS(t)
	r := newRig(t)
	files := map[string][]byte{}
	for i := range 3 {
		files[fmt.Sprintf("p%d.png", i)] = noisyPNG(t, uint64(40+i))
	}
	src := serveFiles(t, files)
	const grace = 4 * time.Second
	envWith := func(widths string) map[string]string {
		return r.env(map[string]string{
			"PMS_REDIS_ADDR":            redistest.Addr(t),
			"PMS_IMAGING_LADDER_WIDTHS": widths,
			"PMS_IMAGING_JOB_TIMEOUT":   grace.String(),
			"PMS_IMAGING_COLLECT_GRACE": grace.String(),
			"PMS_IMAGING_COLLECT_EVERY": "100ms",
		})
	}
	old, stop := startAll(t, envWith("100"))
	var ids []string
	for i := range 3 {
		ids = append(ids, createProduct(t, old, fmt.Sprintf("reprocess-%d", i), fmt.Sprintf("%s/p%d.png", src, i)))
	}
	var oldKeys []string
	for _, id := range ids {
		p := waitSettled(t, old, id, 30*time.Second)
		if !hasVariant(p.Images[0], "jpeg-100") {
			t.Fatalf("image made with widths [100] has variants %+v, want jpeg-100", p.Images[0].Variants)
		}
		for _, v := range p.Images[0].Variants {
			oldKeys = append(oldKeys, r.s3Key(t, v.URL))
		}
	}
	stop()

	env := envWith("64")
	s, _ := startAll(t, env)
	s.key = old.key
	cli := func(args ...string) string {
		t.Helper()
		return withoutLogs(pmsCLI(t, bin, env, append(args, "--config", "../config.yaml")...))
	}
	if out := cli("reprocess", "--dry-run"); !strings.Contains(out, "3 image(s) to reprocess") || !strings.Contains(out, "dry run") {
		t.Fatalf("reprocess --dry-run:\n%s\nwant 3 images counted", out)
	}
	if out := cli("reprocess", "--limit", "1"); !strings.Contains(out, "queued 1 image(s)") {
		t.Fatalf("reprocess --limit 1:\n%s\nwant 1 queued", out)
	}
	if out := cli("reprocess", "--batch", "1"); !strings.Contains(out, "queued 2 image(s)") {
		t.Fatalf("reprocess after a limited run:\n%s\nwant the other 2 queued", out)
	}
	for _, id := range ids {
		p := s.waitProduct(t, id, 30*time.Second, func(p e2eProduct) bool {
			if p.Images[0].Status != "ready" {
				t.Errorf("image is %s while it is re-made, want ready throughout", p.Images[0].Status)
			}
			return hasVariant(p.Images[0], "jpeg-64")
		})
		if hasVariant(p.Images[0], "jpeg-100") {
			t.Errorf("re-made image still lists jpeg-100: %+v", p.Images[0].Variants)
		}
	}
	if out := cli("reprocess"); !strings.Contains(out, "0 image(s) to reprocess") {
		t.Errorf("reprocess once all are re-made:\n%s\nwant none left", out)
	}
	waitUntil(t, grace+20*time.Second, "the old variants' own objects to be removed", func() bool {
		keys := r.s3.Keys(t, "images/")
		return !slices.ContainsFunc(oldKeys, func(k string) bool {
			return slices.Contains(keys, k) && !stillUsed(t, s, r, ids, k)
		})
	})
}

func hasVariant(im e2eImage, name string) bool {
	return slices.ContainsFunc(im.Variants, func(v e2eVariant) bool { return v.Name == name })
}

// stillUsed reports whether a variant of one of the products is in the
// object at key (a rung that came out the same under both ladders).
func stillUsed(t *testing.T, s *stack, r *rig, ids []string, key string) bool {
	for _, id := range ids {
		for _, v := range getProduct(t, s, id).Images[0].Variants {
			if r.s3Key(t, v.URL) == key {
				return true
			}
		}
	}
	return false
}
