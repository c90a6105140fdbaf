package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/s3"
	"github.com/pms-dev/pms/platform/s3/s3test"
)

// pngBytes returns a small PNG whose pixels depend on seed.
func pngBytes(t *testing.T, seed uint8) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = seed + uint8(i)
	}
	img.Set(0, 0, color.RGBA{R: seed, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatalf("encode png: %v", err)
	}
	return buf.Bytes()
}

func newUploader(t *testing.T, cfg s3.Config) *s3.Uploader {
	t.Helper()
	u, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("s3.New(%v) = %v", cfg, err)
	}
	return u
}

// failure returns the *imaging.Failure in err's chain, failing the test if
// there is none or if it is permanent.
func failure(t *testing.T, err error) *imaging.Failure {
	t.Helper()
	var f *imaging.Failure
	if !errors.As(err, &f) {
		t.Fatalf("error %v is not an *imaging.Failure", err)
	}
	if f.Permanent || errors.Is(err, imaging.ErrPermanent) {
		t.Errorf("error %v is permanent, want transient", err)
	}
	return f
}

func httpGet(t *testing.T, url string) (body []byte, contentType string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %s %q, want 200", url, resp.Status, body)
	}
	return body, resp.Header.Get("Content-Type")
}

func TestUploadReadBack(t *testing.T) {
	t.Parallel()
	cfg, srv := s3test.New(t)
	u := newUploader(t, cfg)
	data := pngBytes(t, 1)
	key := imaging.ObjectKey(imaging.Output{Data: data, Format: imaging.FormatPNG})

	url, err := u.Upload(context.Background(), key, data, "image/png")
	if err != nil {
		t.Fatalf("Upload(%s) = %v", key, err)
	}
	if want := srv.URL() + "/" + s3test.Bucket + "/" + key; url != want {
		t.Errorf("Upload(%s) URL = %q, want %q", key, url, want)
	}

	got := srv.Object(t, key)
	if !bytes.Equal(got.Data, data) || got.ContentType != "image/png" {
		t.Errorf("GetObject(%s) = %d bytes, %q; want the %d uploaded bytes, image/png",
			key, len(got.Data), got.ContentType, len(data))
	}
	// A browser opens the URL without credentials.
	body, ct := httpGet(t, url)
	if !bytes.Equal(body, data) || ct != "image/png" {
		t.Errorf("http.Get(%s) = %d bytes, %q; want the %d uploaded bytes, image/png", url, len(body), ct, len(data))
	}
}

// TestRemove: Remove deletes an object, and removing it again (or one that
// never was) is no error; a server that fails is a transient failure.
func TestRemove(t *testing.T) {
	t.Parallel()
	cfg, srv := s3test.New(t)
	u := newUploader(t, cfg)
	ctx := context.Background()
	data := pngBytes(t, 3)
	key := imaging.ObjectKey(imaging.Output{Data: data, Format: imaging.FormatPNG})
	if _, err := u.Upload(ctx, key, data, "image/png"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := u.Remove(ctx, key); err != nil {
			t.Fatalf("Remove #%d = %v", i+1, err)
		}
	}
	if keys := srv.Keys(t, "images/"); len(keys) != 0 {
		t.Errorf("keys after Remove = %v, want none", keys)
	}
	srv.Fail(10)
	err := u.Remove(ctx, key)
	if imaging.FailureCode(err) != s3.CodeUnavailable || errors.Is(err, imaging.ErrPermanent) {
		t.Errorf("Remove on a failing server = %v, want a transient %s", err, s3.CodeUnavailable)
	}
}

