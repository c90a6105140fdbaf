package imaging_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/pms-dev/pms/imaging"
)

// The Processor is tested here against fakes of its collaborators: a
// Compressor, an Uploader and a ResultStore that record what they are
// asked and fail where a test says. Sources come from a loopback server
// through a real Fetcher. The suites in platform/kafka and cmd run it with
// libvips, S3 and PostgreSQL.

// fakeCompressor makes an Output from each preset and the source, unless
// fail returns an error for a preset (or for "sample"). It records the
// presets it was asked for, call by call.
type fakeCompressor struct {
	mu      sync.Mutex
	fail    func(ctx context.Context, p imaging.Preset) error
	calls   [][]string // the presets of each Variants call
	sources []imaging.Source
	width   int // when set, the source's width: outputs are fitted to it, never upscaled
}

func (c *fakeCompressor) Variants(ctx context.Context, src imaging.Source, presets []imaging.Preset) ([]imaging.Output, imaging.Sample, error) {
	c.mu.Lock()
	var names []string
	for _, p := range presets {
		names = append(names, p.Name)
	}
	c.calls = append(c.calls, names)
	c.sources = append(c.sources, src)
	c.mu.Unlock()
	sample, err := c.sample(ctx)
	if err != nil {
		return nil, imaging.Sample{}, err
	}
	outs := make([]imaging.Output, len(presets))
	for i, p := range presets {
		if outs[i], err = c.output(ctx, src, p); err != nil {
			return nil, imaging.Sample{}, err
		}
	}
	return outs, sample, nil
}

// output makes the output of one preset.
func (c *fakeCompressor) output(ctx context.Context, src imaging.Source, p imaging.Preset) (imaging.Output, error) {
	if c.fail != nil {
		if err := c.fail(ctx, p); err != nil {
			return imaging.Output{}, err
		}
	}
	data := fmt.Appendf(nil, "%s of %d bytes", p.Name, len(src.Data))
	if c.width > 0 {
		return imaging.Output{Preset: p.Name, Data: data, Format: p.Format, Width: min(p.MaxWidth, c.width), Height: 10}, nil
	}
	return imaging.Output{Preset: p.Name, Data: data, Format: imaging.FormatWebP, Width: p.MaxWidth / 2, Height: p.MaxHeight / 4}, nil
}

// sample returns a 2×1 sample, red then blue, of a 6×4 source (as wide as
// width says, when set).
func (c *fakeCompressor) sample(ctx context.Context) (imaging.Sample, error) {
	if c.fail != nil {
		if err := c.fail(ctx, imaging.Preset{Name: "sample"}); err != nil {
			return imaging.Sample{}, err
		}
	}
	w := 6
	if c.width > 0 {
		w = c.width
	}
	return imaging.Sample{Width: w, Height: 4, W: 2, H: 1, Pix: []byte{255, 0, 0, 255, 0, 0, 255, 255}}, nil
}

// upload is one Upload call.
type upload struct {
	key, contentType string
	data             []byte
}

// fakeUploader keeps uploads in memory and returns their URL, unless fail
// returns an error for the object.
type fakeUploader struct {
	mu      sync.Mutex
	fail    func(data []byte) error
	uploads []upload
}

func (u *fakeUploader) Upload(_ context.Context, key string, data []byte, contentType string) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.fail != nil {
		if err := u.fail(data); err != nil {
			return "", err
		}
	}
	u.uploads = append(u.uploads, upload{key, contentType, data})
	return "https://cdn.test/" + key, nil
}

// fakeResults is a ResultStore whose Begin answers begin (attempt 1 when
// nil) and that records the outcomes it is told.
type fakeResults struct {
	mu        sync.Mutex
	begin     func() (int, error)
	readyErr  error
	ready     []imaging.Result
	failed    []failure
	abandoned []abandon
	storing   []string // the keys Storing was told of, in order
	// reprocessed are the preset sets BeginReprocess was called with.
	reprocessed []string
}

type failure struct {
	attempts int
	code     string
}

type abandon struct {
	attempt int
	ctxErr  error // of the context Abandon was given
}

