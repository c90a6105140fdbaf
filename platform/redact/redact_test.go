package redact_test

import (
	"strings"
	"testing"

	"github.com/pms-dev/pms/platform/redact"
)

func TestURL(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		// User info.
		{"password in user info", "postgres://pms:hunter2@db:5432/pms", "postgres://pms:REDACTED@db:5432/pms"},
		{"escaped password in user info", "postgres://pms:hun%40ter2%2F@db/pms", "postgres://pms:REDACTED@db/pms"},
		{"password without user", "redis://:hunter2@cache:6379/0", "redis://:REDACTED@cache:6379/0"},
		{"user without password", "postgres://pms@db/pms?sslmode=disable", "postgres://pms@db/pms?sslmode=disable"},
		{"user info without //", "pms:hunter2@db:5432", "pms:REDACTED@db:5432"},

		// Query parameters.
		{"password parameter", "postgres://pms@db/pms?sslmode=disable&password=hunter2", "postgres://pms@db/pms?sslmode=disable&password=REDACTED"},
		{"sslpassword parameter", "postgres://db/pms?sslpassword=hunter2&sslcert=/c.pem", "postgres://db/pms?sslpassword=REDACTED&sslcert=/c.pem"},
		{"parameter name in capitals", "postgres://db/pms?PASSWORD=hunter2", "postgres://db/pms?PASSWORD=REDACTED"},
		{"parameter name escaped", "postgres://db/pms?pass%77ord=hunter2", "postgres://db/pms?pass%77ord=REDACTED"},
		{"parameter given twice", "postgres://db/pms?password=a&password=hunter2", "postgres://db/pms?password=REDACTED&password=REDACTED"},
		{"both user info and parameter", "postgres://u:hunter2@db/pms?password=hunter2", "postgres://u:REDACTED@db/pms?password=REDACTED"},
		{"secret", "https://h/p?client_secret=hunter2&x=1", "https://h/p?client_secret=REDACTED&x=1"},
		{"token", "https://h/p?token=hunter2", "https://h/p?token=REDACTED"},
		{"access_key", "https://h/p?access_key=hunter2", "https://h/p?access_key=REDACTED"},
		{"api-key", "https://h/p?api-key=hunter2", "https://h/p?api-key=REDACTED"},
		{"S3 presigned", "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F1&X-Amz-Security-Token=hunter2&X-Amz-Signature=hunter2&X-Amz-Expires=60",
			"https://b.s3.amazonaws.com/k?X-Amz-Credential=REDACTED&X-Amz-Security-Token=REDACTED&X-Amz-Signature=REDACTED&X-Amz-Expires=60"},
		{"Azure SAS sig", "https://a.blob.core.windows.net/c/b?sp=r&sig=hunter2", "https://a.blob.core.windows.net/c/b?sp=r&sig=REDACTED"},
		{"fragment token", "https://h/cb#access_token=hunter2&state=1", "https://h/cb#access_token=REDACTED&state=1"},
		{"relative with query", "/path?token=hunter2", "/path?token=REDACTED"},
		{"nothing secret", "https://s3.example.com/bucket?x=1", "https://s3.example.com/bucket?x=1"},

		// key=value connection strings.
		{"key=value", "host=db password=hunter2 dbname=pms", "host=db password=REDACTED dbname=pms"},
		{"key=value quoted", "host=db password='hun ter2' user=pms", "host=db password=REDACTED user=pms"},
		{"key=value escaped quote", `password='it\'s hunter2' host=db`, "password=REDACTED host=db"},
		{"key=value spaces around =", "host = db password = hunter2", "host = db password = REDACTED"},
		{"key=value sslpassword", "host=db sslpassword=hunter2 sslmode=verify-full", "host=db sslpassword=REDACTED sslmode=verify-full"},
		{"key=value unterminated quote", "host=db password='hunter2", "host=db password=REDACTED"},
		{"key=value unterminated before a secret", "host='db password=hunter2", "host=REDACTED"},
		{"key=value then a stray word", "host=db hunter2", "host=db REDACTED"},
		{"key=value with a backslash", `password=hun\ ter2 host=db`, "password=REDACTED host=db"},

		// What cannot be read is masked.
		{"unparsable URL", "postgres://u:hunter2@db:port/pms", "postgres://REDACTED"},
		{"bad scheme", " postgres://u:hunter2@db/pms", "REDACTED"},

		// What holds no credential stays.
		{"host:port", "127.0.0.1:6379", "127.0.0.1:6379"},
		{"name:port", "localhost:6379", "localhost:6379"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redact.URL(tt.in)
			if got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if strings.Contains(got, "hunter2") || strings.Contains(got, "hun%40ter2") {
				t.Errorf("URL(%q) = %q, which holds the secret", tt.in, got)
			}
		})
	}
}

func TestSensitive(t *testing.T) {
	for name, want := range map[string]bool{
		"password": true, "sslpassword": true, "PassWord": true, "passfile": true, "pwd": true,
		"secret": true, "secret_access_key": true, "token": true, "X-Amz-Security-Token": true,
		"access_key": true, "sslkey": true, "X-Amz-Signature": true, "sig": true, "auth": true,
		"sslmode": false, "host": false, "user": false, "dbname": false, "connect_timeout": false,
		"application_name": false, "X-Amz-Expires": false,
	} {
		if got := redact.Sensitive(name); got != want {
			t.Errorf("Sensitive(%q) = %v, want %v", name, got, want)
		}
	}
}
