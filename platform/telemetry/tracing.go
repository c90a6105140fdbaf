package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// Config says whether and where traces are exported.
type Config struct {
	// OTLPEndpoint is the OTLP/HTTP collector's base URL, e.g.
	// http://otel-collector:4318; "" (the default) exports nothing.
	OTLPEndpoint string `mapstructure:"otlp_endpoint"`
	// SampleRatio is the share of traces started here that are exported
	// (0 to 1); a trace a caller started follows the caller's choice.
	SampleRatio float64 `mapstructure:"sample_ratio"`
}

// DefaultConfig returns the defaults: no export, every trace sampled once
// an endpoint is set.
func DefaultConfig() Config { return Config{SampleRatio: 1} }

// Validate reports every problem with the config.
func (c Config) Validate() error {
	var errs []error
	if c.OTLPEndpoint != "" {
		if u, err := url.Parse(c.OTLPEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, errors.New("tracing.otlp_endpoint: must be an http(s) URL such as http://otel-collector:4318"))
		}
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		errs = append(errs, errors.New("tracing.sample_ratio: must be between 0 and 1"))
	}
	return errors.Join(errs...)
}

// Setup installs the process's tracer provider and the W3C trace context
// propagator (traceparent), and returns the function that flushes and
// stops it. Without an endpoint spans are made, so trace ids reach the
// logs and travel with requests and messages, but none is sampled or sent.
// exporter, when not nil, replaces OTLP (tests use an in-memory one).
func Setup(cfg Config, service, version string, exporter sdktrace.SpanExporter) (func(context.Context) error, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(resource.NewSchemaless(
		semconv.ServiceName(service), semconv.ServiceVersion(version)))}
	switch {
	case exporter != nil:
		opts = append(opts, sdktrace.WithSyncer(exporter), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	case cfg.OTLPEndpoint != "":
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(cfg.OTLPEndpoint+"/v1/traces"),
			otlptracehttp.WithTimeout(10*time.Second))
		if err != nil {
			return nil, fmt.Errorf("otlp exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))))
	default:
		opts = append(opts, sdktrace.WithSampler(sdktrace.NeverSample()))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return tp.Shutdown, nil
}
