package cmd

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/spf13/viper"

	"github.com/pms-dev/pms/imaging"
)

func envOf(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(filepath.Join("..", "config.yaml"), envOf(nil))
	if err != nil {
		t.Fatalf("loadConfig(config.yaml) error: %v", err)
	}
	if cfg.HTTP.Addr != ":8080" || cfg.HTTP.RequestTimeout != 10*time.Second || cfg.Postgres.MaxOpenConns != 20 {
		t.Errorf("loadConfig(config.yaml) = %+v, want the documented defaults", cfg)
	}
}

// TestConfigFileSaysTheDefaults keeps config.yaml, which the container
// image ships, saying exactly what the code's defaults are: loading it
// gives DefaultConfig, value for value, and it names every key and no other.
func TestConfigFileSaysTheDefaults(t *testing.T) {
	path := filepath.Join("..", "config.yaml")
	cfg, err := loadConfig(path, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(DefaultConfig(), cfg, cmpopts.IgnoreUnexported(Config{})); diff != "" {
		t.Errorf("config.yaml differs from DefaultConfig() (-code +config.yaml):\n%s", diff)
	}
	file := viper.New()
	file.SetConfigFile(path)
	if err := file.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	inFile := map[string]bool{}
	for _, k := range file.AllKeys() {
		inFile[k] = true
	}
	for k := range defaults(DefaultConfig()) {
		if !inFile[k] {
			t.Errorf("config.yaml does not name %s", k)
		}
		delete(inFile, k)
	}
	for k := range inFile {
		t.Errorf("config.yaml names %s, which pms does not know", k)
	}
}

func TestLoadConfigEnvironment(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(Config) bool
	}{
		{"PMS_ variable", map[string]string{"PMS_HTTP_ADDR": "127.0.0.1:9000"},
			func(c Config) bool { return c.HTTP.Addr == "127.0.0.1:9000" }},
		{"duration", map[string]string{"PMS_HTTP_SHUTDOWN_TIMEOUT": "3s"},
			func(c Config) bool { return c.HTTP.ShutdownTimeout == 3*time.Second }},
		{"PORT", map[string]string{"PORT": "9090"},
			func(c Config) bool { return c.HTTP.Addr == ":9090" }},
		{"PMS_ wins over PORT", map[string]string{"PORT": "9090", "PMS_HTTP_ADDR": ":7000"},
			func(c Config) bool { return c.HTTP.Addr == ":7000" }},
		{"LOG_LEVEL", map[string]string{"LOG_LEVEL": "DEBUG"},
			func(c Config) bool { return c.Log.Level == "debug" }},
		{"POSTGRES_*", map[string]string{"POSTGRES_HOST": "db", "POSTGRES_PORT": "5433", "POSTGRES_USER": "pms",
			"POSTGRES_PASSWORD": "s3cret/x", "POSTGRES_DB": "catalogue"},
			func(c Config) bool {
				return c.Postgres.URL == "postgres://pms:s3cret%2Fx@db:5433/catalogue?sslmode=disable"
			}},
		{"PMS_POSTGRES_URL wins", map[string]string{"POSTGRES_HOST": "db", "PMS_POSTGRES_URL": "postgres://x@h/d"},
			func(c Config) bool { return c.Postgres.URL == "postgres://x@h/d" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(filepath.Join("..", "config.yaml"), envOf(tt.env))
			if err != nil {
				t.Fatalf("loadConfig with %v error: %v", tt.env, err)
			}
			if !tt.check(cfg) {
				t.Errorf("loadConfig with %v = %+v", tt.env, cfg)
			}
		})
	}
}

