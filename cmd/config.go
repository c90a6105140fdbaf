package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"runtime"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/httpapi"
	"github.com/pms-dev/pms/platform/kafka"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/platform/s3"
	"github.com/pms-dev/pms/platform/vips"
)

// Config is everything pms can be configured with. Each package owns its
// part; config.yaml documents every key with its default.
type Config struct {
	Log      LogConfig            `mapstructure:"log"`
	HTTP     httpapi.Config       `mapstructure:"http"`
	Postgres postgres.Config      `mapstructure:"postgres"`
	Relay    postgres.RelayConfig `mapstructure:"relay"`
	Redis    redis.Config         `mapstructure:"redis"`
	Limits   redis.LimitConfig    `mapstructure:"rate_limit"`
	Kafka    kafka.Config         `mapstructure:"kafka"`
	S3       s3.Config            `mapstructure:"s3"`
	Imaging  imaging.Config       `mapstructure:"imaging"`
	Vips     vips.Config          `mapstructure:"vips"`
	Auth     AuthConfig           `mapstructure:"auth"`
	Ops      OpsConfig            `mapstructure:"ops"`
	Worker   WorkerConfig         `mapstructure:"worker"`
	Dev      DevConfig            `mapstructure:"dev"`

	// Idempotency says how long Idempotency-Key records last.
	Idempotency postgres.IdempotencyConfig `mapstructure:"idempotency"`

	// warnings are about the config itself, such as a deprecated key, for
	// the log once there is one.
	warnings []string
}

// AuthConfig says who may read what.
type AuthConfig struct {
	// PublicReads lets every API key read and list every user's products.
	PublicReads bool `mapstructure:"public_reads"`
}

// OpsConfig says where serve, worker and all serve /health, /ready and
// /metrics for operators, apart from the API.
type OpsConfig struct {
	Addr string `mapstructure:"addr"`
}

// WorkerConfig holds what is left of the worker's own section.
type WorkerConfig struct {
	// Addr is the old name of ops.addr, from when only the worker had an
	// operator listener. Deprecated: set ops.addr; when set, it is used as
	// ops.addr with a warning.
	Addr string `mapstructure:"addr"`
}

// DevConfig is for `pms all` on a developer's machine.
type DevConfig struct {
	// StateDir holds the data of the embedded Kafka and S3 stand-ins.
	StateDir string `mapstructure:"state_dir"`
	// KafkaAddr and S3Addr are where they listen: fixed loopback ports, so
	// the image URLs stored in the database keep working across restarts.
	KafkaAddr string `mapstructure:"kafka_addr"`
	S3Addr    string `mapstructure:"s3_addr"`
}

// LogConfig selects the log level and format.
type LogConfig struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"` // json or console
}

// Validate reports every problem with the log config.
func (c LogConfig) Validate() error {
	var errs []error
	switch c.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		errs = append(errs, errors.New("log.level: must be one of trace, debug, info, warn, error"))
	}
	if c.Format != "json" && c.Format != "console" {
		errs = append(errs, errors.New("log.format: must be json or console"))
	}
	return errors.Join(errs...)
}

// Validate reports every problem in the log and postgres sections, which
// every command uses, and in the other sections named. A command needs no
// list of its sections: each part it builds validates its own config.
func (c Config) Validate(sections ...string) error {
	validators := map[string]func() error{
		"http": c.HTTP.Validate, "relay": c.Relay.Validate, "redis": c.Redis.Validate, "rate_limit": c.Limits.Validate, "kafka": c.Kafka.Validate, "s3": c.S3.Validate,
		"imaging": c.Imaging.Validate, "vips": c.Vips.Validate, "ops": c.Ops.Validate,
		"idempotency": c.Idempotency.Validate,
	}
	errs := []error{c.Log.Validate(), c.Postgres.Validate()}
	for _, s := range sections {
		errs = append(errs, validators[s]())
	}
	return errors.Join(errs...)
}

