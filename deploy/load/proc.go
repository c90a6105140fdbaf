package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of CPU times in /proc/PID/stat: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// proc is a server process whose CPU time is measured. With tree set, its
// children count too (PostgreSQL runs a process per connection).
type proc struct {
	name string
	pid  int
	tree bool
	done chan struct{} // closed when it exits; nil when another program started it
	log  string        // its output, when this command started it
}

// cpu returns the CPU time the process has used: its own, and with tree
// that of its children, running or ended (an ended child's time is added to
// its parent's cutime and cstime when the parent reaps it).
func (p *proc) cpu() (time.Duration, error) {
	own, _, err := readStat(p.pid)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p.name, err)
	}
	total := own.self
	if p.tree {
		total += own.children
		kids, err := children(p.pid)
		if err != nil {
			return 0, err
		}
		for _, k := range kids {
			if t, _, err := readStat(k); err == nil { // a child may end meanwhile
				total += t.self
			}
		}
	}
	return time.Duration(total) * time.Second / clockTicks, nil
}

// stat is the CPU time in /proc/PID/stat, in clock ticks.
type stat struct{ self, children int64 }

// readStat reads utime+stime and cutime+cstime of pid, and its parent.
func readStat(pid int) (stat, int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return stat{}, 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 15 {
		return stat{}, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	n := func(field int) int64 { v, _ := strconv.ParseInt(f[field-3], 10, 64); return v }
	return stat{self: n(14) + n(15), children: n(16) + n(17)}, int(n(4)), nil
}

// children returns the pids whose parent is pid.
func children(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var kids []int
	for _, e := range entries {
		k, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, err := readStat(k); err == nil && ppid == pid {
			kids = append(kids, k)
		}
	}
	return kids, nil
}

// pin moves pid and all its threads to core; processes it starts later
// inherit the core (so PostgreSQL's new backends follow its postmaster).
func pin(pid, core int) error {
	out, err := exec.Command("taskset", "-a", "-p", "-c", strconv.Itoa(core), strconv.Itoa(pid)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskset %d: %v: %s", pid, err, out)
	}
	return nil
}

// pinTree pins pid and its present children.
func pinTree(pid, core int) error {
	kids, err := children(pid)
	if err != nil {
		return err
	}
	for _, k := range append([]int{pid}, kids...) {
		if err := pin(k, core); err != nil && k == pid {
			return err
		}
	}
	return nil
}

// start runs bin with args and env on core, its output in logFile, in its
// own process group, and returns once ready says it is up.
func start(ctx context.Context, name string, core int, env []string, logFile string, ready func(context.Context) error, bin string, args ...string) (*proc, error) {
	out, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own descriptor
	cmd := exec.Command("taskset", append([]string{"-c", strconv.Itoa(core), bin}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	// Out of the repository, so no pms reads its config.yaml: each runs on
	// its own defaults and env (an older binary may refuse today's file).
	cmd.Dir = filepath.Dir(logFile)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	// taskset execs bin, so the pid is bin's.
	p := &proc{name: name, pid: cmd.Process.Pid, done: make(chan struct{}), log: logFile}
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(p.done) }()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var notReady error
	for {
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited while starting (%v): %s", name, waitErr, tail(logFile))
		case <-wctx.Done():
			p.stop()
			return nil, fmt.Errorf("%s did not become ready (%v): %s", name, notReady, tail(logFile))
		case <-time.After(50 * time.Millisecond):
		}
		if notReady = ready(wctx); notReady == nil {
			return p, nil
		}
	}
}

// dumpStacks makes a Go process this command started write its goroutines'
// stacks to its log and exit (SIGQUIT), to see what a stuck one waits for.
func (p *proc) dumpStacks() {
	if p == nil || p.done == nil {
		return
	}
	_ = syscall.Kill(p.pid, syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// stop ends a process this command started: SIGTERM, then SIGKILL.
func (p *proc) stop() {
	if p == nil || p.done == nil {
		return
	}
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.done
	}
}

// httpReady reports whether url answers 200.
func httpReady(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<10))
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s: %s", url, res.Status, body)
		}
		return nil
	}
}

// tcpReady reports whether addr accepts connections.
func tcpReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// tail returns the last lines of a log file, for an error message.
func tail(file string) string {
	f, err := os.Open(file)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		lines = append(lines, s.Text())
		if len(lines) > 5 {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return "(no output)"
	}
	return strings.Join(lines, " | ")
}

// startPerf starts perf record -g on procs (with their children) when -perf
// names a directory, writing <target>-<round>.data there; the function it
// returns stops the recording and waits for perf to write its file.
func (e *environment) startPerf(ctx context.Context, procs []*proc) (func(), error) {
	if e.o.perf == "" {
		return func() {}, nil
	}
	var pids []string
	for _, p := range procs {
		pids = append(pids, strconv.Itoa(p.pid))
		if p.tree {
			kids, err := children(p.pid)
			if err != nil {
				return nil, err
			}
			for _, k := range kids {
				pids = append(pids, strconv.Itoa(k))
			}
		}
	}
	out := filepath.Join(e.o.perf, e.run+".data")
	cmd := exec.CommandContext(ctx, "perf", "record", "-q", "-g", "-F", "999", "-o", out, "-p", strings.Join(pids, ","))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf record: %w", err)
	}
	return func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}, nil
}