func (r *fakeResults) Begin(context.Context, imaging.Task) (int, error) {
	if r.begin == nil {
		return 1, nil
	}
	return r.begin()
}

func (r *fakeResults) Abandon(ctx context.Context, _ imaging.Task, attempt int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.abandoned = append(r.abandoned, abandon{attempt, ctx.Err()})
	return nil
}

func (r *fakeResults) Ready(_ context.Context, _ imaging.Task, res imaging.Result) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.readyErr != nil {
		return r.readyErr
	}
	r.ready = append(r.ready, res)
	return nil
}

func (r *fakeResults) BeginReprocess(_ context.Context, _ imaging.Task, set string) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reprocessed = append(r.reprocessed, set)
	if r.begin != nil {
		return r.begin()
	}
	return 1, nil
}

func (r *fakeResults) Storing(_ context.Context, keys []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.storing = append(r.storing, keys...)
	return nil
}

func (r *fakeResults) Failed(_ context.Context, _ imaging.Task, attempts int, code string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, failure{attempts, code})
	return nil
}

// rig is a Processor on fakes, and a loopback server with one PNG at
// /a.png; every other path is a 404.
type rig struct {
	proc     *imaging.Processor
	compress *fakeCompressor
	upload   *fakeUploader
	results  *fakeResults
	png      []byte
	srv      *httptest.Server
	mu       sync.Mutex
	hits     int
}

var (
	mainPreset  = imaging.Preset{Name: "main", MaxWidth: 1600, MaxHeight: 1600, Format: imaging.FormatAuto, Quality: 80}
	thumbPreset = imaging.Preset{Name: "thumbnail", MaxWidth: 320, MaxHeight: 320, Format: imaging.FormatAuto, Quality: 70}
)

// newRig returns a rig whose processor makes the main variant and the
// thumbnail in 10s at most, unless edit changes that.
func newRig(t *testing.T, edit func(*imaging.Config)) *rig {
	t.Helper()
	r := &rig{compress: &fakeCompressor{}, upload: &fakeUploader{}, results: &fakeResults{}, png: smallPNG(t)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.hits++
		r.mu.Unlock()
		if req.URL.Path != "/a.png" {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(r.png)
	}))
	t.Cleanup(r.srv.Close)
	cfg := imaging.Config{Limits: imaging.DefaultLimits, JobTimeout: 10 * time.Second, Presets: []imaging.Preset{mainPreset, thumbPreset}, Collect: imaging.DefaultCollectConfig()}
	if edit != nil {
		edit(&cfg)
	}
	p, err := imaging.NewProcessor(cfg, fetchLoopbackFetcher(t, imaging.FetchConfig{}), r.compress, r.upload, r.results)
	if err != nil {
		t.Fatalf("NewProcessor() error = %v", err)
	}
	r.proc = p
	return r
}

// task returns a task for the image at path on the rig's server.
func (r *rig) task(path string) imaging.Task {
	return imaging.Task{ID: uuid.New(), ProductID: uuid.New(), ImageID: uuid.New(), SourceURL: r.srv.URL + path, RequestedAt: time.Now()}
}

func (r *rig) fetches() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits
}