// Validate reports every problem with the ops config.
func (c OpsConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("ops.addr: must be host:port: %w", err)
	}
	return nil
}

// applyWorkerAddr makes worker.addr, when set, the value of ops.addr, and
// refuses a config that sets both to different addresses.
func applyWorkerAddr(cfg *Config) error {
	if cfg.Worker.Addr == "" {
		return nil
	}
	if cfg.Ops.Addr != defaults["ops.addr"] && cfg.Ops.Addr != cfg.Worker.Addr {
		return fmt.Errorf("worker.addr (%s) and ops.addr (%s) differ: worker.addr is the deprecated name of ops.addr; set only ops.addr", cfg.Worker.Addr, cfg.Ops.Addr)
	}
	cfg.Ops.Addr = cfg.Worker.Addr
	cfg.warnings = append(cfg.warnings, "worker.addr (PMS_WORKER_ADDR) is deprecated and now sets ops.addr (PMS_OPS_ADDR): rename it")
	return nil
}

// defaults holds every key with its default value: viper only applies
// environment variables to keys it knows.
var defaults = map[string]any{
	"log.level":  "info",
	"log.format": "json",

	"http.addr":                ":8080",
	"http.read_header_timeout": 5 * time.Second,
	"http.read_timeout":        30 * time.Second,
	"http.write_timeout":       30 * time.Second,
	"http.idle_timeout":        120 * time.Second,
	"http.request_timeout":     10 * time.Second,
	"http.shutdown_timeout":    15 * time.Second,
	"http.max_body_bytes":      1 << 20,
	"http.trusted_proxies":     []string{},

	"postgres.url":                "postgres://postgres@127.0.0.1:54320/pms?sslmode=disable",
	"postgres.max_open_conns":     20,
	"postgres.max_idle_conns":     10,
	"postgres.conn_max_lifetime":  30 * time.Minute,
	"postgres.conn_max_idle_time": 5 * time.Minute,
	"postgres.connect_timeout":    5 * time.Second,
	"postgres.io_timeout":         30 * time.Second,

	"relay.poll_interval": time.Second,
	"relay.batch_size":    100,
	"relay.retention":     24 * time.Hour,

	"idempotency.ttl":            24 * time.Hour,
	"idempotency.prune_interval": time.Hour,

	"redis.addr":             "127.0.0.1:63790",
	"redis.password":         "",
	"redis.db":               0,
	"redis.dial_timeout":     500 * time.Millisecond,
	"redis.timeout":          50 * time.Millisecond,
	"redis.pool_size":        0,
	"redis.product_ttl":      30 * time.Minute,
	"redis.ttl_jitter":       0.1,
	"redis.key_ttl":          time.Second,
	"redis.key_stale_ttl":    30 * time.Minute,
	"redis.unknown_key_ttl":  10 * time.Second,
	"redis.local_ttl":        500 * time.Millisecond,
	"redis.breaker_failures": 5,
	"redis.breaker_cooldown": 2 * time.Second,

	"rate_limit.read_rate":   50,
	"rate_limit.read_burst":  100,
	"rate_limit.write_rate":  10,
	"rate_limit.write_burst": 20,

	"rate_limit.auth_failures_per_minute": 60,
	"rate_limit.auth_failure_burst":       20,

	"kafka.brokers":           []string{},
	"kafka.topic":             "pms.image-tasks",
	"kafka.dead_letter_topic": "pms.image-tasks.dlq",
	"kafka.group_id":          "pms-worker",
	"kafka.client_id":         "pms",
	"kafka.version":           "2.8.0",
	"kafka.concurrency":       0,
	"kafka.retry_backoff":     time.Second,
	"kafka.max_retry_backoff": 30 * time.Second,
	"kafka.shutdown_grace":    10 * time.Second,
	"kafka.dial_timeout":      5 * time.Second,
	"kafka.read_timeout":      30 * time.Second,
	"kafka.write_timeout":     30 * time.Second,
	"kafka.produce_timeout":   10 * time.Second,
	"kafka.max_wait_time":     500 * time.Millisecond,
	"kafka.commit_interval":   time.Second,

	"s3.endpoint":          "",
	"s3.region":            "us-east-1",
	"s3.bucket":            "pms-images",
	"s3.access_key_id":     "",
	"s3.secret_access_key": "",
	"s3.use_path_style":    false,
	"s3.public_url":        "",
	"s3.cache_control":     "public, max-age=31536000, immutable",
	"s3.timeout":           30 * time.Second,
	"s3.max_attempts":      2,
	"s3.create_bucket":     false,

	"imaging.fetch.connect_timeout":        5 * time.Second,
	"imaging.fetch.timeout":                30 * time.Second,
	"imaging.fetch.max_bytes":              25 << 20,
	"imaging.fetch.max_redirects":          3,
	"imaging.fetch.allow_private_networks": false,
	"imaging.fetch.user_agent":             "pms-imaging/1",
	"imaging.limits.max_pixels":            imaging.DefaultLimits.MaxPixels,
	"imaging.limits.max_side":              imaging.DefaultLimits.MaxSide,
	"imaging.job_timeout":                  2 * time.Minute,
	"imaging.presets":                      imaging.DefaultPresets(), // PMS_IMAGING_PRESETS takes a JSON array

	"vips.max_concurrent": runtime.NumCPU(),
	"vips.max_memory":     512 << 20,
	"vips.fail_on":        "warning",

	"auth.public_reads": false,

	"ops.addr":    ":8081",
	"worker.addr": "", // deprecated: ops.addr

	"dev.state_dir":  ".pms",
	"dev.kafka_addr": "127.0.0.1:9092",
	"dev.s3_addr":    "127.0.0.1:9000",
}

