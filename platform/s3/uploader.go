package s3

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// maxBackoff caps the SDK's wait between attempts of one call, so a failing
// call returns to the worker (whose backoff is the one that matters) quickly.
const maxBackoff = 2 * time.Second

// Uploader puts objects into one bucket. It is safe for concurrent use.
type Uploader struct {
	client       *awss3.Client
	bucket       string
	baseURL      string // no trailing slash
	cacheControl string
}

// New validates cfg and returns an Uploader. It talks to S3 only when
// cfg.CreateBucket is set (to create a missing bucket), so a server that is
// down at start-up only makes uploads and Check fail until it is back.
func New(ctx context.Context, cfg Config) (*Uploader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client, err := newClient(ctx, cfg)
	if err != nil {
		return nil, err
	}
	u := &Uploader{
		client:       client,
		bucket:       cfg.Bucket,
		baseURL:      publicBase(cfg),
		cacheControl: cfg.CacheControl,
	}
	if u.cacheControl == "" {
		u.cacheControl = DefaultCacheControl
	}
	if cfg.CreateBucket {
		if err := u.createBucket(ctx, cfg); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// newClient builds the SDK client from cfg alone: the AWS environment and
// shared files are read only for credentials, and only when cfg has none.
func newClient(ctx context.Context, cfg Config) (*awss3.Client, error) {
	var creds aws.CredentialsProvider
	if cfg.AccessKeyID != "" {
		creds = credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")
	} else {
		ac, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(cfg.Region))
		if err != nil {
			return nil, fmt.Errorf("load default aws credentials: %w", err)
		}
		creds = ac.Credentials
	}
	opts := awss3.Options{
		Region:       cfg.Region,
		Credentials:  creds,
		UsePathStyle: cfg.UsePathStyle,
		HTTPClient:   newHTTPClient(cfg.Timeout),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = cfg.MaxAttempts
			o.MaxBackoff = maxBackoff
			// The token bucket would turn a long outage into "quota
			// exceeded" errors that outlive it; the worker paces retries.
			o.RateLimiter = ratelimit.None
		}),
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(cfg.Endpoint)
		// Other S3 implementations reject or mangle the flexible checksums
		// (aws-chunked trailers) that the SDK sends to AWS by default.
		opts.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		opts.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}
	return awss3.New(opts), nil
}

func newHTTPClient(timeout time.Duration) *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithTimeout(timeout).
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 5 * time.Second }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSHandshakeTimeout = 5 * time.Second
			tr.ResponseHeaderTimeout = timeout
			tr.MaxIdleConnsPerHost = 32
			tr.IdleConnTimeout = 90 * time.Second
		})
}

// publicBase returns the base of object URLs, without a trailing slash.
func publicBase(cfg Config) string {
	switch {
	case cfg.PublicURL != "":
		return strings.TrimRight(cfg.PublicURL, "/")
	case cfg.Endpoint != "" && cfg.UsePathStyle:
		return strings.TrimRight(cfg.Endpoint, "/") + "/" + cfg.Bucket
	case cfg.Endpoint != "":
		e, _ := url.Parse(cfg.Endpoint) // Validate parsed it
		e.Host = cfg.Bucket + "." + e.Host
		return strings.TrimRight(e.String(), "/")
	case cfg.UsePathStyle:
		return "https://s3." + cfg.Region + ".amazonaws.com/" + cfg.Bucket
	default:
		return "https://" + cfg.Bucket + ".s3." + cfg.Region + ".amazonaws.com"
	}
}

// Upload puts data at key with the given Content-Type and the configured
// Cache-Control, replacing any object there, and returns the object's public
// URL. Every error is an imaging.Transient failure (see classify): a store
// that refuses writes is a fault of the deployment, not of the image, so the
// task is retried and finally dead-lettered instead of the image being marked
// failed for good.
func (u *Uploader) Upload(ctx context.Context, key string, data []byte, contentType string) (string, error) {
	_, err := u.client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket: aws.String(u.bucket),
		Key:    aws.String(key),
		// A bytes.Reader is seekable, which the SDK needs to sign (and
		// retry) a body sent over plain HTTP.
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String(contentType),
		CacheControl:  aws.String(u.cacheControl),
	})
	if err != nil {
		return "", classify(fmt.Errorf("put s3 object %s: %w", key, err))
	}
	return u.URL(key), nil
}

// Remove deletes the object at key; one that is gone already is no error
// (S3's DeleteObject says the same either way). Its errors are those of
// Upload.
func (u *Uploader) Remove(ctx context.Context, key string) error {
	_, err := u.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(u.bucket), Key: aws.String(key)})
	if err != nil {
		return classify(fmt.Errorf("delete s3 object %s: %w", key, err))
	}
	return nil
}

// Check returns nil when the bucket exists and the credentials may use it
// (HeadBucket; on AWS that needs s3:ListBucket), for readiness probes;
// otherwise a transient failure like Upload's.
func (u *Uploader) Check(ctx context.Context) error {
	if _, err := u.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(u.bucket)}); err != nil {
		return classify(fmt.Errorf("head s3 bucket %s: %w", u.bucket, err))
	}
	return nil
}

// URL returns the public URL of the object at key. Each path segment of the
// key is escaped; "/" separates them.
func (u *Uploader) URL(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return u.baseURL + "/" + strings.Join(segs, "/")
}

// createBucket creates the bucket unless it exists already.
func (u *Uploader) createBucket(ctx context.Context, cfg Config) error {
	if _, err := u.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(u.bucket)}); err == nil {
		return nil
	}
	in := &awss3.CreateBucketInput{Bucket: aws.String(u.bucket)}
	// AWS wants the region named except in us-east-1; other servers may
	// refuse a constraint they do not know.
	if cfg.Endpoint == "" && cfg.Region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(cfg.Region),
		}
	}
	if _, err := u.client.CreateBucket(ctx, in); err != nil {
		// Someone else may have created it meanwhile; servers disagree on
		// how they say so.
		if _, herr := u.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(u.bucket)}); herr == nil {
			return nil
		}
		return classify(fmt.Errorf("create s3 bucket %s: %w", u.bucket, err))
	}
	return nil
}
