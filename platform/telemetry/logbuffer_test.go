package telemetry_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/platform/telemetry"
)

// writes records each write the buffer makes.
type writes struct {
	mu     sync.Mutex
	writes []string
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func (w *writes) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.writes...)
}

func TestLogBufferBatchesInfoLines(t *testing.T) {
	w := &writes{}
	b := telemetry.NewLogBuffer(w, 1<<10, 50*time.Millisecond)
	l := zerolog.New(b)
	for i := range 3 {
		l.Info().Int("n", i).Msg("request")
	}
	if got := w.all(); len(got) != 0 {
		t.Fatalf("info lines were written at once: %q", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(w.all()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the buffered lines were not written within 5 s of a 50 ms interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := w.all()
	if len(got) != 1 || strings.Count(got[0], "\n") != 3 {
		t.Fatalf("want the 3 lines in one write, got %q", got)
	}
	for i, line := range strings.Split(strings.TrimSuffix(got[0], "\n"), "\n") {
		if want := `{"level":"info","n":` + string(rune('0'+i)) + `,"message":"request"}`; line != want {
			t.Errorf("line %d = %s, want %s", i, line, want)
		}
	}
}

func TestLogBufferWritesWarningsAtOnceInOrder(t *testing.T) {
	w := &writes{}
	b := telemetry.NewLogBuffer(w, 1<<10, time.Hour)
	l := zerolog.New(b)
	l.Info().Msg("before")
	l.Warn().Msg("trouble")
	want := `{"level":"info","message":"before"}` + "\n" + `{"level":"warn","message":"trouble"}` + "\n"
	if got := strings.Join(w.all(), ""); got != want {
		t.Fatalf("want the info line then the warning, written at once, got %q", got)
	}
	l.Error().Msg("worse")
	if got := strings.Join(w.all(), ""); !strings.HasSuffix(got, `"message":"worse"}`+"\n") {
		t.Fatalf("an error line waited: %q", got)
	}
}

// stalled is a destination whose writes wait until release is closed, as a
// pipe nobody drains or a file on a disk busy with fsyncs does.
type stalled struct {
	writes
	started chan struct{} // one value as each write starts
	release chan struct{}
}

func (s *stalled) Write(p []byte) (int, error) {
	s.started <- struct{}{}
	<-s.release
	return s.writes.Write(p)
}

func TestLogBufferFullBufferIsWrittenInTheBackground(t *testing.T) {
	w := &stalled{started: make(chan struct{}, 8), release: make(chan struct{})}
	b := telemetry.NewLogBuffer(w, 100, time.Hour)
	line := func(c byte) []byte { return []byte(strings.Repeat(string(c), 39) + "\n") } // 40 bytes
	for _, c := range []byte("abcd") {
		if _, err := b.Write(line(c)); err != nil {
			t.Fatal(err)
		}
	}
	// The third line did not fit in 100 bytes: the first two are being
	// written, and that write stalls, but no Write waited for it.
	select {
	case <-w.started:
	case <-time.After(5 * time.Second):
		t.Fatal("a full buffer was not written within 5 s")
	}
	// With both buffers full, the next line waits for the stalled write.
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		_, _ = b.Write(line('e'))
	}()
	select {
	case <-returned:
		t.Fatal("a line went into memory beyond two full buffers")
	case <-time.After(50 * time.Millisecond):
	}
	close(w.release)
	<-returned
	big := bytes.Repeat([]byte("y"), 300)
	if _, err := b.Write(big); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	want := string(line('a')) + string(line('b')) + string(line('c')) + string(line('d')) + string(line('e')) + string(big)
	got := w.all()
	if strings.Join(got, "") != want || got[0] != string(line('a'))+string(line('b')) {
		t.Fatalf("writes %q, want the first two lines in one write, then the rest in order", got)
	}
	after := len(got)
	if _, err := b.Write(line('z')); err != nil {
		t.Fatal(err)
	}
	if got := w.all(); len(got) != after+1 {
		t.Fatalf("a line after Close waited: %q", got)
	}
}

// failing is a destination whose every write fails.
type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestLogBufferReportsABackgroundWriteError(t *testing.T) {
	b := telemetry.NewLogBuffer(failing{}, 100, time.Hour)
	line := []byte(strings.Repeat("x", 59) + "\n") // 60 bytes: each one fills the buffer
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = b.Write(line)
	}
	if err == nil || err.Error() != "disk full" {
		t.Fatalf("the error of a background write never came back: %v", err)
	}
}

func TestLogBufferUnbuffered(t *testing.T) {
	w := &writes{}
	l := zerolog.New(telemetry.NewLogBuffer(w, 1<<10, 0))
	l.Info().Msg("a")
	l.Info().Msg("b")
	if got := w.all(); len(got) != 2 {
		t.Fatalf("interval 0 must write each line at once: %q", got)
	}
}