// loadConfig reads defaults, then the config file (file, or ./config.yaml
// when file is "" and one exists), then the environment: PMS_* variables,
// and the original deployment's variable names where no PMS_* one is set.
func loadConfig(file string, env func(string) (string, bool)) (Config, error) {
	v := viper.New()
	for k, val := range defaults {
		v.SetDefault(k, val)
	}
	if file != "" {
		v.SetConfigFile(file)
	} else {
		v.SetConfigName("config")
		v.SetConfigType("yaml")
		v.AddConfigPath(".")
	}
	if err := v.ReadInConfig(); err != nil {
		var notFound viper.ConfigFileNotFoundError
		if file != "" || !errors.As(err, &notFound) {
			return Config{}, fmt.Errorf("read config: %w", err)
		}
	}
	for _, k := range v.AllKeys() {
		if val, ok := env(envName(k)); ok {
			v.Set(k, val)
		}
	}
	if err := applyLegacyEnv(v, env); err != nil {
		return Config{}, err
	}
	if err := refuseReplacedPresetKeys(v, env); err != nil {
		return Config{}, fmt.Errorf("invalid config:\n%w", err)
	}
	var cfg Config
	hook := mapstructure.ComposeDecodeHookFunc(mapstructure.StringToTimeDurationHookFunc(), jsonListHook,
		mapstructure.StringToSliceHookFunc(","))
	if err := v.Unmarshal(&cfg, viper.DecodeHook(hook)); err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	if err := applyWorkerAddr(&cfg); err != nil {
		return Config{}, fmt.Errorf("invalid config:\n%w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid config:\n%w", err)
	}
	return cfg, nil
}

// jsonListHook decodes a string given for a list of structs, such as
// PMS_IMAGING_PRESETS, as a JSON array of objects with the keys the file
// uses. Other lists stay comma-separated strings.
func jsonListHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice || to.Elem().Kind() != reflect.Struct {
		return data, nil
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(reflect.ValueOf(data).String()), &list); err != nil {
		return nil, fmt.Errorf("must be a JSON array of objects: %w", err)
	}
	return list, nil
}

