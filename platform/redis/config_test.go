package redis_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/platform/redis"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*redis.Config)
		want []string // problems, in any order; none when valid
	}{
		{"defaults", func(*redis.Config) {}, nil},
		{"no port", func(c *redis.Config) { c.Addr = "localhost" }, []string{"redis.addr"}},
		{"zero timeouts", func(c *redis.Config) { c.Timeout, c.DialTimeout = 0, 0 },
			[]string{"redis.timeout", "redis.dial_timeout"}},
		{"jitter too large", func(c *redis.Config) { c.TTLJitter = 0.9 }, []string{"redis.ttl_jitter"}},
		{"key ttl too long", func(c *redis.Config) { c.KeyTTL = 2 * time.Hour }, []string{"redis.key_ttl"}},
		{"key fallback ttl too long", func(c *redis.Config) { c.KeyFallbackTTL = 2 * time.Minute }, []string{"redis.key_fallback_ttl"}},
		{"everything", func(c *redis.Config) { *c = redis.Config{DB: -1, PoolSize: -1} }, []string{
			"redis.addr", "redis.db", "redis.dial_timeout", "redis.timeout", "redis.pool_size",
			"redis.product_ttl", "redis.key_ttl", "redis.key_fallback_ttl", "redis.key_stale_ttl", "redis.unknown_key_ttl", "redis.breaker_failures", "redis.breaker_cooldown"}},
		{"stale keys kept shorter than fresh ones", func(c *redis.Config) { c.KeyTTL, c.KeyStaleTTL = 30*time.Second, 10*time.Second }, []string{"redis.key_stale_ttl"}},
		{"unknown key ttl too short", func(c *redis.Config) { c.UnknownKeyTTL = time.Millisecond }, []string{"redis.unknown_key_ttl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := redis.DefaultConfig()
			tt.edit(&cfg)
			err := cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want problems with %v", tt.want)
			}
			if got, want := len(strings.Split(err.Error(), "\n")), len(tt.want); got != want {
				t.Errorf("Validate() reported %d problems, want %d:\n%v", got, want, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w+":") {
					t.Errorf("Validate() = %q, want a problem with %s", err, w)
				}
			}
		})
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := redis.DefaultConfig()
	cfg.Password = "s3cret-password"
	cfg.Timeout = 0
	_, err := redis.New(cfg, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "redis.timeout") {
		t.Fatalf("New() error = %v, want a redis.timeout problem", err)
	}
	if strings.Contains(err.Error(), cfg.Password) {
		t.Errorf("New() error %q contains the password", err)
	}
}

func TestLimitConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  redis.LimitConfig
		want int // number of problems
	}{
		{"ok", redis.LimitConfig{ReadRate: 10, ReadBurst: 20, WriteRate: 1, WriteBurst: 5, AuthFailuresPerMinute: 60, AuthFailureBurst: 20}, 0},
		{"no write burst", redis.LimitConfig{ReadRate: 10, ReadBurst: 20, WriteRate: 1, AuthFailuresPerMinute: 60, AuthFailureBurst: 20}, 1},
		{"no failure burst", redis.LimitConfig{ReadRate: 10, ReadBurst: 20, WriteRate: 1, WriteBurst: 5, AuthFailuresPerMinute: 60}, 1},
		{"zero", redis.LimitConfig{}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			got := 0
			if err != nil {
				got = len(strings.Split(err.Error(), "\n"))
			}
			if got != tt.want {
				t.Errorf("Validate() = %v, want %d problems", err, tt.want)
			}
		})
	}
}
