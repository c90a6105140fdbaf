package imaging_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/imaging/imagingtest"
)

// Fakes for the processor's remote collaborators. The fetcher is the real
// one, reading from a loopback server.

// fakeCompressor makes an output per preset without libvips: the preset's
// name and the source's bytes, as wide as the box and half as high, in the
// preset's fixed format or else JPEG. fail, when it names the preset,
// fails it.
type fakeCompressor struct {
	mu   sync.Mutex
	seen []string // the presets asked for, in order
	fail map[string]error
}

func (c *fakeCompressor) Compress(_ context.Context, src imaging.Source, p imaging.Preset) (imaging.Output, error) {
	c.mu.Lock()
	c.seen = append(c.seen, p.Name)
	c.mu.Unlock()
	if err := c.fail[p.Name]; err != nil {
		return imaging.Output{}, err
	}
	format := imaging.FormatJPEG
	if p.Format == imaging.FormatWebP {
		format = imaging.FormatWebP
	}
	data := append([]byte(p.Name+":"), src.Data...)
	return imaging.Output{Preset: p.Name, Data: data, Format: format, Width: p.MaxWidth, Height: p.MaxHeight / 2}, nil
}

// memObject is an object memUploader holds.
type memObject struct {
	data        []byte
	contentType string
}

// memUploader keeps objects in memory. failAt, when set, fails that upload
// (counting from 1).
type memUploader struct {
	mu      sync.Mutex
	objects map[string]memObject
	n       int
	failAt  int
}

func (u *memUploader) Upload(_ context.Context, key string, data []byte, contentType string) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n++; u.n == u.failAt {
		return "", fmt.Errorf("upload %s: connection reset", key)
	}
	if u.objects == nil {
		u.objects = map[string]memObject{}
	}
	u.objects[key] = memObject{data: bytes.Clone(data), contentType: contentType}
	return "mem://bucket/" + key, nil
}

// memResults records what the processor reports about a task.
type memResults struct {
	mu       sync.Mutex
	attempts int
	ready    []imaging.Result
	failed   []string // codes
}

func (r *memResults) Begin(context.Context, imaging.Task) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	return r.attempts, nil
}

func (r *memResults) Abandon(context.Context, imaging.Task, int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts--
	return nil
}

func (r *memResults) Ready(_ context.Context, _ imaging.Task, res imaging.Result) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready = append(r.ready, res)
	return nil
}

func (r *memResults) Failed(_ context.Context, _ imaging.Task, _ int, code string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, code)
	return nil
}

// processorRig is a Processor on fakes, with a task for a PNG on loopback.
type processorRig struct {
	proc     *imaging.Processor
	compress *fakeCompressor
	upload   *memUploader
	results  *memResults
	task     imaging.Task
	source   []byte
}

func newProcessorRig(t *testing.T, presets []imaging.Preset, compress *fakeCompressor, upload *memUploader) *processorRig {
	t.Helper()
	source := imagingtest.PNG(t, imagingtest.Gradient(40, 30))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(source) }))
	t.Cleanup(srv.Close)
	cfg := validConfig()
	cfg.Presets = presets
	results := &memResults{}
	proc, err := imaging.NewProcessor(cfg, fetchLoopbackFetcher(t, cfg.Fetch), compress, upload, results)
	if err != nil {
		t.Fatalf("NewProcessor: %v", err)
	}
	task := imaging.Task{ID: uuid.New(), ProductID: uuid.New(), ImageID: uuid.New(), SourceURL: srv.URL + "/a.png"}
	return &processorRig{proc: proc, compress: compress, upload: upload, results: results, task: task, source: source}
}

