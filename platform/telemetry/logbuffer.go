package telemetry

import (
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// LogBuffer collects JSON log lines and writes them in batches: one
// write(2) at most every interval, or whenever size bytes are waiting,
// instead of one per line (at one line per request, that write was the
// largest single cost of a cached GET). A line at warn level or above is
// written at once, with every line before it, so whatever explains a
// failure is never held back. What a crash can lose is the info lines of
// its last interval; Close writes the rest.
//
// It is a zerolog.LevelWriter; lines are written whole, in order.
type LogBuffer struct {
	w        io.Writer
	size     int
	interval time.Duration

	mu     sync.Mutex
	buf    []byte
	timer  *time.Timer // armed while buf holds lines
	armed  bool
	closed bool
}

// NewLogBuffer returns a LogBuffer writing to w. An interval of 0 writes
// every line at once, as w itself would.
func NewLogBuffer(w io.Writer, size int, interval time.Duration) *LogBuffer {
	b := &LogBuffer{w: w, size: size, interval: interval}
	if interval > 0 {
		b.buf = make([]byte, 0, size)
	}
	b.timer = time.AfterFunc(time.Hour, func() { _ = b.Flush() })
	b.timer.Stop()
	return b
}

// Write buffers an info line.
func (b *LogBuffer) Write(p []byte) (int, error) { return b.WriteLevel(zerolog.InfoLevel, p) }

// WriteLevel buffers p, a line at level l, or writes it at once with the
// lines before it when l is warn or above, the buffer is full, or the
// buffer is closed or not buffering.
func (b *LogBuffer) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.interval <= 0 || (l >= zerolog.WarnLevel && l != zerolog.NoLevel) {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		return b.w.Write(p)
	}
	if len(b.buf)+len(p) > b.size {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > b.size {
			return b.w.Write(p)
		}
	}
	b.buf = append(b.buf, p...)
	if !b.armed {
		b.armed = true
		b.timer.Reset(b.interval)
	}
	return len(p), nil
}

// Flush writes the lines waiting.
func (b *LogBuffer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

func (b *LogBuffer) flushLocked() error {
	if b.armed {
		b.timer.Stop()
		b.armed = false
	}
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// Close writes the lines waiting; later lines are written at once.
func (b *LogBuffer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return b.flushLocked()
}

// Logger returns l as pms logs: at level, each line with its time (RFC 3339,
// nanoseconds) and service "pms", durations in milliseconds. It sets
// zerolog's process-wide formats.
func Logger(l zerolog.Logger, level zerolog.Level) zerolog.Logger {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	zerolog.DurationFieldUnit = time.Millisecond
	zerolog.DurationFieldInteger = false
	return l.Level(level).With().Timestamp().Str("service", "pms").Logger()
}
