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
		b, err := kafka.NewLocalBroker(filepath.Join(dir, "kafka"), a.cfg.Dev.KafkaAddr, a.cfg.Kafka.Topic, a.cfg.Kafka.DeadLetterTopic)
		if err != nil {
			return fmt.Errorf("start development kafka on %s: %w", a.cfg.Dev.KafkaAddr, err)
		}
		a.onClose(b.Close)
		a.cfg.Kafka.Brokers = b.Addrs()
		a.log.Warn().Strs("brokers", b.Addrs()).Str("data", filepath.Join(dir, "kafka")).
			Msg("no kafka.brokers configured: using an embedded development broker (kfake), not for production")
	}
	if a.cfg.S3.Endpoint == "" {
		s, err := s3.NewLocalServer(filepath.Join(dir, "s3"), a.cfg.Dev.S3Addr)
		if err != nil {
			return fmt.Errorf("start development s3 on %s: %w", a.cfg.Dev.S3Addr, err)
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
