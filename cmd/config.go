package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
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
	"github.com/pms-dev/pms/platform/seal"
	"github.com/pms-dev/pms/platform/telemetry"
	"github.com/pms-dev/pms/platform/vips"
	"github.com/pms-dev/pms/webhook"
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
	Webhooks webhook.Config       `mapstructure:"webhooks"`
	Auth     AuthConfig           `mapstructure:"auth"`
	Ops      OpsConfig            `mapstructure:"ops"`
	Worker   WorkerConfig         `mapstructure:"worker"`
	Dev      DevConfig            `mapstructure:"dev"`

	// Idempotency says how long Idempotency-Key records last.
	Idempotency postgres.IdempotencyConfig `mapstructure:"idempotency"`
	Tracing     telemetry.Config           `mapstructure:"tracing"`

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
	// SampleImageURL is the image in the first request `pms all --welcome`
	// suggests.
	SampleImageURL string `mapstructure:"sample_image_url"`
}

// LogConfig selects the log level and format, and how long info lines may
// wait to be written together (telemetry.LogBuffer; 0 writes each at once).
type LogConfig struct {
	Level         string        `mapstructure:"level"`
	Format        string        `mapstructure:"format"` // json or console
	FlushInterval time.Duration `mapstructure:"flush_interval"`
}

// maxLogFlushInterval bounds log.flush_interval: the info lines a crash may
// lose.
const maxLogFlushInterval = time.Second

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
	if c.FlushInterval < 0 || c.FlushInterval > maxLogFlushInterval {
		errs = append(errs, fmt.Errorf("log.flush_interval: must be between 0 (write each line at once) and %v", maxLogFlushInterval))
	}
	return errors.Join(errs...)
}

// Validate reports every problem in the log and postgres sections, which
// every command uses, and in the other sections named. A command needs no
// list of its sections: each part it builds validates its own config.
func (c Config) Validate(sections ...string) error {
	validators := map[string]func() error{
		"http": c.HTTP.Validate, "relay": c.Relay.Validate, "redis": c.Redis.Validate, "rate_limit": c.Limits.Validate, "kafka": c.Kafka.Validate, "s3": c.S3.Validate,
		"imaging": c.Imaging.Validate, "vips": c.Vips.Validate, "ops": c.Ops.Validate, "webhooks": c.validateWebhooks,
		"idempotency": c.Idempotency.Validate, "tracing": c.Tracing.Validate,
	}
	errs := []error{c.Log.Validate(), c.Postgres.Validate()}
	for _, s := range sections {
		errs = append(errs, validators[s]())
	}
	return errors.Join(errs...)
}

// validateWebhooks reports every problem with the webhooks section, its
// sealing keys included (which the webhook package does not read).
func (c Config) validateWebhooks() error {
	_, err := c.webhookKeys()
	return errors.Join(c.Webhooks.Validate(), err)
}

// webhookKeys returns the keys webhooks.secret_keys names.
func (c Config) webhookKeys() (*seal.Keys, error) {
	keys, err := seal.ParseKeys(c.Webhooks.SecretKeys)
	if err != nil {
		return nil, fmt.Errorf("webhooks.secret_keys: %w", err)
	}
	return keys, nil
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
	if cfg.Ops.Addr != DefaultConfig().Ops.Addr && cfg.Ops.Addr != cfg.Worker.Addr {
		return fmt.Errorf("worker.addr (%s) and ops.addr (%s) differ: worker.addr is the deprecated name of ops.addr; set only ops.addr", cfg.Worker.Addr, cfg.Ops.Addr)
	}
	cfg.Ops.Addr = cfg.Worker.Addr
	cfg.warnings = append(cfg.warnings, "worker.addr (PMS_WORKER_ADDR) is deprecated and now sets ops.addr (PMS_OPS_ADDR): rename it")
	return nil
}

// DefaultConfig returns the defaults of every setting: each package's own,
// with the addresses of the development servers `make run` starts and no
// Kafka brokers (so `pms all` embeds one). It is the one source of
// defaults: viper is seeded from it, and config.yaml must say the same
// (TestConfigFileSaysTheDefaults).
func DefaultConfig() Config {
	cfg := Config{
		Log:      LogConfig{Level: "info", Format: "json", FlushInterval: 100 * time.Millisecond},
		HTTP:     httpapi.DefaultConfig(),
		Postgres: postgres.DefaultConfig(),
		Relay:    postgres.DefaultRelayConfig(),
		Redis:    redis.DefaultConfig(),
		Limits:   redis.DefaultLimitConfig(),
		Kafka:    kafka.DefaultConfig(),
		S3:       s3.DefaultConfig(),
		Imaging:  imaging.DefaultConfig(),
		Vips:     vips.DefaultConfig(),
		Webhooks: webhook.DefaultConfig(),
		Ops:      OpsConfig{Addr: ":8081"},
		Dev: DevConfig{StateDir: ".pms", KafkaAddr: "127.0.0.1:9092", S3Addr: "127.0.0.1:9000",
			SampleImageURL: "https://upload.wikimedia.org/wikipedia/commons/3/3f/JPEG_example_flower.jpg"},
		Idempotency: postgres.DefaultIdempotencyConfig(),
		Tracing:     telemetry.DefaultConfig(),
	}
	cfg.Postgres.URL = "postgres://postgres@127.0.0.1:54320/pms?sslmode=disable" // deploy/services.sh dev
	cfg.Redis.Addr = "127.0.0.1:63790"                                           // deploy/services.sh dev
	cfg.Kafka.Brokers = []string{}
	return cfg
}

// defaults returns every key of c as viper names it (postgres.url) with its
// value: viper only applies environment variables to keys it knows. Lists
// stay whole values (imaging.presets).
func defaults(c Config) map[string]any {
	out := map[string]any{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			if !f.IsExported() || tag == "" || tag == "-" {
				continue
			}
			if fv := v.Field(i); fv.Kind() == reflect.Struct {
				walk(prefix+tag+".", fv)
			} else {
				out[prefix+tag] = fv.Interface()
			}
		}
	}
	walk("", reflect.ValueOf(c))
	return out
}

// loadConfig reads defaults, then the config file (file, or ./config.yaml
// when file is "" and one exists), then the environment: PMS_* variables,
// and the original deployment's variable names where no PMS_* one is set.
func loadConfig(file string, env func(string) (string, bool)) (Config, error) {
	v := viper.New()
	for k, val := range defaults(DefaultConfig()) {
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
	hook := mapstructure.ComposeDecodeHookFunc(mapstructure.StringToTimeDurationHookFunc(), jsonListHook, commaListHook)
	if err := v.Unmarshal(&cfg, viper.DecodeHook(hook)); err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	if err := applyWorkerAddr(&cfg); err != nil {
		return Config{}, fmt.Errorf("invalid config:\n%w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid config:\n%w", err)
	}
	// The worker records the preset set, and pms reprocess compares it.
	cfg.Imaging.CompressorOutput = cfg.Vips.OutputSettings()
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

// commaListHook reads a list of plain values from a string, as the
// environment gives it: comma-separated, spaces trimmed, "" the empty list
// (PMS_IMAGING_LADDER_WIDTHS= turns the ladder off). Each item is then
// converted to the list's element type.
func commaListHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice || to.Elem().Kind() == reflect.Struct ||
		to.Elem().Kind() == reflect.Uint8 {
		return data, nil
	}
	s := strings.TrimSpace(reflect.ValueOf(data).String())
	if s == "" {
		return []string{}, nil
	}
	items := strings.Split(s, ",")
	for i := range items {
		items[i] = strings.TrimSpace(items[i])
	}
	return items, nil
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
