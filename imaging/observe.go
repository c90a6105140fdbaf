package imaging

import (
	"context"
	"time"
)

// Observer is told how tasks go, for metrics and traces. Its methods are
// called from every task at once and must be cheap.
type Observer interface {
	// Start begins a stage of an attempt: StageDownload and StageCompress
	// (once: every variant is made in one call), StageUpload (once per
	// variant), StageDatabase (each write of a result). The context it
	// returns is the stage's (a trace span's); end reports how the stage
	// ended.
	Start(ctx context.Context, stage string) (_ context.Context, end func(error))
	// Waited reports how long a task waited, from its request to its first
	// attempt (StageQueue).
	Waited(d time.Duration)
	// Outcome reports how an attempt or a task ended: ResultReady,
	// ResultStale, ResultAttemptFailed (with the failure's code) for an
	// attempt, ResultFailed (with its code) for a task given up.
	Outcome(result, code string)
	// Bytes reports the size of a fetched source (DirectionIn) or an
	// uploaded variant (DirectionOut).
	Bytes(direction string, n int64)
}

// Stages of an attempt that an Observer is told about.
const (
	StageQueue    = "queue"
	StageDownload = "download"
	StageCompress = "compress" // decode, resize and encode every variant with libvips
	StageUpload   = "upload"
	StageDatabase = "database"
)

// Results that Observer.Outcome reports.
const (
	ResultReady         = "ready"
	ResultStale         = "stale"
	ResultAttemptFailed = "attempt_failed"
	ResultFailed        = "failed"
)

// Directions of Observer.Bytes.
const (
	DirectionIn  = "in"
	DirectionOut = "out"
)

type nopObserver struct{}

func (nopObserver) Start(ctx context.Context, _ string) (context.Context, func(error)) {
	return ctx, func(error) {}
}
func (nopObserver) Waited(time.Duration)   {}
func (nopObserver) Outcome(string, string) {}
func (nopObserver) Bytes(string, int64)    {}

// Observe makes the processor tell o how its tasks go. Call it before the
// processor runs.
func (p *Processor) Observe(o Observer) { p.observe = o }

// timed runs f as stage, in the stage's context.
func (p *Processor) timed(ctx context.Context, stage string, f func(ctx context.Context) error) error {
	ctx, end := p.observe.Start(ctx, stage)
	err := f(ctx)
	end(err)
	return err
}