func TestLoadConfigListsEveryProblem(t *testing.T) {
	cfg, err := loadConfig(filepath.Join("..", "config.yaml"), envOf(map[string]string{
		"PMS_LOG_LEVEL": "loud", "PMS_LOG_FLUSH_INTERVAL": "5s", "PMS_POSTGRES_MAX_OPEN_CONNS": "0", "PMS_POSTGRES_URL": "mysql://x",
		"PMS_POSTGRES_MAX_CONCURRENT_WRITES": "-1",
	}))
	if err == nil {
		t.Fatal("loadConfig with five bad values succeeded")
	}
	for _, want := range []string{"log.level", "log.flush_interval", "postgres.max_open_conns", "postgres.url", "postgres.max_concurrent_writes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("loadConfig error %q does not name %s", err, want)
		}
	}
	cfg, err = loadConfig(filepath.Join("..", "config.yaml"), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.Addr, cfg.Kafka.Topic, cfg.Imaging.Presets[0].Quality, cfg.Ops.Addr = "nope", "", 0, "x"
	err = cfg.Validate("http", "kafka", "imaging", "ops")
	for _, want := range []string{"http.addr", "kafka.brokers", "kafka.topic", "imaging.presets[0].quality", "ops.addr"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("loadConfig error %q does not name %s", err, want)
		}
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	if _, err := loadConfig("no-such.yaml", envOf(nil)); err == nil {
		t.Error("loadConfig(no-such.yaml) succeeded, want an error")
	}
}

// TestWorkerAddrIsDeprecatedOpsAddr: worker.addr still sets where the
// operator listener is, with a warning, and may not contradict ops.addr.
func TestWorkerAddrIsDeprecatedOpsAddr(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    string // ops.addr; "" when loading must fail
		warning bool
	}{
		{"default", nil, ":8081", false},
		{"ops.addr", map[string]string{"PMS_OPS_ADDR": ":9200"}, ":9200", false},
		{"worker.addr alone", map[string]string{"PMS_WORKER_ADDR": ":9100"}, ":9100", true},
		{"both, the same", map[string]string{"PMS_WORKER_ADDR": ":9100", "PMS_OPS_ADDR": ":9100"}, ":9100", true},
		{"both, different", map[string]string{"PMS_WORKER_ADDR": ":9100", "PMS_OPS_ADDR": ":9200"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(filepath.Join("..", "config.yaml"), envOf(tt.env))
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), "worker.addr") || !strings.Contains(err.Error(), "ops.addr") {
					t.Errorf("loadConfig with %v = %v, want an error naming worker.addr and ops.addr", tt.env, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadConfig with %v: %v", tt.env, err)
			}
			if cfg.Ops.Addr != tt.want || (len(cfg.warnings) > 0) != tt.warning {
				t.Errorf("loadConfig with %v: ops.addr %q, warnings %q; want %q, a warning %v", tt.env, cfg.Ops.Addr, cfg.warnings, tt.want, tt.warning)
			}
		})
	}
}

