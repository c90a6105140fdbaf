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
// largest single cost of a cached GET).
//
// A request never waits for its info line to be written: a full buffer is
// handed to a goroutine to write while new lines go into a second one, so
// a write that stalls (a pipe that a log shipper drains late, a file on a
// disk busy with PostgreSQL's fsyncs) holds up no response. Lines wait only
// when both buffers are full, so memory stays bounded at twice size.
//
// A line at warn level or above is written at once, with every line before
// it, before WriteLevel returns: whatever explains a failure is never held
// back. What a crash can lose is the info lines of its last interval; Close
// writes the rest.
//
// It is a zerolog.LevelWriter; lines are written whole, in order.
type LogBuffer struct {
	w        io.Writer
	size     int
	interval time.Duration

	mu      sync.Mutex
	idle    sync.Cond   // signalled when a write ends
	buf     []byte      // lines waiting
	spare   []byte      // the other buffer, when no write holds it
	writing bool        // a write is in flight
	err     error       // the last failed background write, reported once
	timer   *time.Timer // armed while buf holds lines
	armed   bool
	closed  bool
}

// NewLogBuffer returns a LogBuffer writing to w. An interval of 0 writes
// every line at once, as w itself would.
func NewLogBuffer(w io.Writer, size int, interval time.Duration) *LogBuffer {
	b := &LogBuffer{w: w, size: size, interval: interval}
	b.idle.L = &b.mu
	if interval > 0 {
		b.buf, b.spare = make([]byte, 0, size), make([]byte, 0, size)
	}
	b.timer = time.AfterFunc(time.Hour, func() { _ = b.Flush() })
	b.timer.Stop()
	return b
}

// Write buffers an info line.
func (b *LogBuffer) Write(p []byte) (int, error) { return b.WriteLevel(zerolog.InfoLevel, p) }

// WriteLevel buffers p, a line at level l. It writes p at once, with the
// lines before it, when l is warn or above or the buffer is closed or not
// buffering. When p does not fit, the lines waiting are written in the
// background.
func (b *LogBuffer) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	b.mu.Lock()
	if b.interval <= 0 {
		defer b.mu.Unlock()
		return b.w.Write(p)
	}
	if b.closed || (l >= zerolog.WarnLevel && l != zerolog.NoLevel) {
		b.waitLocked()
		b.buf = append(b.buf, p...)
		out := b.takeLocked()
		b.mu.Unlock()
		return len(p), b.write(out, false)
	}
	if len(b.buf) > 0 && len(b.buf)+len(p) > b.size {
		b.waitLocked() // both buffers full: the destination is behind
		go b.write(b.takeLocked(), true)
	}
	b.buf = append(b.buf, p...)
	if !b.armed {
		b.armed = true
		b.timer.Reset(b.interval)
	}
	err := b.err
	b.err = nil
	b.mu.Unlock()
	return len(p), err
}

// Flush writes the lines waiting, and waits for a write in flight.
func (b *LogBuffer) Flush() error {
	b.mu.Lock()
	b.waitLocked()
	out, err := b.takeLocked(), b.err
	b.err = nil
	b.mu.Unlock()
	if werr := b.write(out, false); werr != nil {
		err = werr
	}
	return err
}

// Close writes the lines waiting; later lines are written at once.
func (b *LogBuffer) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return b.Flush()
}

// waitLocked waits, with mu held, until no write is in flight.
func (b *LogBuffer) waitLocked() {
	for b.writing {
		b.idle.Wait()
	}
}

// takeLocked takes the lines waiting for a write, leaving the spare buffer
// in their place, and disarms the timer. With mu held and no write in
// flight; it returns nil when no line waits.
func (b *LogBuffer) takeLocked() []byte {
	if b.armed {
		b.timer.Stop()
		b.armed = false
	}
	if len(b.buf) == 0 {
		return nil
	}
	out := b.buf
	b.buf, b.spare = b.spare[:0], nil
	b.writing = true
	return out
}

// write writes lines that takeLocked took, without mu, and gives their
// buffer back. A nil out writes nothing. The error of a background write
// is kept for the next call to return.
func (b *LogBuffer) write(out []byte, background bool) error {
	if out == nil {
		return nil
	}
	_, err := b.w.Write(out)
	b.mu.Lock()
	b.spare, b.writing = out[:0], false
	if background && err != nil {
		b.err = err
	}
	b.idle.Broadcast()
	b.mu.Unlock()
	return err
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
