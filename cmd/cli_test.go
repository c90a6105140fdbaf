package cmd

import (
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pms-dev/pms/platform/kafka/kafkatest"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/platform/redis/redistest"
	"github.com/pms-dev/pms/platform/s3/s3test"
)

// TestCLI runs the pms binary's commands the way an operator does, on a
// database of its own: migrate status, up and down; users create; keys
// create, list and revoke; serve refusing a schema that is behind; and a
// worker configured only through the original deployment's variable names
// (POSTGRES_*, REDIS_ADDR, KAFKA_BROKERS, AWS_*), answering on its operator
// listener.
func TestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: builds and runs pms")
	}
	t.Parallel()
	bin := buildPMS(t)
	config := filepath.Join("..", "config.yaml")
	env := map[string]string{"PMS_POSTGRES_URL": postgrestest.Empty(t), "PMS_REDIS_ADDR": redistest.Addr(t)}
	cli := func(args ...string) string {
		t.Helper()
		return withoutLogs(pmsCLI(t, bin, env, append(args, "--config", config)...))
	}

	if out := cli("migrate", "status"); strings.Contains(out, "applied") || !strings.Contains(out, "pending  00001 0001_create_users.sql") {
		t.Fatalf("migrate status on an empty database:\n%s\nwant every migration pending", out)
	}
	up := cli("migrate", "up")
	migration := regexp.MustCompile(`(?m)^applied +\d{5} `)
	applied := len(migration.FindAllString(up, -1))
	if applied < 8 || !strings.Contains(up, "applied 00001 0001_create_users.sql") {
		t.Fatalf("migrate up:\n%s\nwant every migration applied", up)
	}
	if out := cli("migrate", "status"); strings.Contains(out, "pending") || len(migration.FindAllString(out, -1)) != applied {
		t.Fatalf("migrate status after up:\n%s\nwant all %d applied", out, applied)
	}

	created := cli("users", "create", "--email", "cli@example.test", "--name", "Cli", "--admin")
	if !regexp.MustCompile(`(?m)^user [0-9a-f-]{36} created \(cli@example.test\)$`).MatchString(created) || apiKeyLine.FindString(created) == "" {
		t.Fatalf("users create printed:\n%s\nwant the user and their key", created)
	}
	second := apiKeyLine.FindStringSubmatch(cli("keys", "create", "--user", "cli@example.test"))
	if second == nil {
		t.Fatal("keys create printed no key")
	}
	list := cli("keys", "list", "--user", "cli@example.test")
	if lines := strings.Split(strings.TrimSpace(list), "\n"); len(lines) != 3 || !strings.Contains(list, second[1]) {
		t.Fatalf("keys list:\n%s\nwant a header and both keys", list)
	}
	if out := cli("keys", "revoke", second[1]); !strings.Contains(out, second[1]+" ") || !strings.Contains(out, "revoked at") {
		t.Fatalf("keys revoke printed:\n%s", out)
	}
	revokedAt := regexp.MustCompile(`(?m)^` + second[1] + `\s.*\d\d:\d\d:\d\dZ\s*$`)
	if list := cli("keys", "list", "--user", "cli@example.test"); !revokedAt.MatchString(list) {
		t.Errorf("keys list after revoke:\n%s\nwant the revoked key's line to end with the time it was revoked", list)
	}
	if out, err := pmsRun(t, bin, env, "keys", "revoke", "01a23456-0000-7000-8000-000000000000", "--config", config); err == nil || !strings.Contains(out, "API key not found") {
		t.Errorf("keys revoke of an unknown key = %v:\n%s\nwant a failure saying the key is not found", err, out)
	}

	if out := cli("migrate", "down"); !strings.HasPrefix(out, "rolled back ") && !strings.Contains(out, "\nrolled back ") {
		t.Fatalf("migrate down printed:\n%s", out)
	}
	out, err := pmsRun(t, bin, env, "serve", "--config", config)
	if err == nil || !strings.Contains(out, "run `pms migrate up`") {
		t.Fatalf("serve on a schema one migration behind exited with %v:\n%s\nwant a refusal naming pms migrate up", err, out)
	}
	cli("migrate", "up")

	t.Run("worker with the original variable names", func(t *testing.T) {
		u, err := url.Parse(env["PMS_POSTGRES_URL"])
		if err != nil {
			t.Fatal(err)
		}
		kafka := kafkatest.New(t)
		s3cfg, _ := s3test.New(t)
		ops := freeAddr(t)
		w := startProcess(t, bin, map[string]string{
			"POSTGRES_HOST":         u.Hostname(),
			"POSTGRES_PORT":         u.Port(),
			"POSTGRES_USER":         u.User.Username(),
			"POSTGRES_DB":           strings.TrimPrefix(u.Path, "/"),
			"REDIS_ADDR":            env["PMS_REDIS_ADDR"],
			"KAFKA_BROKERS":         strings.Join(kafka.Brokers(), ","),
			"AWS_ACCESS_KEY_ID":     s3cfg.AccessKeyID,
			"AWS_SECRET_ACCESS_KEY": s3cfg.SecretAccessKey,
			"AWS_REGION":            s3cfg.Region,
			"AWS_S3_BUCKET":         s3cfg.Bucket,
			"PMS_S3_ENDPOINT":       s3cfg.Endpoint, // no original name for it
			"PMS_S3_USE_PATH_STYLE": "true",
			"PMS_OPS_ADDR":          ops,
		}, "worker", "--config", config)
		var ready reply
		waitUntil(t, 60*time.Second, "the worker's /ready", func() bool {
			select {
			case <-w.done:
				t.Fatalf("worker exited: %v\n%s", w.err, w.out.String())
			default:
			}
			resp, err := http.Get("http://" + ops + "/ready")
			if err != nil {
				return false
			}
			resp.Body.Close()
			ready = opsGet(t, ops, "/ready")
			return ready.status == http.StatusOK
		})
		for _, check := range []string{`"postgres":"ok"`, `"kafka_consumer":"ok"`, `"s3":"ok"`, `"redis":"ok"`} {
			if !strings.Contains(ready.body, check) {
				t.Errorf("worker /ready = %s, want %s", ready.body, check)
			}
		}
		if h := opsGet(t, ops, "/health"); h.status != http.StatusOK {
			t.Errorf("worker /health = %d", h.status)
		}
		if m := opsGet(t, ops, "/metrics"); !strings.Contains(m.body, "go_goroutines") || !strings.Contains(m.body, "pms_kafka_tasks_in_flight") {
			t.Errorf("worker /metrics lacks the runtime and worker metrics:\n%.2000s", m.body)
		}
	})
}

// withoutLogs drops the JSON log lines from a command's output, which holds
// both its standard output and its log.
func withoutLogs(out string) string {
	var keep []string
	for line := range strings.SplitSeq(out, "\n") {
		if !strings.HasPrefix(line, "{") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}