// refuseReplacedPresetKeys refuses imaging.main and imaging.thumbnail, which
// imaging.presets replaced: ignoring them would silently change the images
// made.
func refuseReplacedPresetKeys(v *viper.Viper, env func(string) (string, bool)) error {
	var set []string
	for _, section := range []string{"imaging.main", "imaging.thumbnail"} {
		if v.InConfig(section) {
			set = append(set, section)
		}
		for _, leaf := range []string{"name", "max_width", "max_height", "quality"} {
			if name := envName(section + "." + leaf); hasEnv(env, name) {
				set = append(set, name)
			}
		}
	}
	if len(set) == 0 {
		return nil
	}
	return fmt.Errorf("%s: replaced by imaging.presets, a list whose first preset is the main one; move the settings there",
		strings.Join(set, ", "))
}

func hasEnv(env func(string) (string, bool), name string) bool {
	_, ok := env(name)
	return ok
}

// envName is the PMS_* variable for a config key: postgres.url → PMS_POSTGRES_URL.
func envName(key string) string {
	return "PMS_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// applyLegacyEnv honours the variable names of the original deployment for
// keys that no PMS_* variable sets.
func applyLegacyEnv(v *viper.Viper, env func(string) (string, bool)) error {
	set := func(key, val string) {
		if _, ok := env(envName(key)); !ok {
			v.Set(key, val)
		}
	}
	if port, ok := env("PORT"); ok {
		set("http.addr", net.JoinHostPort("", port))
	}
	if level, ok := env("LOG_LEVEL"); ok {
		set("log.level", strings.ToLower(level))
	}
	if addr, ok := env("REDIS_ADDR"); ok {
		set("redis.addr", addr)
	}
	if brokers, ok := env("KAFKA_BROKERS"); ok {
		set("kafka.brokers", brokers)
	}
	for _, alias := range []struct{ key, legacy string }{
		// The standard AWS names come last, so they win over the short ones.
		{"s3.access_key_id", "AWS_ACCESS_KEY"}, {"s3.access_key_id", "AWS_ACCESS_KEY_ID"},
		{"s3.secret_access_key", "AWS_SECRET_KEY"}, {"s3.secret_access_key", "AWS_SECRET_ACCESS_KEY"},
		{"s3.region", "AWS_REGION"}, {"s3.bucket", "AWS_S3_BUCKET"},
	} {
		if val, ok := env(alias.legacy); ok {
			set(alias.key, val)
		}
	}
	if _, ok := env(envName("postgres.url")); ok {
		return nil
	}
	u, err := url.Parse(v.GetString("postgres.url"))
	if err != nil {
		return errors.New("postgres.url: malformed")
	}
	changed := false
	part := func(name string) (string, bool) {
		val, ok := env(name)
		changed = changed || ok
		return val, ok
	}
	host, port := u.Hostname(), u.Port()
	if h, ok := part("POSTGRES_HOST"); ok {
		host = h
	}
	if p, ok := part("POSTGRES_PORT"); ok {
		port = p
	}
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	} else {
		u.Host = host
	}
	user := u.User.Username()
	pass, hasPass := u.User.Password()
	if val, ok := part("POSTGRES_USER"); ok {
		user = val
	}
	if val, ok := part("POSTGRES_PASSWORD"); ok {
		pass, hasPass = val, true
	}
	if hasPass {
		u.User = url.UserPassword(user, pass)
	} else {
		u.User = url.User(user)
	}
	if db, ok := part("POSTGRES_DB"); ok {
		u.Path = "/" + db
	}
	if changed {
		v.Set("postgres.url", u.String())
	}
	return nil
}

// lookupEnv is the process environment, the only one loadConfig reads in
// production.
func lookupEnv(name string) (string, bool) { return os.LookupEnv(name) }