func TestUploadSameContentIsOneObject(t *testing.T) {
	t.Parallel()
	cfg, srv := s3test.New(t)
	u := newUploader(t, cfg)
	data := pngBytes(t, 2)

	var urls []string
	for range 2 {
		key := imaging.ObjectKey(imaging.Output{Data: data, Format: imaging.FormatPNG})
		url, err := u.Upload(context.Background(), key, data, "image/png")
		if err != nil {
			t.Fatalf("Upload(%s) = %v", key, err)
		}
		urls = append(urls, url)
	}
	if urls[0] != urls[1] {
		t.Errorf("Upload of the same bytes twice gave URLs %q and %q, want equal", urls[0], urls[1])
	}
	prefix := "images/"
	want := []string{imaging.ObjectKey(imaging.Output{Data: data, Format: imaging.FormatPNG})}
	if diff := cmp.Diff(want, srv.Keys(t, prefix)); diff != "" {
		t.Errorf("keys under %s after two uploads (-want +got):\n%s", prefix, diff)
	}
}

func TestURL(t *testing.T) {
	t.Parallel()
	base := s3.Config{Region: "eu-west-1", Bucket: "imgs", AccessKeyID: "k", SecretAccessKey: "s",
		Timeout: time.Second, MaxAttempts: 2}
	tests := []struct {
		name string
		edit func(*s3.Config)
		key  string
		want string
	}{
		{"aws", func(*s3.Config) {}, "a/b.jpg", "https://imgs.s3.eu-west-1.amazonaws.com/a/b.jpg"},
		{"aws path style", func(c *s3.Config) { c.UsePathStyle = true }, "a/b.jpg",
			"https://s3.eu-west-1.amazonaws.com/imgs/a/b.jpg"},
		{"endpoint path style", func(c *s3.Config) { c.Endpoint = "http://127.0.0.1:9000/"; c.UsePathStyle = true },
			"a/b.jpg", "http://127.0.0.1:9000/imgs/a/b.jpg"},
		{"endpoint virtual host", func(c *s3.Config) { c.Endpoint = "https://storage.example.com" }, "a/b.jpg",
			"https://imgs.storage.example.com/a/b.jpg"},
		{"public url wins", func(c *s3.Config) { c.Endpoint = "http://minio:9000"; c.PublicURL = "https://cdn.example.com/x/" },
			"a/b.jpg", "https://cdn.example.com/x/a/b.jpg"},
		{"escapes segments", func(*s3.Config) {}, "a b/c?d.jpg", "https://imgs.s3.eu-west-1.amazonaws.com/a%20b/c%3Fd.jpg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.edit(&cfg)
			if got := newUploader(t, cfg).URL(tt.key); got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	cfg, srv := s3test.New(t)
	u := newUploader(t, cfg)
	if err := u.Check(context.Background()); err != nil {
		t.Fatalf("Check() = %v, want nil", err)
	}

	other := cfg
	other.Bucket = "missing-bucket"
	err := newUploader(t, other).Check(context.Background())
	if err == nil {
		t.Fatal("Check() of a missing bucket = nil, want an error")
	}
	if f := failure(t, err); f.Code != s3.CodeRejected {
		t.Errorf("Check() of a missing bucket = code %q, want %q", f.Code, s3.CodeRejected)
	}

	srv.Close()
	err = u.Check(context.Background())
	if err == nil {
		t.Fatal("Check() with the server down = nil, want an error")
	}
	if f := failure(t, err); f.Code != s3.CodeUnavailable {
		t.Errorf("Check() with the server down = code %q, want %q", f.Code, s3.CodeUnavailable)
	}
}

func TestCreateBucket(t *testing.T) {
	t.Parallel()
	cfg, _ := s3test.New(t)
	cfg.Bucket = "created-bucket"
	cfg.CreateBucket = true
	for range 2 { // the second time, the bucket exists
		u := newUploader(t, cfg)
		if err := u.Check(context.Background()); err != nil {
			t.Fatalf("Check() after New with CreateBucket = %v, want nil", err)
		}
	}
	cfg.Bucket = "never-created"
	cfg.CreateBucket = false
	if err := newUploader(t, cfg).Check(context.Background()); err == nil {
		t.Errorf("Check() of a bucket New did not create = nil, want an error")
	}
}

func TestUploadUnavailable(t *testing.T) {
	t.Parallel()
	cfg, srv := s3test.New(t)
	u := newUploader(t, cfg)
	data := pngBytes(t, 3)
	key := imaging.ObjectKey(imaging.Output{Data: data, Format: imaging.FormatPNG})

	srv.Fail(1000)
	before := srv.Requests()
	start := time.Now()
	_, err := u.Upload(context.Background(), key, data, "image/png")
	took := time.Since(start)
	if err == nil {
		t.Fatal("Upload() while S3 answers 503 = nil, want an error")
	}
	if f := failure(t, err); f.Code != s3.CodeUnavailable {
		t.Errorf("Upload() while S3 answers 503 = code %q, want %q (%v)", f.Code, s3.CodeUnavailable, err)
	}
	if took > 5*time.Second {
		t.Errorf("Upload() while S3 answers 503 took %s, want under 5s", took)
	}
	if got := srv.Requests() - before; got != cfg.MaxAttempts {
		t.Errorf("Upload() while S3 answers 503 made %d requests, want MaxAttempts = %d", got, cfg.MaxAttempts)
	}

	// One 503 is absorbed by the SDK's second attempt.
	srv.Fail(1)
	if _, err := u.Upload(context.Background(), key, data, "image/png"); err != nil {
		t.Errorf("Upload() after a single 503 = %v, want nil", err)
	}
}

func TestUploadTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	cfg, _ := s3test.New(t)
	cfg.Endpoint = hang.URL
	cfg.Timeout = 200 * time.Millisecond
	cfg.MaxAttempts = 1

	start := time.Now()
	_, err := newUploader(t, cfg).Upload(context.Background(), "k.png", []byte("x"), "image/png")
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Upload() to a server that never answers took %s, want about Timeout (200ms)", took)
	}
	if err == nil {
		t.Fatal("Upload() to a server that never answers = nil, want an error")
	}
	if f := failure(t, err); f.Code != s3.CodeUnavailable {
		t.Errorf("Upload() to a server that never answers = code %q, want %q", f.Code, s3.CodeUnavailable)
	}
}

