package cmd

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/httpapi"
	"github.com/pms-dev/pms/platform/kafka"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/platform/s3"
	"github.com/pms-dev/pms/platform/vips"
)

// producer returns the Kafka producer the outbox relay publishes with.
func (a *app) producer() (*kafka.Producer, error) {
	if a.kafkaProducer != nil {
		return a.kafkaProducer, nil
	}
	p, err := kafka.NewProducer(a.cfg.Kafka, a.log.With().Str("component", "kafka").Logger())
	if err != nil {
		return nil, fmt.Errorf("connect kafka producer: %w", err)
	}
	a.kafkaProducer = p
	a.onClose(p.Close)
	return p, nil
}

// relay returns the outbox relay, publishing with the shared producer.
func (a *app) relay() (*postgres.Relay, error) {
	db, err := a.postgres()
	if err != nil {
		return nil, err
	}
	p, err := a.producer()
	if err != nil {
		return nil, err
	}
	return postgres.NewRelay(a.cfg.Relay, db, p, a.log.With().Str("component", "relay").Logger())
}

// consumer builds the image worker: a Kafka consumer group that routes the
// image task topic to the processor, which fetches, compresses with
// libvips, uploads to S3 and records results in PostgreSQL.
func (a *app) consumer(ctx context.Context) (*kafka.Consumer, []httpapi.Check, error) {
	db, err := a.postgres()
	if err != nil {
		return nil, nil, err
	}
	fetcher, err := imaging.NewFetcher(a.cfg.Imaging.Fetch, a.cfg.Imaging.Limits)
	if err != nil {
		return nil, nil, err
	}
	if fetcher.AllowsPrivateNetworks() {
		a.log.Warn().Msg("imaging.fetch.allow_private_networks is on: image URLs may reach loopback and private networks; for development and tests only")
	}
	compressor, err := vips.New(a.cfg.Vips, a.cfg.Imaging.Limits)
	if err != nil {
		return nil, nil, err
	}
	uploader, err := s3.New(ctx, a.cfg.S3)
	if err != nil {
		return nil, nil, fmt.Errorf("connect s3: %w", err)
	}
	cache, err := a.redis()
	if err != nil {
		return nil, nil, err
	}
	results := redis.NewResultsCache(cache, postgres.NewImageResults(db))
	processor, err := imaging.NewProcessor(a.cfg.Imaging, fetcher, compressor, uploader, results)
	if err != nil {
		return nil, nil, err
	}
	dlq, err := a.producer()
	if err != nil {
		return nil, nil, err
	}
	tasks := kafka.Route{Topic: a.cfg.Kafka.Topic, Handler: imaging.NewTaskHandler(processor),
		MaxAttempts: imaging.MaxAttempts, KeyName: "product_id", LogHeaders: []string{imaging.HeaderTaskID}}
	c, err := kafka.NewConsumer(a.cfg.Kafka, []kafka.Route{tasks}, dlq, a.log.With().Str("component", "worker").Logger())
	if err != nil {
		return nil, nil, fmt.Errorf("connect kafka consumer: %w", err)
	}
	a.onClose(c.Close)
	if err := a.metrics().Register(c); err != nil {
		return nil, nil, fmt.Errorf("register worker metrics: %w", err)
	}
	checks := []httpapi.Check{
		{Name: "kafka_consumer", Critical: true, Run: c.Check},
		{Name: "s3", Critical: true, Run: uploader.Check},
	}
	return c, checks, nil
}

// storeChecks are the readiness checks of every process that uses
// PostgreSQL and Redis. Redis only degrades: pms serves without it.
// PostgreSQL is critical where needsPostgres: the worker can do nothing
// without it, while the API still answers the reads its caches hold, so a
// serve process without PostgreSQL is degraded and stays in rotation.
func (a *app) storeChecks(needsPostgres bool) ([]httpapi.Check, error) {
	db, err := a.postgres()
	if err != nil {
		return nil, err
	}
	m, err := db.Migrator()
	if err != nil {
		return nil, err
	}
	cache, err := a.redis()
	if err != nil {
		return nil, err
	}
	return []httpapi.Check{
		{Name: "postgres", Critical: needsPostgres, Run: db.Ping},
		{Name: "schema", Critical: needsPostgres, Run: m.CheckSchema},
		{Name: "redis", Critical: false, Run: cache.Ping},
	}, nil
}

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
