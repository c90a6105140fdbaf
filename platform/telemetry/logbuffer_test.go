package telemetry_test

import (
	"bytes"
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
	got := w.all()
	if len(got) != 2 || !strings.Contains(got[0], "before") || !strings.Contains(got[1], "trouble") {
		t.Fatalf("want the info line then the warning, written at once, got %q", got)
	}
	l.Error().Msg("worse")
	if got := w.all(); len(got) != 3 {
		t.Fatalf("an error line waited: %q", got)
	}
}

func TestLogBufferFullAndClose(t *testing.T) {
	w := &writes{}
	b := telemetry.NewLogBuffer(w, 100, time.Hour)
	line := []byte(strings.Repeat("x", 39) + "\n") // 40 bytes
	for range 3 {
		if _, err := b.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	// The third line did not fit in 100 bytes: the first two went first.
	if got := w.all(); len(got) != 1 || got[0] != string(line)+string(line) {
		t.Fatalf("after 3 lines of 40 bytes in a 100-byte buffer, writes %q", got)
	}
	big := bytes.Repeat([]byte("y"), 300)
	if _, err := b.Write(big); err != nil {
		t.Fatal(err)
	}
	if got := w.all(); len(got) != 3 || got[1] != string(line) || got[2] != string(big) {
		t.Fatalf("a line larger than the buffer: writes %q", got)
	}
	if _, err := b.Write(line); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := w.all(); len(got) != 4 || got[3] != string(line) {
		t.Fatalf("Close did not write the last line: %q", got)
	}
	if _, err := b.Write(line); err != nil {
		t.Fatal(err)
	}
	if got := w.all(); len(got) != 5 {
		t.Fatalf("a line after Close waited: %q", got)
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