// smallPNG returns a 6×4 PNG.
func smallPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 6, 4))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	img.Set(0, 0, color.RGBA{R: 255, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// code returns the failure code of err and whether it is permanent.
func code(err error) (string, bool) {
	return imaging.FailureCode(err), errors.Is(err, imaging.ErrPermanent)
}

func TestProcessMakesEveryVariant(t *testing.T) {
	for _, thumb := range []bool{true, false} {
		r := newRig(t, func(c *imaging.Config) {
			if !thumb {
				c.Presets = c.Presets[:1]
			}
		})
		task := r.task("/a.png")
		attempt, err := r.proc.Process(context.Background(), task)
		if attempt != 1 || err != nil {
			t.Fatalf("Process() = %d, %v; want attempt 1 done", attempt, err)
		}
		wantPresets := []string{"main"}
		if thumb {
			wantPresets = append(wantPresets, "thumbnail")
		}
		if diff := cmp.Diff([][]string{wantPresets}, r.compress.calls); diff != "" {
			t.Errorf("thumbnail %v: presets compressed, call by call (-want +got):\n%s", thumb, diff)
		}
		for _, src := range r.compress.sources {
			if src.URL != task.SourceURL || !bytes.Equal(src.Data, r.png) || src.Header.Format != imaging.FormatPNG ||
				src.Header.Width != 6 || src.Header.Height != 4 {
				t.Errorf("Variants() got source %s, %d bytes, header %+v; want the 6×4 PNG served", src.URL, len(src.Data), src.Header)
			}
		}
		var wantUploads []upload
		for _, p := range []imaging.Preset{mainPreset, thumbPreset}[:len(wantPresets)] {
			data := fmt.Appendf(nil, "%s of %d bytes", p.Name, len(r.png))
			key := imaging.ObjectKey(imaging.Output{Data: data, Format: imaging.FormatWebP})
			wantUploads = append(wantUploads, upload{key, "image/webp", data})
		}
		if diff := cmp.Diff(wantUploads, r.upload.uploads, cmp.AllowUnexported(upload{})); diff != "" {
			t.Errorf("thumbnail %v: uploads (-want +got):\n%s", thumb, diff)
		}
		var wantKeys []string // recorded at once, sorted, before any upload
		for _, u := range wantUploads {
			wantKeys = append(wantKeys, u.key)
		}
		slices.Sort(wantKeys)
		if diff := cmp.Diff(wantKeys, r.results.storing); diff != "" {
			t.Errorf("thumbnail %v: keys recorded as being stored (-want +got):\n%s", thumb, diff)
		}
		hash, err := imaging.ThumbHash(2, 1, []byte{255, 0, 0, 255, 0, 0, 255, 255})
		if err != nil {
			t.Fatal(err)
		}
		want := imaging.Result{Source: imaging.SourceFacts{Width: 6, Height: 4, Format: imaging.FormatPNG, Bytes: int64(len(r.png)),
			ThumbHash: base64.StdEncoding.EncodeToString(hash), Color: "#ff0000"},
			PresetSet: imaging.Config{Presets: []imaging.Preset{mainPreset, thumbPreset}[:len(wantPresets)]}.PresetSet()}
		for i, p := range []imaging.Preset{mainPreset, thumbPreset}[:len(wantPresets)] {
			want.Variants = append(want.Variants, imaging.Variant{Name: p.Name, Key: wantUploads[i].key, URL: "https://cdn.test/" + wantUploads[i].key,
				Width: p.MaxWidth / 2, Height: p.MaxHeight / 4, Bytes: int64(len(wantUploads[i].data)), Format: imaging.FormatWebP})
		}
		if diff := cmp.Diff([]imaging.Result{want}, r.results.ready); diff != "" {
			t.Errorf("thumbnail %v: Ready() got (-want +got):\n%s", thumb, diff)
		}
		if len(r.results.failed) != 0 || len(r.results.abandoned) != 0 {
			t.Errorf("a finished task also failed %v or was abandoned %v", r.results.failed, r.results.abandoned)
		}
	}
}

// TestProcessLadder: after the presets come the ladder's rungs, format by
// format, widths ascending, all made in one call; a rung narrower than its
// width (the source's width met) ends its format's ladder, so nothing
// upscaled or made twice is uploaded.
func TestProcessLadder(t *testing.T) {
	tests := []struct {
		source int
		want   []string
	}{
		{1000, []string{"jpeg-100", "jpeg-200", "jpeg-400", "webp-100", "webp-200", "webp-400"}},
		{400, []string{"jpeg-100", "jpeg-200", "jpeg-400", "webp-100", "webp-200", "webp-400"}},
		{250, []string{"jpeg-100", "jpeg-200", "jpeg-400", "webp-100", "webp-200", "webp-400"}},
		{200, []string{"jpeg-100", "jpeg-200", "webp-100", "webp-200"}},
		{150, []string{"jpeg-100", "jpeg-200", "webp-100", "webp-200"}},
		{60, []string{"jpeg-100", "webp-100"}},
	}
	all := []string{"main", "jpeg-100", "jpeg-200", "jpeg-400", "webp-100", "webp-200", "webp-400"}
	for _, tt := range tests {
		r := newRig(t, func(c *imaging.Config) {
			c.Presets = c.Presets[:1]
			c.Ladder = imaging.Ladder{Widths: []int{100, 200, 400}, Formats: []string{"jpeg", "webp"}, JPEGQuality: 80, WebPQuality: 80, AVIFQuality: 75}
		})
		r.compress.width = tt.source
		if _, err := r.proc.Process(context.Background(), r.task("/a.png")); err != nil {
			t.Fatalf("source %d px: Process() error = %v", tt.source, err)
		}
		if diff := cmp.Diff([][]string{all}, r.compress.calls); diff != "" {
			t.Errorf("source %d px: presets compressed, call by call (-want +got):\n%s", tt.source, diff)
		}
		if len(r.results.ready) != 1 {
			t.Fatalf("source %d px: Ready() got %+v, want one result", tt.source, r.results.ready)
		}
		var names []string
		for _, v := range r.results.ready[0].Variants {
			names = append(names, v.Name)
		}
		if diff := cmp.Diff(append([]string{"main"}, tt.want...), names); diff != "" {
			t.Errorf("source %d px: variants recorded (-want +got):\n%s", tt.source, diff)
		}
		if len(r.upload.uploads) != len(tt.want)+1 {
			t.Errorf("source %d px: %d uploads, want %d", tt.source, len(r.upload.uploads), len(tt.want)+1)
		}
		for _, v := range r.results.ready[0].Variants[1:] {
			if f, _, _ := strings.Cut(v.Name, "-"); v.Format != f || v.Width > tt.source {
				t.Errorf("source %d px: variant %+v, want format %s and at most the source's width", tt.source, v, f)
			}
		}
	}
}

// TestProcessRunsNothingBegunElsewhere checks what Process does when Begin
// says the task needs no work, or no more attempts: nothing is fetched.
func TestProcessRunsNothingBegunElsewhere(t *testing.T) {
	down := errors.New("database is down")
	tests := []struct {
		name          string
		attempt       int
		beginErr      error
		wantAttempt   int
		wantCode      string // "" when Process returns nil
		wantPermanent bool
	}{
		{"stale", 0, imaging.ErrStale, 0, "", false},
		{"attempts used up by dead workers", imaging.MaxAttempts, imaging.ErrAttemptsUsed, imaging.MaxAttempts, imaging.CodeWorkerCrashed, true},
		{"begin failed", 0, down, 0, imaging.CodeInternal, false},
	}
	for _, tt := range tests {
		for _, reprocess := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/reprocess=%v", tt.name, reprocess), func(t *testing.T) {
				r := newRig(t, nil)
				r.results.begin = func() (int, error) { return tt.attempt, tt.beginErr }
				task := r.task("/a.png")
				task.Reprocess = reprocess
				attempt, err := r.proc.Process(context.Background(), task)
				if attempt != tt.wantAttempt {
					t.Errorf("Process() attempt = %d, want %d", attempt, tt.wantAttempt)
				}
				if tt.wantCode == "" && err != nil {
					t.Errorf("Process() error = %v, want nil", err)
				}
				if c, permanent := code(err); tt.wantCode != "" && (c != tt.wantCode || permanent != tt.wantPermanent) {
					t.Errorf("Process() error = %v (code %s, permanent %v), want code %s, permanent %v", err, c, permanent, tt.wantCode, tt.wantPermanent)
				}
				if tt.wantCode != "" && !errors.Is(err, tt.beginErr) {
					t.Errorf("Process() error = %v, want it to wrap %v", err, tt.beginErr)
				}
				if n := r.fetches(); n != 0 || len(r.compress.calls) != 0 || len(r.results.ready) != 0 {
					t.Errorf("Process() fetched %d times, compressed %v, recorded %v; want nothing done", n, r.compress.calls, r.results.ready)
				}
			})
		}
	}
}

