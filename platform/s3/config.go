// Package s3 stores compressed images in an S3-compatible bucket with
// aws-sdk-go-v2, and runs a local S3 server for development.
package s3

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"github.com/pms-dev/pms/platform/redact"
)

// DefaultCacheControl is the Cache-Control sent with every object when the
// config names none. Keys are content-addressed, so objects never change.
const DefaultCacheControl = "public, max-age=31536000, immutable"

// maxAttemptsLimit keeps the SDK retryer small: the worker has its own retry
// policy around each task, and the two multiply.
const maxAttemptsLimit = 5

// Config says where objects go and how they are served.
type Config struct {
	// Endpoint is the base URL of a non-AWS S3 server; "" means AWS.
	Endpoint string `mapstructure:"endpoint"`
	Region   string `mapstructure:"region"`
	Bucket   string `mapstructure:"bucket"`
	// AccessKeyID and SecretAccessKey are static credentials; both "" means
	// the default AWS credential chain (environment, shared files, IAM role).
	AccessKeyID     string `mapstructure:"access_key_id"`
	SecretAccessKey string `mapstructure:"secret_access_key"`
	UsePathStyle    bool   `mapstructure:"use_path_style"`
	// PublicURL is the base of object URLs (the bucket's URL or a CDN); ""
	// means Endpoint/Bucket (path style), bucket.host of Endpoint (virtual
	// hosts) or https://Bucket.s3.Region.amazonaws.com (AWS).
	PublicURL string `mapstructure:"public_url"`
	// CacheControl is sent with every object; "" means DefaultCacheControl.
	CacheControl string `mapstructure:"cache_control"`
	// Timeout bounds each HTTP request to S3 (each attempt of a call).
	Timeout time.Duration `mapstructure:"timeout"`
	// MaxAttempts is how many times the SDK tries one call, counting the
	// first; keep it small, since the worker retries whole tasks.
	MaxAttempts int `mapstructure:"max_attempts"`
	// CreateBucket makes New create the bucket if it is missing; for
	// development.
	CreateBucket bool `mapstructure:"create_bucket"`
}

// DefaultConfig returns the defaults of every setting: AWS in us-east-1,
// with the default credential chain.
func DefaultConfig() Config {
	return Config{Region: "us-east-1", Bucket: "pms-images", CacheControl: DefaultCacheControl, Timeout: 30 * time.Second, MaxAttempts: 2}
}

// bucketName is the S3 rule for new buckets, without the rarer exclusions.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// Validate reports every problem with the config. Its messages never contain
// the credentials, nor URLs that could carry them.
func (c Config) Validate() error {
	var errs []error
	if c.Endpoint != "" && !isBaseURL(c.Endpoint) {
		errs = append(errs, errors.New("s3.endpoint: must be an http(s) URL without credentials, query or fragment"))
	}
	if c.PublicURL != "" && !isBaseURL(c.PublicURL) {
		errs = append(errs, errors.New("s3.public_url: must be an http(s) URL without credentials, query or fragment"))
	}
	if c.Region == "" {
		errs = append(errs, errors.New("s3.region: required"))
	}
	if !bucketName.MatchString(c.Bucket) {
		errs = append(errs, errors.New("s3.bucket: must be 3-63 lower-case letters, digits, dots or hyphens"))
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		errs = append(errs, errors.New("s3.access_key_id, secret_access_key: set both or neither"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("s3.timeout: must be positive"))
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > maxAttemptsLimit {
		errs = append(errs, fmt.Errorf("s3.max_attempts: must be between 1 and %d", maxAttemptsLimit))
	}
	return errors.Join(errs...)
}

// String describes the config with the secret redacted, so that logging a
// Config by accident leaks nothing.
func (c Config) String() string {
	secret := ""
	if c.SecretAccessKey != "" {
		secret = redact.Mask
	}
	return fmt.Sprintf("{Endpoint:%s Region:%s Bucket:%s AccessKeyID:%s SecretAccessKey:%s UsePathStyle:%t "+
		"PublicURL:%s CacheControl:%s Timeout:%s MaxAttempts:%d CreateBucket:%t}",
		redact.URL(c.Endpoint), c.Region, c.Bucket, c.AccessKeyID, secret, c.UsePathStyle,
		redact.URL(c.PublicURL), c.CacheControl, c.Timeout, c.MaxAttempts, c.CreateBucket)
}

// GoString is String, so that %#v redacts too.
func (c Config) GoString() string { return c.String() }

// isBaseURL reports whether s is an absolute http(s) URL with a host and
// nothing that would break appending a path or leak a password.
func isBaseURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.User == nil && u.RawQuery == "" && u.Fragment == "" && !u.ForceQuery
}
