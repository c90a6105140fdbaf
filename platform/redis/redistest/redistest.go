// Package redistest gives tests a Redis server: the shared one named by
// PMS_TEST_REDIS_ADDR (`make test` starts one), or a private redis-server
// child process that a test may stop, pause and restart.
package redistest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pms-dev/pms/platform/freeport"
)

// EnvAddr names the environment variable with the shared test server's
// host:port.
const EnvAddr = "PMS_TEST_REDIS_ADDR"

// Addr returns the address of the shared test server. It skips the test
// under -short and fails it when no server is configured. The server is
// shared by every test binary, so tests must use keys of their own (unique
// ids; see Prefix) and never FLUSHDB.
func Addr(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("integration test: needs Redis (run without -short, via make test)")
	}
	addr := os.Getenv(EnvAddr)
	if addr == "" {
		tb.Fatalf("%s is not set: run the integration tests with `make test`, or -short to skip them", EnvAddr)
	}
	return addr
}

// Prefix returns a key prefix no other test uses, ending in ":".
func Prefix(tb testing.TB) string {
	tb.Helper()
	return "test:" + rand.Text() + ":"
}

// Server is a private redis-server child process on a loopback port that
// stays the same across Stop and Start. It keeps nothing on disk.
type Server struct {
	tb   testing.TB
	addr string
	dir  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error // receives the result of cmd.Wait
}

// Start starts a private redis-server and returns it once it answers. The
// test cleanup kills it. It skips the test under -short and fails it when
// redis-server is not installed.
func Start(tb testing.TB) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("integration test: needs redis-server (run without -short)")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Fatalf("redis-server is not installed: %v", err)
	}
	s := &Server{tb: tb, dir: tb.TempDir()}
	tb.Cleanup(s.kill)
	var err error
	for range 5 { // the free port may be taken before redis-server binds it
		var port int
		if port, err = freeport.Port(); err != nil {
			break
		}
		s.addr = net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
		if err = s.start(); err == nil {
			return s
		}
	}
	tb.Fatalf("start redis-server: %v", err)
	return nil
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.addr }

// Stop kills the server (SIGKILL, as a crash would) and waits for it to exit.
func (s *Server) Stop() {
	s.tb.Helper()
	s.kill()
}

// Restart starts the server again on the same port, empty.
func (s *Server) Restart() {
	s.tb.Helper()
	s.kill()
	var err error
	for range 20 { // the old socket may linger for a moment
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.tb.Fatalf("restart redis-server on %s: %v", s.addr, err)
}

// Pause stops the process (SIGSTOP): connections open but nothing answers,
// like a hung server. The test cleanup resumes and kills it.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.tb.Fatalf("redis-server on %s is not running", s.addr)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.tb.Fatalf("signal redis-server: %v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, port, _ := net.SplitHostPort(s.addr)
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			return fmt.Errorf("redis-server exited (%v): %s", err, lastLines(log, 5))
		default:
		}
		if ping(s.addr) == nil {
			s.cmd, s.exited = cmd, exited
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("redis-server on %s did not answer within 5s", s.addr)
}

// kill kills the server if it runs and waits for it to exit.
func (s *Server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill() // SIGKILL ends a paused process too
	<-s.exited
	s.cmd, s.exited = nil, nil
}

// ping reports whether a Redis server answers PING at addr.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func lastLines(b []byte, n int) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return bytes.Join(lines, []byte("\n"))
}

// Exists reports whether the server holds key.
func (s *Server) Exists(key string) (bool, error) {
	conn, err := net.DialTimeout("tcp", s.addr, time.Second)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := fmt.Fprintf(conn, "*2\r\n$6\r\nEXISTS\r\n$%d\r\n%s\r\n", len(key), key); err != nil {
		return false, err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return false, err
	}
	return line == ":1\r\n", nil
}