// TestProcessReprocess: a reprocess task begins with BeginReprocess and
// the worker's preset set, which counts its attempt, and records the
// variants with that set; a stale one does nothing.
func TestProcessReprocess(t *testing.T) {
	r := newRig(t, nil)
	task := r.task("/a.png")
	task.Reprocess = true
	want := imaging.Config{Presets: []imaging.Preset{mainPreset, thumbPreset}}.PresetSet()
	if attempt, err := r.proc.Process(context.Background(), task); attempt != 1 || err != nil {
		t.Fatalf("Process(reprocess) = %d, %v; want attempt 1, nil", attempt, err)
	}
	if !slices.Equal(r.results.reprocessed, []string{want}) || len(r.results.ready) != 1 || r.results.ready[0].PresetSet != want {
		t.Fatalf("BeginReprocess got %v, results %+v; want the preset set %s once and a result made with it", r.results.reprocessed, r.results.ready, want)
	}
	r.results.begin = func() (int, error) { return 0, imaging.ErrStale }
	if _, err := r.proc.Process(context.Background(), task); err != nil || len(r.results.ready) != 1 {
		t.Errorf("Process(stale reprocess) = %v with %d results, want nil and nothing recorded", err, len(r.results.ready))
	}
}

// TestPresetSet: the preset set changes with any preset or ladder setting
// or compressor output setting, and only with them. The default's is the
// one recorded on images before compressor settings counted (so a default
// install has nothing to reprocess for them).
func TestPresetSet(t *testing.T) {
	base := imaging.DefaultConfig()
	set := base.PresetSet()
	if set != "f12e6396f21c45a1" {
		t.Errorf("the default preset set is %s, want f12e6396f21c45a1 as before: every image made would need reprocessing", set)
	}
	other := base
	other.JobTimeout, other.Collect.Grace = time.Hour, time.Hour
	if other.PresetSet() != set {
		t.Errorf("PresetSet changed with the job timeout and grace")
	}
	for name, edit := range map[string]func(*imaging.Config){
		"a ladder width": func(c *imaging.Config) { c.Ladder.Widths = []int{320, 800} },
		"a quality":      func(c *imaging.Config) { c.Ladder.WebPQuality = 81 },
		"a preset":       func(c *imaging.Config) { c.Presets = c.Presets[:1] },
		"the compressor's background": func(c *imaging.Config) {
			c.CompressorOutput = []string{"background=#000000"}
		},
	} {
		c := imaging.DefaultConfig()
		edit(&c)
		if c.PresetSet() == set {
			t.Errorf("PresetSet did not change with %s", name)
		}
	}
}