func TestLoadConfigTrustedProxies(t *testing.T) {
	cfg, err := loadConfig(filepath.Join("..", "config.yaml"), envOf(map[string]string{"PMS_HTTP_TRUSTED_PROXIES": "10.0.0.0/8,192.0.2.1"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.HTTP.TrustedProxies; len(got) != 2 || got[0] != "10.0.0.0/8" || got[1] != "192.0.2.1" {
		t.Errorf("PMS_HTTP_TRUSTED_PROXIES=10.0.0.0/8,192.0.2.1 gave %q, want both", got)
	}
	if err := cfg.Validate("http"); err != nil {
		t.Errorf("Validate() = %v", err)
	}
	cfg.HTTP.TrustedProxies = []string{"proxy.internal"}
	if err := cfg.Validate("http"); err == nil || !strings.Contains(err.Error(), "http.trusted_proxies") {
		t.Errorf("Validate() with a host name as trusted proxy = %v, want an http.trusted_proxies problem", err)
	}
}

// TestLoadConfigPresets: imaging.presets comes from the file, from
// PMS_IMAGING_PRESETS as JSON, or from the defaults; the keys it replaced
// are refused, not ignored.
func TestLoadConfigPresets(t *testing.T) {
	big := imaging.Preset{Name: "big", MaxWidth: 2400, MaxHeight: 2000, Format: imaging.FormatWebP, Quality: 70}
	tests := []struct {
		name    string
		file    string // config file contents; "" for ../config.yaml
		env     map[string]string
		want    []imaging.Preset
		wantErr []string // what the error names; nil when loading succeeds
	}{
		{name: "config.yaml", want: imaging.DefaultPresets()},
		{name: "file", file: "imaging:\n  presets:\n    - {name: big, max_width: 2400, max_height: 2000, format: webp, quality: 70}\n",
			want: []imaging.Preset{big}},
		{name: "PMS_IMAGING_PRESETS", env: map[string]string{"PMS_IMAGING_PRESETS": `[{"name":"big","max_width":2400,` +
			`"max_height":2000,"format":"webp","quality":70},{"name":"thumbnail","max_width":320,"max_height":320,"format":"auto","quality":75}]`},
			want: []imaging.Preset{big, imaging.DefaultPresets()[1]}},
		{name: "PMS_IMAGING_PRESETS not JSON", env: map[string]string{"PMS_IMAGING_PRESETS": "main,thumbnail"},
			wantErr: []string{"imaging.presets", "must be a JSON array of objects"}},
		{name: "replaced key in the environment", env: map[string]string{"PMS_IMAGING_MAIN_QUALITY": "90"},
			wantErr: []string{"PMS_IMAGING_MAIN_QUALITY", "replaced by imaging.presets"}},
		{name: "replaced key in the file", file: "imaging:\n  thumbnail:\n    max_width: 0\n",
			wantErr: []string{"imaging.thumbnail", "replaced by imaging.presets"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join("..", "config.yaml")
			if tt.file != "" {
				file = filepath.Join(t.TempDir(), "config.yaml")
				if err := os.WriteFile(file, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg, err := loadConfig(file, envOf(tt.env))
			if tt.wantErr != nil {
				for _, want := range tt.wantErr {
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Errorf("loadConfig with %v = %v, want an error naming %q", tt.env, err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("loadConfig with %v: %v", tt.env, err)
			}
			if diff := cmp.Diff(tt.want, cfg.Imaging.Presets); diff != "" {
				t.Errorf("imaging.presets (-want +got):\n%s", diff)
			}
			if err := cfg.Validate("imaging"); err != nil {
				t.Errorf("Validate(imaging) = %v", err)
			}
		})
	}
}

// TestLoadConfigListsFromEnvironment: a list of plain values comes from the
// environment comma-separated, and an empty variable is the empty list
// (PMS_IMAGING_LADDER_WIDTHS= turns the ladder off), not a list of one zero.
func TestLoadConfigListsFromEnvironment(t *testing.T) {
	for _, tt := range []struct {
		widths, formats string
		want            imaging.Ladder
	}{
		{"", "jpeg", imaging.Ladder{Widths: []int{}, Formats: []string{"jpeg"}}},
		{"320, 640", "webp,avif", imaging.Ladder{Widths: []int{320, 640}, Formats: []string{"webp", "avif"}}},
	} {
		cfg, err := loadConfig(filepath.Join("..", "config.yaml"), envOf(map[string]string{
			"PMS_IMAGING_LADDER_WIDTHS": tt.widths, "PMS_IMAGING_LADDER_FORMATS": tt.formats}))
		if err != nil {
			t.Fatalf("loadConfig with widths %q: %v", tt.widths, err)
		}
		got := cfg.Imaging.Ladder
		if !slices.Equal(got.Widths, tt.want.Widths) || !slices.Equal(got.Formats, tt.want.Formats) {
			t.Errorf("widths %q, formats %q: ladder = %v %v, want %v %v", tt.widths, tt.formats, got.Widths, got.Formats, tt.want.Widths, tt.want.Formats)
		}
	}
}

// TestPresetSetCountsTheBackground: vips.background shapes every JPEG
// variant of an image with alpha, so a config that changes it names
// another preset set (the worker records it, pms reprocess compares it);
// the default names the one images had before it counted.
func TestPresetSetCountsTheBackground(t *testing.T) {
	def, err := loadConfig(filepath.Join("..", "config.yaml"), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := def.Imaging.PresetSet(), imaging.DefaultConfig().PresetSet(); got != want {
		t.Errorf("the default config's preset set is %s, want %s", got, want)
	}
	black, err := loadConfig(filepath.Join("..", "config.yaml"), envOf(map[string]string{"PMS_VIPS_BACKGROUND": "#000000"}))
	if err != nil {
		t.Fatal(err)
	}
	if black.Imaging.PresetSet() == def.Imaging.PresetSet() {
		t.Errorf("vips.background #000000 names the default's preset set %s", def.Imaging.PresetSet())
	}
}