// TestProcessorMakesEveryPreset: one task makes one variant per preset, in
// the presets' order, each uploaded under its content-addressed key, and
// records them all in one result; a preset added to the config needs
// nothing else.
func TestProcessorMakesEveryPreset(t *testing.T) {
	t.Parallel()
	presets := append(imaging.DefaultPresets(),
		imaging.Preset{Name: "square", MaxWidth: 500, MaxHeight: 500, Format: imaging.FormatWebP, Quality: 60})
	r := newProcessorRig(t, presets, &fakeCompressor{}, &memUploader{})

	attempt, err := r.proc.Process(context.Background(), r.task)
	if err != nil || attempt != 1 {
		t.Fatalf("Process() = %d, %v; want attempt 1, nil", attempt, err)
	}
	if diff := cmp.Diff([]string{"main", "thumbnail", "square"}, r.compress.seen); diff != "" {
		t.Errorf("presets compressed (-want +got):\n%s", diff)
	}
	if len(r.results.ready) != 1 || len(r.results.failed) != 0 {
		t.Fatalf("results: %d ready, failed %q; want one ready", len(r.results.ready), r.results.failed)
	}
	got := r.results.ready[0]
	want := []struct {
		name, format  string
		width, height int
	}{{"main", "jpeg", 1600, 800}, {"thumbnail", "jpeg", 320, 160}, {"square", "webp", 500, 250}}
	if len(got.Variants) != len(want) {
		t.Fatalf("Ready() got %d variants, want %d: %+v", len(got.Variants), len(want), got.Variants)
	}
	for i, w := range want {
		v := got.Variants[i]
		data := append([]byte(w.name+":"), r.source...)
		key := imaging.ObjectKey(r.task.ProductID, imaging.Output{Data: data, Format: w.format})
		wantV := imaging.Variant{Name: w.name, URL: "mem://bucket/" + key, Width: w.width, Height: w.height,
			Bytes: int64(len(data)), Format: w.format}
		if diff := cmp.Diff(wantV, v); diff != "" {
			t.Errorf("variant %d (-want +got):\n%s", i, diff)
		}
		obj, ok := r.upload.objects[key]
		if !ok || !bytes.Equal(obj.data, data) || obj.contentType != imaging.ContentType(w.format) {
			t.Errorf("object %s = %d bytes of %q (stored %t), want the %s output as %s", key, len(obj.data), obj.contentType,
				ok, w.name, imaging.ContentType(w.format))
		}
	}
	if got.Main() != got.Variants[0] {
		t.Errorf("Result.Main() = %+v, want the first variant", got.Main())
	}
	if len(r.upload.objects) != len(presets) {
		t.Errorf("%d objects uploaded, want %d", len(r.upload.objects), len(presets))
	}
}

// TestProcessorVariantFailureFailsTask: when any variant cannot be made or
// uploaded, the attempt fails as a whole with that variant's error (its
// failure code and permanence kept), later presets are not made, and no
// result is recorded.
func TestProcessorVariantFailureFailsTask(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		fail          map[string]error
		failUpload    int
		wantCode      string
		wantPermanent bool
		wantSeen      []string
	}{
		{"main cannot be compressed", map[string]error{"main": imaging.Permanent("decode_failed", errors.New("bad pixels"))}, 0,
			"decode_failed", true, []string{"main"}},
		{"thumbnail runs out of memory", map[string]error{"thumbnail": imaging.Transient("out_of_memory", errors.New("oom"))}, 0,
			"out_of_memory", false, []string{"main", "thumbnail"}},
		{"last upload fails", nil, 3, imaging.CodeInternal, false, []string{"main", "thumbnail", "square"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			presets := append(imaging.DefaultPresets(),
				imaging.Preset{Name: "square", MaxWidth: 500, MaxHeight: 500, Format: imaging.FormatAuto, Quality: 60})
			r := newProcessorRig(t, presets, &fakeCompressor{fail: tt.fail}, &memUploader{failAt: tt.failUpload})

			_, err := r.proc.Process(context.Background(), r.task)
			if err == nil {
				t.Fatal("Process() = nil, want the variant's error")
			}
			if code, permanent := imaging.FailureCode(err), errors.Is(err, imaging.ErrPermanent); code != tt.wantCode || permanent != tt.wantPermanent {
				t.Errorf("Process() error = %v: code %s, permanent %t; want %s, %t", err, code, permanent, tt.wantCode, tt.wantPermanent)
			}
			if diff := cmp.Diff(tt.wantSeen, r.compress.seen); diff != "" {
				t.Errorf("presets compressed (-want +got):\n%s", diff)
			}
			if len(r.results.ready) != 0 {
				t.Errorf("Ready() recorded %+v after a failed variant, want nothing", r.results.ready)
			}
		})
	}
}
