// Package s3test gives tests an in-process S3 server (gofakes3 with a memory
// backend) that can be told to fail, and reads objects back from it.
package s3test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/pms-dev/pms/platform/s3"
)

// Bucket is the bucket New creates.
const Bucket = "pms-test"

// Credentials New puts in the config. gofakes3 checks no signatures.
const (
	AccessKeyID     = "pms-test-key"
	SecretAccessKey = "pms-test-secret-do-not-leak"
)

// unavailable is the body of an injected failure, as S3 words a 503.
const unavailable = `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>ServiceUnavailable</Code><Message>injected by s3test</Message><RequestId>s3test</RequestId></Error>`

// Server is a running in-process S3 server.
type Server struct {
	srv       *httptest.Server
	cfg       s3.Config
	failNext  atomic.Int64
	requests  atomic.Int64
	closeOnce sync.Once
}

// New starts a server on 127.0.0.1 with Bucket created, stopped when the test
// ends, and returns an s3.Config for it: path style, static credentials,
// Timeout 5s, MaxAttempts 2.
func New(tb testing.TB) (s3.Config, *Server) {
	tb.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(Bucket); err != nil {
		tb.Fatalf("create test bucket: %v", err)
	}
	s := &Server{}
	fake := gofakes3.New(backend).Server()
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if s.failNext.Add(-1) >= 0 {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, unavailable)
			return
		}
		fake.ServeHTTP(w, r)
	}))
	tb.Cleanup(s.Close)
	cfg := s3.Config{
		Endpoint:        s.srv.URL,
		Region:          "us-east-1",
		Bucket:          Bucket,
		AccessKeyID:     AccessKeyID,
		SecretAccessKey: SecretAccessKey,
		UsePathStyle:    true,
		Timeout:         5 * time.Second,
		MaxAttempts:     2,
	}
	s.cfg = cfg
	return cfg, s
}

// URL returns the server's base URL (the Config's Endpoint).
func (s *Server) URL() string { return s.srv.URL }

// Fail makes the next n requests fail with 503 ServiceUnavailable, whoever
// sends them (Object and Keys too); Fail(0) ends a run of failures. The SDK
// retries a 503, so one Upload consumes up to Config.MaxAttempts of them.
func (s *Server) Fail(n int) { s.failNext.Store(int64(n)) }

// Requests returns how many requests the server has received, failed ones
// included.
func (s *Server) Requests() int { return int(s.requests.Load()) }

// Close stops the server: later requests fail to connect. New registers it
// with tb.Cleanup; calling it again does nothing.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// Object is a stored object as read back with GetObject.
type Object struct {
	Data         []byte
	ContentType  string
	CacheControl string // always "" from gofakes3, which drops it
}

// Object reads the object at key in Bucket, failing the test if it cannot.
func (s *Server) Object(tb testing.TB, key string) Object {
	tb.Helper()
	return GetObject(tb, s.cfg, key)
}

// Keys returns the sorted keys in Bucket that start with prefix, failing the
// test if it cannot list them.
func (s *Server) Keys(tb testing.TB, prefix string) []string {
	tb.Helper()
	return ListKeys(tb, s.cfg, prefix)
}

// GetObject reads the object at key in cfg's bucket on any S3 server, with
// the SDK (one attempt), failing the test if it cannot.
func GetObject(tb testing.TB, cfg s3.Config, key string) Object {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := client(cfg).GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(key)})
	if err != nil {
		tb.Fatalf("get s3 object %s: %v", key, err)
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(out.Body); err != nil {
		tb.Fatalf("read s3 object %s: %v", key, err)
	}
	return Object{
		Data:         buf.Bytes(),
		ContentType:  aws.ToString(out.ContentType),
		CacheControl: aws.ToString(out.CacheControl),
	}
}

// ListKeys returns the sorted keys in cfg's bucket on any S3 server that
// start with prefix, failing the test if it cannot list them.
func ListKeys(tb testing.TB, cfg s3.Config, prefix string) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	p := awss3.NewListObjectsV2Paginator(client(cfg), &awss3.ListObjectsV2Input{
		Bucket: aws.String(cfg.Bucket), Prefix: aws.String(prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			tb.Fatalf("list s3 objects under %q: %v", prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	sort.Strings(keys)
	return keys
}

// client returns an SDK client for a test server described by cfg (an
// endpoint with static credentials).
func client(cfg s3.Config) *awss3.Client {
	return awss3.New(awss3.Options{
		Region:                     cfg.Region,
		BaseEndpoint:               aws.String(cfg.Endpoint),
		UsePathStyle:               cfg.UsePathStyle,
		Credentials:                credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		RetryMaxAttempts:           1,
	})
}