// TestProcessFailures fails each step of a task in turn: a permanent
// failure is permanent whichever variant it hits, anything else is worth
// another attempt, and no result is recorded unless every variant was
// made. GiveUp records the failure's code.
func TestProcessFailures(t *testing.T) {
	notImage := imaging.Permanent(imaging.CodeNotAnImage, errors.New("vips: unsupported"))
	tests := []struct {
		name          string
		path          string
		compress      func(ctx context.Context, p imaging.Preset) error
		upload        func(data []byte) error
		readyErr      error
		wantCode      string
		wantPermanent bool
		wantUploads   int
	}{
		{name: "source gone", path: "/gone.png", wantCode: "source_not_found", wantPermanent: true},
		{name: "main not an image", path: "/a.png", compress: failOn("main", notImage),
			wantCode: imaging.CodeNotAnImage, wantPermanent: true},
		{name: "thumbnail not an image", path: "/a.png", compress: failOn("thumbnail", notImage),
			wantCode: imaging.CodeNotAnImage, wantPermanent: true},
		{name: "thumbnail out of memory", path: "/a.png", compress: failOn("thumbnail", errors.New("vips: out of memory")),
			wantCode: imaging.CodeInternal},
		{name: "sample not an image", path: "/a.png", compress: failOn("sample", notImage),
			wantCode: imaging.CodeNotAnImage, wantPermanent: true},
		{name: "thumbnail upload unavailable", path: "/a.png", upload: func(data []byte) error {
			if bytes.HasPrefix(data, []byte("thumbnail")) {
				return imaging.Transient("upload_failed", errors.New("s3: 503"))
			}
			return nil
		}, wantCode: "upload_failed", wantUploads: 1},
		{name: "result not recorded", path: "/a.png", readyErr: errors.New("database is down"),
			wantCode: imaging.CodeInternal, wantUploads: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, nil)
			r.compress.fail, r.upload.fail, r.results.readyErr = tt.compress, tt.upload, tt.readyErr
			r.results.begin = func() (int, error) { return 2, nil }
			task := r.task(tt.path)
			attempt, err := r.proc.Process(context.Background(), task)
			c, permanent := code(err)
			if attempt != 2 || err == nil || c != tt.wantCode || permanent != tt.wantPermanent {
				t.Errorf("Process() = %d, %v (code %q, permanent %v); want attempt 2 failing with %q, permanent %v",
					attempt, err, c, permanent, tt.wantCode, tt.wantPermanent)
			}
			if len(r.upload.uploads) != tt.wantUploads || len(r.results.ready) != 0 {
				t.Errorf("Process() uploaded %d objects and recorded %v; want %d uploads and no result",
					len(r.upload.uploads), r.results.ready, tt.wantUploads)
			}
			if len(r.results.abandoned) != 0 {
				t.Errorf("Process() gave back attempts %v of a task that failed on its own", r.results.abandoned)
			}
			if err := r.proc.GiveUp(context.Background(), task, 3, err); err != nil {
				t.Fatalf("GiveUp() error = %v", err)
			}
			if want := []failure{{3, tt.wantCode}}; !cmp.Equal(r.results.failed, want, cmp.AllowUnexported(failure{})) {
				t.Errorf("GiveUp() recorded %+v, want %+v", r.results.failed, want)
			}
		})
	}
}

