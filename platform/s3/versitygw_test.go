//go:build versitygw

// These tests need versitygw, a real S3 gateway that checks SigV4 signatures
// and keeps Cache-Control (gofakes3 does neither). Building it takes minutes,
// so they run under `make test-versitygw`, not `make test`.

package s3_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/s3"
	"github.com/pms-dev/pms/platform/s3/s3test"
)

// versitygw returns a config for a fresh versitygw (a gateway that checks
// SigV4 signatures and keeps Cache-Control, unlike gofakes3) on a private
// directory. It fails when the binary is not installed:
//
//	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
func versitygw(t *testing.T) s3.Config {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs versitygw")
	}
	bin, err := exec.LookPath("versitygw")
	if err != nil {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, "go", "bin", "versitygw")
		if _, err := os.Stat(bin); err != nil {
			t.Fatal("versitygw is not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()

	const access, secret = "vgw-test-key", "vgw-test-secret-do-not-leak"
	var out bytes.Buffer
	cmd := exec.Command(bin, "--access", access, "--secret", secret, "--port", addr, "--quiet", "posix", t.TempDir())
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not listen on %s within 10s; output:\n%s", addr, out.String())
		}
	}
	return s3.Config{
		Endpoint:        "http://" + addr,
		Region:          "us-east-1",
		Bucket:          "pms-vgw",
		AccessKeyID:     access,
		SecretAccessKey: secret,
		UsePathStyle:    true,
		Timeout:         5 * time.Second,
		MaxAttempts:     2,
		CreateBucket:    true,
	}
}

func TestVersitygw(t *testing.T) {
	t.Parallel()
	cfg := versitygw(t)
	u := newUploader(t, cfg)
	if err := u.Check(context.Background()); err != nil {
		t.Fatalf("Check() = %v, want nil", err)
	}
	data := pngBytes(t, 5)
	key := imaging.ObjectKey(imaging.Output{Data: data, Format: imaging.FormatPNG})
	if _, err := u.Upload(context.Background(), key, data, "image/png"); err != nil {
		t.Fatalf("Upload(%s) = %v", key, err)
	}
	got := s3test.GetObject(t, cfg, key)
	if !bytes.Equal(got.Data, data) || got.ContentType != "image/png" || got.CacheControl != s3.DefaultCacheControl {
		t.Errorf("GetObject(%s) = %d bytes, %q, %q; want the %d uploaded bytes, image/png, %q",
			key, len(got.Data), got.ContentType, got.CacheControl, len(data), s3.DefaultCacheControl)
	}

	wrong := cfg
	wrong.SecretAccessKey = "wrong-secret-do-not-leak"
	wrong.CreateBucket = false
	_, err := newUploader(t, wrong).Upload(context.Background(), key, data, "image/png")
	if err == nil {
		t.Fatal("Upload() with a wrong secret = nil, want an error")
	}
	if f := failure(t, err); f.Code != s3.CodeRejected {
		t.Errorf("Upload() with a wrong secret = code %q, want %q (%v)", f.Code, s3.CodeRejected, err)
	}
	for _, s := range []string{cfg.SecretAccessKey, wrong.SecretAccessKey} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("Upload() with a wrong secret = %q, contains a secret", err)
		}
	}
}
