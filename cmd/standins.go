package cmd

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/pms-dev/pms/platform/kafka"
	"github.com/pms-dev/pms/platform/s3"
)

// standIns starts the development Kafka broker and S3 server that `pms all`
// uses when none is configured, and points the config at them. They serve
// until the app closes, so they outlive every part that uses them.
func (a *app) standIns() error {
	dir := a.cfg.Dev.StateDir
	if len(a.cfg.Kafka.Brokers) == 0 {
		b, err := a.localBroker(filepath.Join(dir, "kafka"), a.cfg.Dev.KafkaAddr, kafka.LocalPartitions)
		if err != nil {
			return err
		}
		a.cfg.Kafka.Brokers = b.Addrs()
		a.log.Warn().Strs("brokers", b.Addrs()).Str("data", filepath.Join(dir, "kafka")).
			Msg("no kafka.brokers configured: using an embedded development broker (kfake), not for production")
	}
	if a.cfg.S3.Endpoint == "" {
		s, err := a.localS3(filepath.Join(dir, "s3"), a.cfg.Dev.S3Addr)
		if err != nil {
			return err
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		a.onClose(func() error { stop(); return <-done })
		a.cfg.S3.Endpoint, a.cfg.S3.UsePathStyle, a.cfg.S3.CreateBucket = s.URL(), true, true
		if a.cfg.S3.AccessKeyID == "" {
			a.cfg.S3.AccessKeyID, a.cfg.S3.SecretAccessKey = "pms-dev", "pms-dev-secret"
		}
		a.log.Warn().Str("endpoint", s.URL()).Str("data", filepath.Join(dir, "s3")).
			Msg("no s3.endpoint configured: using an embedded development S3 server (gofakes3), not for production")
	}
	return nil
}

// localBroker starts the development Kafka-protocol broker (kfake) on addr
// with its data in dir, holding the config's task, dead-letter and event topics
// with the given number of partitions each; the app closes it.
func (a *app) localBroker(dir, addr string, partitions int) (*kafka.LocalBroker, error) {
	b, err := kafka.NewLocalBroker(dir, addr, partitions, a.topics()...)
	if err != nil {
		return nil, fmt.Errorf("start development kafka on %s: %w", addr, err)
	}
	a.onClose(b.Close)
	return b, nil
}

// topics are the topics the config names.
func (a *app) topics() []string {
	ts := []string{a.cfg.Kafka.Topic, a.cfg.Kafka.DeadLetterTopic}
	if a.cfg.Kafka.EventsTopic != "" {
		ts = append(ts, a.cfg.Kafka.EventsTopic)
	}
	return ts
}

// localS3 makes the development S3 server (gofakes3) on addr with its data
// in dir; the caller runs it.
func (a *app) localS3(dir, addr string) (*s3.LocalServer, error) {
	s, err := s3.NewLocalServer(dir, addr)
	if err != nil {
		return nil, fmt.Errorf("start development s3 on %s: %w", addr, err)
	}
	return s, nil
}
