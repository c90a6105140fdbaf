package cmd

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/pms-dev/pms/platform/httpapi"
	"github.com/pms-dev/pms/platform/postgres"
)

// Config is everything pms can be configured with. Each package owns its
// part; config.yaml documents every key with its default.
type Config struct {
	Log      LogConfig       `mapstructure:"log"`
	HTTP     httpapi.Config  `mapstructure:"http"`
	Postgres postgres.Config `mapstructure:"postgres"`
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

// Validate reports every problem in the whole config.
func (c Config) Validate() error {
	return errors.Join(c.Log.Validate(), c.HTTP.Validate(), c.Postgres.Validate())
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

	"postgres.url":                "postgres://postgres@127.0.0.1:54320/pms?sslmode=disable",
	"postgres.max_open_conns":     20,
	"postgres.max_idle_conns":     10,
	"postgres.conn_max_lifetime":  30 * time.Minute,
	"postgres.conn_max_idle_time": 5 * time.Minute,
	"postgres.connect_timeout":    5 * time.Second,
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
	var cfg Config
	hook := mapstructure.ComposeDecodeHookFunc(mapstructure.StringToTimeDurationHookFunc(), mapstructure.StringToSliceHookFunc(","))
	if err := v.Unmarshal(&cfg, viper.DecodeHook(hook)); err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid config:\n%w", err)
	}
	return cfg, nil
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

// redactURL hides the password in a URL, for logs and messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(malformed URL)"
	}
	return u.Redacted()
}

// lookupEnv is the process environment, the only one loadConfig reads in
// production.
func lookupEnv(name string) (string, bool) { return os.LookupEnv(name) }
