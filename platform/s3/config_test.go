package s3_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pms-dev/pms/platform/s3"
)

func validConfig() s3.Config {
	return s3.Config{
		Endpoint:        "http://127.0.0.1:9000",
		Region:          "us-east-1",
		Bucket:          "pms-images",
		AccessKeyID:     "key",
		SecretAccessKey: "top-secret",
		UsePathStyle:    true,
		Timeout:         10 * time.Second,
		MaxAttempts:     2,
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*s3.Config)
		want string // "" when valid
	}{
		{"ok", func(*s3.Config) {}, ""},
		{"aws with default credentials", func(c *s3.Config) { c.Endpoint = ""; c.AccessKeyID = ""; c.SecretAccessKey = "" }, ""},
		{"https endpoint with path", func(c *s3.Config) { c.Endpoint = "https://s3.example.com/base/" }, ""},
		{"cdn public url", func(c *s3.Config) { c.PublicURL = "https://cdn.example.com/images" }, ""},
		{"endpoint not a url", func(c *s3.Config) { c.Endpoint = "127.0.0.1:9000" },
			"s3.endpoint: must be an http(s) URL without credentials, query or fragment"},
		{"endpoint with credentials", func(c *s3.Config) { c.Endpoint = "http://key:top-secret@127.0.0.1:9000" },
			"s3.endpoint: must be an http(s) URL without credentials, query or fragment"},
		{"endpoint with query", func(c *s3.Config) { c.Endpoint = "http://127.0.0.1:9000?x=1" },
			"s3.endpoint: must be an http(s) URL without credentials, query or fragment"},
		{"public url ftp", func(c *s3.Config) { c.PublicURL = "ftp://cdn.example.com" },
			"s3.public_url: must be an http(s) URL without credentials, query or fragment"},
		{"no region", func(c *s3.Config) { c.Region = "" }, "s3.region: required"},
		{"no bucket", func(c *s3.Config) { c.Bucket = "" },
			"s3.bucket: must be 3-63 lower-case letters, digits, dots or hyphens"},
		{"upper-case bucket", func(c *s3.Config) { c.Bucket = "Images" },
			"s3.bucket: must be 3-63 lower-case letters, digits, dots or hyphens"},
		{"secret without key id", func(c *s3.Config) { c.AccessKeyID = "" },
			"s3.access_key_id, secret_access_key: set both or neither"},
		{"key id without secret", func(c *s3.Config) { c.SecretAccessKey = "" },
			"s3.access_key_id, secret_access_key: set both or neither"},
		{"zero timeout", func(c *s3.Config) { c.Timeout = 0 }, "s3.timeout: must be positive"},
		{"zero attempts", func(c *s3.Config) { c.MaxAttempts = 0 }, "s3.max_attempts: must be between 1 and 5"},
		{"many attempts", func(c *s3.Config) { c.MaxAttempts = 10 }, "s3.max_attempts: must be between 1 and 5"},
		{"everything wrong", func(c *s3.Config) { *c = s3.Config{SecretAccessKey: "top-secret"} }, strings.Join([]string{
			"s3.region: required",
			"s3.bucket: must be 3-63 lower-case letters, digits, dots or hyphens",
			"s3.access_key_id, secret_access_key: set both or neither",
			"s3.timeout: must be positive",
			"s3.max_attempts: must be between 1 and 5",
		}, "\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.edit(&cfg)
			got := errText(cfg.Validate())
			if got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
			if strings.Contains(got, "top-secret") {
				t.Errorf("Validate() = %q, contains the secret", got)
			}
		})
	}
}
