package cmd

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/pms-dev/pms/imaging"
	"github.com/pms-dev/pms/platform/httpapi"
	"github.com/pms-dev/pms/platform/kafka"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/platform/s3"
	"github.com/pms-dev/pms/platform/telemetry"
	"github.com/pms-dev/pms/platform/vips"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/webhook"
)

func newWorkerCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use: "worker", Example: "  pms worker --config /etc/pms/config.yaml\n  PMS_KAFKA_CONCURRENCY=4 PMS_OPS_ADDR=:8082 pms worker",
		Short: "Process image tasks from Kafka",
		Long: "Consume image tasks from Kafka: fetch each image, compress it with libvips, upload it to S3 and\n" +
			"record it in PostgreSQL. Serves /health, /ready and /metrics on ops.addr.\n" +
			"On SIGINT or SIGTERM, tasks in flight finish or are left for redelivery.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runWorker(cmd.Context()) },
	}
}

// runWorker opens PostgreSQL, Redis and the Kafka producer (for dead
// letters), in that order, builds the worker on them and runs it with its
// operator listener.
func (a *app) runWorker(ctx context.Context) error {
	db, cache, producer, err := a.openServices(ctx)
	if err != nil {
		return err
	}
	consumer, checks, err := a.worker(ctx, db, cache, producer)
	if err != nil {
		return err
	}
	if a.cfg.Kafka.EventsTopic != "" { // the dispatcher signs with the secrets
		a.warnUnsealed(ctx, db)
	}
	stores, err := storeChecks(db, cache, true)
	if err != nil {
		return err
	}
	ops, err := a.ops(append(stores, checks...))
	if err != nil {
		return err
	}
	return run(ctx, ops, consumer)
}

// worker builds the image worker on the stores and the producer: a Kafka
// consumer group that routes the image task topic to the processor, which
// fetches, compresses with libvips, uploads to S3 and records results in
// PostgreSQL, and the events topic to the webhook fan-out, beside the
// dispatcher that sends the deliveries, and the collector of objects no
// image uses. It returns the readiness checks of
// what only it depends on.
func (a *app) worker(ctx context.Context, db *postgres.DB, cache *redis.Client, dlq *kafka.Producer) (runner, []httpapi.Check, error) {
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
	stored := postgres.NewImageResults(db)
	stored.UseEvents(product.Events{Topic: a.cfg.Kafka.EventsTopic})
	results := redis.NewResultsCache(cache, stored)
	processor, err := imaging.NewProcessor(a.cfg.Imaging, fetcher, compressor, uploader, results)
	if err != nil {
		return nil, nil, err
	}
	images := telemetry.NewImages()
	processor.Observe(images)
	for _, c := range []prometheus.Collector{images, compressor} {
		if err := a.metrics().Register(c); err != nil {
			return nil, nil, fmt.Errorf("register image metrics: %w", err)
		}
	}
	tasks := kafka.Route{Topic: a.cfg.Kafka.Topic, Handler: imaging.NewTaskHandler(processor),
		MaxAttempts: imaging.MaxAttempts, KeyName: "product_id", LogHeaders: []string{imaging.HeaderTaskID}}
	routes := []kafka.Route{tasks}
	var dispatcher *webhook.Dispatcher
	if a.cfg.Kafka.EventsTopic != "" {
		// The events' route only queues deliveries; the dispatcher sends
		// them, so a slow receiver holds up no partition.
		store, err := a.webhookStore(db)
		if err != nil {
			return nil, nil, err
		}
		if dispatcher, err = webhook.NewDispatcher(a.cfg.Webhooks, store, fetcher.CheckURL, fetcher.DialContext, a.component("webhooks")); err != nil {
			return nil, nil, err
		}
		fanout := webhook.NewFanout(store, product.Policy{PublicReads: a.cfg.Auth.PublicReads}, dispatcher.Wake)
		routes = append(routes, kafka.Route{Topic: a.cfg.Kafka.EventsTopic, Handler: fanout, MaxAttempts: 5, KeyName: "product_id", Ordered: true})
	}
	c, err := kafka.NewConsumer(a.cfg.Kafka, routes, dlq, a.component("worker"))
	if err != nil {
		return nil, nil, fmt.Errorf("connect kafka consumer: %w", err)
	}
	a.onClose(c.Close)
	if err := a.metrics().Register(c); err != nil {
		return nil, nil, fmt.Errorf("register worker metrics: %w", err)
	}
	collector := imaging.NewCollector(a.cfg.Imaging.Collect, postgres.NewStoredObjects(db), uploader, a.component("collector"))
	collector.Observe(images.Collected)
	var parts parts = []runner{c, collector}
	if dispatcher != nil {
		parts = append(parts, dispatcher)
	}
	return parts, []httpapi.Check{
		{Name: "kafka_consumer", Critical: true, Run: c.Check},
		{Name: "s3", Critical: true, Run: uploader.Check},
	}, nil
}
