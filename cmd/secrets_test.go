package cmd

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/platform/redis/redistest"
)

// Secrets the tests below configure; none may appear in a log or an error.
const (
	pgSecret    = "pg-secret-do-not-log"
	redisSecret = "redis-secret-do-not-log"
	s3Secret    = "s3-secret-do-not-log"
)

var secrets = []string{pgSecret, redisSecret, s3Secret}

// withPassword returns the database URL with the password in its user info
// and in a password= parameter, the two URL forms lib/pq reads.
func withPassword(t testing.TB, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), pgSecret)
	q := u.Query()
	q.Set("password", pgSecret)
	u.RawQuery = q.Encode()
	return u.String()
}

// wantNoSecret fails the test if text holds any of the secrets.
func wantNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s holds the secret %q:\n%s", what, s, text)
		}
	}
}

func TestConfigPrintsNoSecret(t *testing.T) {
	cfg, err := loadConfig(filepath.Join("..", "config.yaml"), envOf(map[string]string{
		"PMS_POSTGRES_URL":         withPassword(t, "postgres://pms@db:5432/pms?sslmode=disable"),
		"PMS_REDIS_PASSWORD":       redisSecret,
		"PMS_S3_ACCESS_KEY_ID":     "pms-key",
		"PMS_S3_SECRET_ACCESS_KEY": s3Secret,
	}))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		wantNoSecret(t, fmt.Sprintf("Sprintf(%q, cfg)", format), fmt.Sprintf(format, cfg))
	}
}

func TestConfigErrorsHoldNoSecret(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"key=value DSN":         {"PMS_POSTGRES_URL": "host=db password=" + pgSecret + " dbname=pms"},
		"unparsable URL":        {"PMS_POSTGRES_URL": "postgres://pms:" + pgSecret + "@db:port/pms"},
		"wrong scheme":          {"PMS_POSTGRES_URL": "mysql://pms:" + pgSecret + "@db/pms"},
		"legacy password, bad":  {"POSTGRES_PASSWORD": pgSecret, "PMS_REDIS_DB": "-1"},
		"S3 secret without key": {"PMS_S3_SECRET_ACCESS_KEY": s3Secret, "PMS_S3_BUCKET": "-"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := loadConfig(filepath.Join("..", "config.yaml"), envOf(env))
			if err == nil {
				err = cfg.Validate("http", "relay", "kafka", "s3", "imaging", "vips", "redis", "rate_limit", "idempotency", "ops")
			}
			if err == nil {
				t.Fatalf("loadConfig with %s succeeded, want an error", name)
			}
			wantNoSecret(t, "the config error", err.Error())
		})
	}
}

// TestStartupLogsHoldNoSecret runs `pms all` at debug level with every
// secret configured: a database URL with a password in both URL forms, a
// Redis server that requires its password, and S3 credentials. It uses them
// all (a product with an image goes through the worker to S3), and its logs
// must not hold any. A migrate against a database that is not there must
// not print one in its error either.
func TestStartupLogsHoldNoSecret(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs pms all")
	}
	t.Parallel()
	rs := redistest.Start(t)
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr()})
	if err := rdb.ConfigSet(t.Context(), "requirepass", redisSecret).Err(); err != nil {
		t.Fatalf("require a Redis password: %v", err)
	}
	rdb.Close()
	src := serveFiles(t, map[string][]byte{"a.png": transparentPNG(t)})
	s, stop := startAll(t, map[string]string{
		"PMS_POSTGRES_URL":         withPassword(t, postgrestest.Private(t)),
		"PMS_REDIS_ADDR":           rs.Addr(),
		"PMS_REDIS_PASSWORD":       redisSecret,
		"PMS_S3_ACCESS_KEY_ID":     "pms-key",
		"PMS_S3_SECRET_ACCESS_KEY": s3Secret,
	})
	if err := testRedis(t, s.app.cfg).Ping(t.Context()); err != nil {
		t.Fatalf("Redis with its password: %v (the test would show nothing)", err)
	}
	body := fmt.Sprintf(`{"product_name":"Secret-free lamp","product_price":5,"product_images":["%s/a.png"]}`, src)
	var created e2eProduct
	if code := s.do(t, http.MethodPost, "/api/v1/products", body, "", &created); code != http.StatusCreated {
		t.Fatalf("POST = %d, want 201", code)
	}
	s.waitProduct(t, created.ID, 60*time.Second, func(p e2eProduct) bool { return len(p.CompressedProductImages) == 1 })
	stop()
	logs := s.logs.String()
	if !strings.Contains(logs, "postgres pool opened") || !strings.Contains(logs, "REDACTED") {
		t.Fatalf("the logs lack the start-up line with the masked database URL this test is about:\n%s", logs)
	}
	wantNoSecret(t, "the logs of pms all", logs)

	t.Run("migrate without a database", func(t *testing.T) {
		cfg, err := loadConfig(filepath.Join("..", "config.yaml"), envOf(map[string]string{
			"PMS_POSTGRES_URL":             withPassword(t, "postgres://pms@127.0.0.1:1/pms?sslmode=disable"),
			"PMS_POSTGRES_CONNECT_TIMEOUT": "1s",
		}))
		if err != nil {
			t.Fatal(err)
		}
		logs := &syncBuffer{}
		a := &app{cfg: cfg, log: zerolog.New(logs).Level(zerolog.TraceLevel)}
		defer a.close()
		cmd := newMigrateCmd(a)
		cmd.SetArgs([]string{"status"})
		cmd.SetOut(logs)
		cmd.SetErr(logs) // cobra prints the error there too
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		err = cmd.ExecuteContext(ctx)
		if err == nil {
			t.Fatal("migrate status without a database succeeded")
		}
		wantNoSecret(t, "the error of migrate status", err.Error())
		wantNoSecret(t, "the logs of migrate status", logs.String())
	})
}
