package kafka_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pms-dev/pms/platform/kafka"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*kafka.Config)
		want string // a part of the error, "" when valid
	}{
		{"defaults", func(*kafka.Config) {}, ""},
		{"no version", func(c *kafka.Config) { c.Version = "" }, ""},
		{"no brokers", func(c *kafka.Config) { c.Brokers = nil }, "kafka.brokers: must name at least one"},
		{"broker without port", func(c *kafka.Config) { c.Brokers = []string{"kafka"} }, `kafka.brokers: "kafka" is not a host:port`},
		{"no topic", func(c *kafka.Config) { c.Topic = "" }, "kafka.topic: must not be empty"},
		{"dead letters to the task topic", func(c *kafka.Config) { c.DeadLetterTopic = c.Topic }, "kafka.dead_letter_topic"},
		{"no group", func(c *kafka.Config) { c.GroupID = "" }, "kafka.group_id"},
		{"old version", func(c *kafka.Config) { c.Version = "0.10.2.0" }, "kafka.version"},
		{"bad version", func(c *kafka.Config) { c.Version = "two" }, "kafka.version"},
		{"negative concurrency", func(c *kafka.Config) { c.Concurrency = -1 }, "kafka.concurrency"},
		{"backoff above cap", func(c *kafka.Config) { c.MaxRetryBackoff = c.RetryBackoff / 2 }, "kafka.retry_backoff"},
		{"no backoff", func(c *kafka.Config) { c.RetryBackoff = 0 }, "kafka.retry_backoff"},
		{"negative grace", func(c *kafka.Config) { c.ShutdownGrace = -time.Second }, "kafka.shutdown_grace"},
		{"no dial timeout", func(c *kafka.Config) { c.DialTimeout = 0 }, "kafka.dial_timeout"},
		{"read timeout under fetch wait", func(c *kafka.Config) { c.ReadTimeout = c.MaxWaitTime }, "kafka.max_wait_time, read_timeout"},
		{"no commit interval", func(c *kafka.Config) { c.CommitInterval = 0 }, "kafka.commit_interval"},
		{"bad client id for old brokers", func(c *kafka.Config) { c.Version, c.ClientID = "0.11.0.0", "pms worker!" }, "ClientID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := kafka.DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	c := kafka.Config{}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() of the zero Config = nil, want errors")
	}
	for _, key := range []string{"brokers", "topic", "dead_letter_topic", "group_id", "retry_backoff", "commit_interval"} {
		if !strings.Contains(err.Error(), "kafka."+key) {
			t.Errorf("Validate() = %q, want a problem with kafka.%s", err, key)
		}
	}
}