// failOn returns a Compressor failure for the preset named name.
func failOn(name string, err error) func(context.Context, imaging.Preset) error {
	return func(_ context.Context, p imaging.Preset) error {
		if p.Name == name {
			return err
		}
		return nil
	}
}

// TestProcessGivesBackAnAttemptCutShort stops the consumer (its context
// ends) while a task is compressed: the attempt is given back, with a
// context of its own, so that restarts do not use attempts up.
func TestProcessGivesBackAnAttemptCutShort(t *testing.T) {
	r := newRig(t, nil)
	r.results.begin = func() (int, error) { return 2, nil }
	ctx, cancel := context.WithCancel(context.Background())
	r.compress.fail = func(job context.Context, _ imaging.Preset) error {
		cancel()
		<-job.Done()
		return job.Err()
	}
	attempt, err := r.proc.Process(ctx, r.task("/a.png"))
	if attempt != 2 || !errors.Is(err, context.Canceled) {
		t.Errorf("Process() = %d, %v; want attempt 2 ending with context.Canceled", attempt, err)
	}
	if want := []abandon{{2, nil}}; !cmp.Equal(r.results.abandoned, want, cmp.AllowUnexported(abandon{})) {
		t.Errorf("Abandon() calls %+v, want %+v", r.results.abandoned, want)
	}
}

// TestProcessTimesOut lets a task run past imaging.job_timeout: the attempt
// counts (the consumer did not stop it) and its code is timeout.
func TestProcessTimesOut(t *testing.T) {
	r := newRig(t, func(c *imaging.Config) { c.JobTimeout = time.Second })
	r.compress.fail = func(job context.Context, _ imaging.Preset) error {
		<-job.Done()
		return job.Err()
	}
	attempt, err := r.proc.Process(context.Background(), r.task("/a.png"))
	if c, permanent := code(err); attempt != 1 || c != "timeout" || permanent {
		t.Errorf("Process() = %d, %v (code %q, permanent %v); want attempt 1 failing with a transient timeout", attempt, err, c, permanent)
	}
	if len(r.results.abandoned) != 0 {
		t.Errorf("Process() gave back attempts %v after a timeout", r.results.abandoned)
	}
}
