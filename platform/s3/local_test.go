package s3_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/s3"
)

// runLocal starts a LocalServer on dir and returns a config for it and a
// function that stops it and waits for Run to return.
func runLocal(t *testing.T, dir string) (s3.Config, func()) {
	t.Helper()
	srv, err := s3.NewLocalServer(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatalf("NewLocalServer(%s) = %v", dir, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("LocalServer.Run() = %v, want nil after ctx ends", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("LocalServer.Run() did not return 10s after ctx ended")
		}
	}
	t.Cleanup(stop)
	cfg := s3.Config{
		Endpoint:        srv.URL(),
		Region:          "us-east-1",
		Bucket:          "pms-dev",
		AccessKeyID:     "dev",
		SecretAccessKey: "dev-secret",
		UsePathStyle:    true,
		Timeout:         5 * time.Second,
		MaxAttempts:     2,
		CreateBucket:    true,
	}
	return cfg, stop
}

func TestLocalServerPersists(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := pngBytes(t, 4)
	key := imaging.ObjectKey(imaging.Output{Data: data, Format: imaging.FormatPNG})

	cfg, stop := runLocal(t, dir)
	u := newUploader(t, cfg)
	url, err := u.Upload(context.Background(), key, data, "image/png")
	if err != nil {
		t.Fatalf("Upload(%s) = %v", key, err)
	}
	if body, ct := httpGet(t, url); !bytes.Equal(body, data) || ct != "image/png" {
		t.Errorf("http.Get(%s) = %d bytes, %q; want the %d uploaded bytes, image/png", url, len(body), ct, len(data))
	}
	stop()

	cfg, _ = runLocal(t, dir) // another port, same directory
	u = newUploader(t, cfg)
	if err := u.Check(context.Background()); err != nil {
		t.Fatalf("Check() after restart = %v, want nil", err)
	}
	url = u.URL(key)
	if body, ct := httpGet(t, url); !bytes.Equal(body, data) || ct != "image/png" {
		t.Errorf("after restart, http.Get(%s) = %d bytes, %q; want the %d uploaded bytes, image/png",
			url, len(body), ct, len(data))
	}
}

func TestNewLocalServerRefusesPublicAddress(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0", "192.0.2.1:0", "nonsense"} {
		if srv, err := s3.NewLocalServer(t.TempDir(), addr); err == nil {
			t.Errorf("NewLocalServer(dir, %q) = %s, nil; want an error", addr, srv.Addr())
		}
	}
}
