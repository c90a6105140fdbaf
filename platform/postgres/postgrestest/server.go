package postgrestest

import (
	"fmt"
	"os"
	osexec "os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pms-dev/pms/platform/freeport"
)

// Server is a PostgreSQL server of one test's own, on a free loopback
// port, which the test may stop and start again, or hang (SIGSTOP) and
// resume, to see how pms meets an outage. It is stopped and deleted when
// the test ends.
type Server struct {
	bin, dir string
	port     int
	asUser   string // run the server's tools as this user ("" for the test's own)
}

// StartServer initialises a PostgreSQL cluster in a temporary directory
// and starts it, with its data unsynced (it is thrown away). As root the
// cluster belongs to the postgres user, since PostgreSQL refuses to run as
// root. It skips the test under -short and fails it when the PostgreSQL
// server programs are missing.
func StartServer(tb testing.TB) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("integration test: runs a PostgreSQL server")
	}
	s := &Server{bin: serverBin(tb), port: freePort(tb)}
	dir, err := os.MkdirTemp("", "pms-pgserver-")
	if err != nil {
		tb.Fatal(err)
	}
	s.dir = dir
	tb.Cleanup(func() { s.stop(); _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		s.asUser = "postgres"
		u, err := user.Lookup(s.asUser)
		if err != nil {
			tb.Fatalf("as root the server runs as the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chmod(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			tb.Fatal(err)
		}
	}
	s.run(tb, "initdb", "-D", s.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8",
		"--no-sync", "--no-instructions")
	s.Start(tb)
	return s
}

// URL returns the URL of database db on the server.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Start starts the server, which must be stopped, and waits until it
// accepts connections.
func (s *Server) Start(tb testing.TB) {
	tb.Helper()
	s.run(tb, "pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "server.log"), "-w", "-t", "60", "start",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off", s.port, s.dir))
}

// Stop shuts the server down at once (fast mode: sessions are ended).
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	s.run(tb, "pg_ctl", "-D", s.data(), "-m", "fast", "-w", "stop")
}

// Pause stops every process of the server with SIGSTOP: connections stay
// open and nothing answers, as on a hung host.
func (s *Server) Pause(tb testing.TB) { tb.Helper(); s.signal(tb, syscall.SIGSTOP) }

// Resume lets the processes Pause stopped go on.
func (s *Server) Resume(tb testing.TB) { tb.Helper(); s.signal(tb, syscall.SIGCONT) }

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// signal sends sig to the postmaster and every process it started.
func (s *Server) signal(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	pid := s.postmaster(tb)
	pids := append(children(pid), pid)
	for _, p := range pids {
		if err := syscall.Kill(p, sig); err != nil && err != syscall.ESRCH {
			tb.Fatalf("send %v to PostgreSQL process %d: %v", sig, p, err)
		}
	}
}

// postmaster returns the server's pid from its postmaster.pid file.
func (s *Server) postmaster(tb testing.TB) int {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(s.data(), "postmaster.pid"))
	if err != nil {
		tb.Fatalf("read postmaster.pid: %v", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		tb.Fatalf("postmaster.pid holds %q", first)
	}
	return pid
}

// stop stops the server if it runs, for the test's cleanup: resumed first,
// in case the test left it paused.
func (s *Server) stop() {
	b, err := os.ReadFile(filepath.Join(s.data(), "postmaster.pid"))
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(string(b), "\n")
	if pid, err := strconv.Atoi(strings.TrimSpace(first)); err == nil {
		for _, p := range append(children(pid), pid) {
			_ = syscall.Kill(p, syscall.SIGCONT)
		}
	}
	_ = s.command("pg_ctl", "-D", s.data(), "-m", "immediate", "-w", "stop").Run()
}

// run runs a PostgreSQL program, as the server's user, failing the test
// with its output when it fails.
func (s *Server) run(tb testing.TB, prog string, args ...string) {
	tb.Helper()
	if out, err := s.command(prog, args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		tb.Fatalf("%s %s: %v\n%s\n%s", prog, strings.Join(args, " "), err, out, log)
	}
}

func (s *Server) command(prog string, args ...string) *osexec.Cmd {
	path := filepath.Join(s.bin, prog)
	if s.asUser != "" {
		return osexec.Command("runuser", append([]string{"-u", s.asUser, "--", path}, args...)...)
	}
	return osexec.Command(path, args...)
}

// serverBin returns the directory of the newest PostgreSQL server programs.
func serverBin(tb testing.TB) string {
	tb.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) < version(dirs[j]) })
	if len(dirs) > 0 {
		return dirs[len(dirs)-1]
	}
	if p, err := osexec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p)
	}
	tb.Fatal("no PostgreSQL server programs (pg_ctl, initdb): run make deps")
	return ""
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// children returns the pids of the processes whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The fields after the command name, which is in parentheses and
		// may hold spaces: state, then the parent's pid.
		i := strings.LastIndexByte(string(stat), ')')
		if f := strings.Fields(string(stat[i+1:])); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

func freePort(tb testing.TB) int {
	tb.Helper()
	port, err := freeport.Port()
	if err != nil {
		tb.Fatal(err)
	}
	return port
}
