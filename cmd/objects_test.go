package cmd

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestSharedObjectsCollected: in `pms all`, two images with the same bytes
// (at different URLs, of different products) share every object; deleting
// one product removes its own objects from S3 once the grace period is up,
// and not before, and keeps the shared ones, which the other product still
// shows.
func TestSharedObjectsCollected(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	same, own := noisyPNG(t, 1), noisyPNG(t, 2)
	src := serveFiles(t, map[string][]byte{"same-1.png": same, "same-2.png": same, "own.png": own})
	const grace = 4 * time.Second
	s, _ := startAll(t, r.env(map[string]string{
		"PMS_IMAGING_JOB_TIMEOUT":   grace.String(),
		"PMS_IMAGING_COLLECT_GRACE": grace.String(),
		"PMS_IMAGING_COLLECT_EVERY": "100ms",
	}))

	a := createProduct(t, s, "objects-a", src+"/same-1.png", src+"/own.png")
	b := createProduct(t, s, "objects-b", src+"/same-2.png")
	pa, pb := waitSettled(t, s, a, 30*time.Second), waitSettled(t, s, b, 30*time.Second)
	keysOf := func(im e2eImage) []string {
		var keys []string
		for _, v := range im.Variants {
			keys = append(keys, r.s3Key(t, v.URL))
		}
		slices.Sort(keys)
		return slices.Compact(keys)
	}
	for _, p := range []e2eProduct{pa, pb} {
		for _, im := range p.Images {
			if im.Status != "ready" || len(im.Variants) < 2 {
				t.Fatalf("image %s is %s with %d variants, want ready with its ladder", im.SourceURL, im.Status, len(im.Variants))
			}
		}
	}
	shared, aOwn := keysOf(pa.Images[0]), keysOf(pa.Images[1])
	if got := keysOf(pb.Images[0]); !slices.Equal(got, shared) {
		t.Fatalf("the same bytes at another URL are stored at %v, want the same objects %v", got, shared)
	}
	all := append(slices.Clone(shared), aOwn...)
	slices.Sort(all)
	if got := r.s3.Keys(t, "images/"); !slices.Equal(got, all) {
		t.Fatalf("bucket holds %v, want each object once: %v", got, all)
	}

	if code := s.do(t, http.MethodDelete, "/api/v1/products/"+a, "", "objects-delete", nil); code != http.StatusNoContent {
		t.Fatalf("DELETE = %d, want 204", code)
	}
	deleted := time.Now()
	if got := r.s3.Keys(t, "images/"); !slices.Equal(got, all) {
		t.Errorf("right after the deletion the bucket holds %v, want every object until the grace is up", got)
	}
	waitUntil(t, grace+20*time.Second, "the deleted product's own objects to be removed", func() bool {
		return slices.Equal(r.s3.Keys(t, "images/"), shared)
	})
	if took := time.Since(deleted); took < grace {
		t.Errorf("objects removed %v after the deletion, before the grace of %v", took, grace)
	}
	for _, v := range getProduct(t, s, b).Images[0].Variants {
		resp, err := http.Get(v.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s (shared, in use) = %d, want 200", v.URL, resp.StatusCode)
		}
	}
}
