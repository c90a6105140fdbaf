package imaging

import "time"

// Observer is told how tasks go, for metrics. Its methods are called from
// every task at once and must be cheap.
type Observer interface {
	// Stage reports how long one stage of an attempt took: StageQueue once
	// per task (from its request to its first attempt), StageDownload,
	// StageCompress and StageUpload (once per variant), StageDatabase (each
	// write of a result).
	Stage(stage string, d time.Duration)
	// Outcome reports how an attempt or a task ended: ResultReady,
	// ResultStale, ResultAttemptFailed (with the failure's code) for an
	// attempt, ResultFailed (with its code) for a task given up.
	Outcome(result, code string)
	// Bytes reports the size of a fetched source (DirectionIn) or an
	// uploaded variant (DirectionOut).
	Bytes(direction string, n int64)
}

// Stages of an attempt that Observer.Stage reports.
const (
	StageQueue    = "queue"
	StageDownload = "download"
	StageCompress = "compress" // decode, resize and encode with libvips
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

func (nopObserver) Stage(string, time.Duration) {}
func (nopObserver) Outcome(string, string)      {}
func (nopObserver) Bytes(string, int64)         {}

// Observe makes the processor tell o how its tasks go. Call it before the
// processor runs.
func (p *Processor) Observe(o Observer) { p.observe = o }

// timed runs f and reports how long it took as stage.
func (p *Processor) timed(stage string, f func() error) error {
	start := time.Now()
	err := f()
	p.observe.Stage(stage, time.Since(start))
	return err
}