func TestUploadCancelled(t *testing.T) {
	t.Parallel()
	cfg, _ := s3test.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newUploader(t, cfg).Upload(ctx, "k.png", []byte("x"), "image/png")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Upload() with a cancelled context = %v, want context.Canceled", err)
	}
	failure(t, err)
}

func TestErrorsHideSecret(t *testing.T) {
	t.Parallel()
	cfg, _ := s3test.New(t)
	secret := cfg.SecretAccessKey

	down := cfg
	down.Endpoint = "http://127.0.0.1:1" // nothing listens on port 1
	down.MaxAttempts = 1
	_, errDown := newUploader(t, down).Upload(context.Background(), "k.png", []byte("x"), "image/png")

	wrongBucket := cfg
	wrongBucket.Bucket = "no-such-bucket"
	_, errBucket := newUploader(t, wrongBucket).Upload(context.Background(), "k.png", []byte("x"), "image/png")

	invalid := cfg
	invalid.Endpoint = "http://user:" + secret + "@127.0.0.1:1"
	invalid.AccessKeyID = ""
	_, errInvalid := s3.New(context.Background(), invalid)

	for name, err := range map[string]error{"wrong endpoint": errDown, "wrong bucket": errBucket, "invalid config": errInvalid} {
		if err == nil {
			t.Errorf("%s: error = nil, want an error", name)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error %q contains the secret access key", name, err)
		}
	}
	if f := failure(t, errBucket); f.Code != s3.CodeRejected {
		t.Errorf("Upload() to a missing bucket = code %q, want %q", f.Code, s3.CodeRejected)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if got := fmt.Sprintf(format, invalid); strings.Contains(got, secret) {
			t.Errorf("Sprintf(%q, cfg) = %q, contains the secret", format, got)
		}
	}
}

func TestConfigStringRedacts(t *testing.T) {
	t.Parallel()
	cfg, _ := s3test.New(t)
	if got := cfg.String(); strings.Contains(got, cfg.SecretAccessKey) || !strings.Contains(got, "SecretAccessKey:REDACTED") {
		t.Errorf("Config.String() = %q, want the secret shown as REDACTED", got)
	}
}
