package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// rotateLua is the wrk script of every target: it formats one request per
// line of a file ("KEY<TAB>PATH") at start-up and sends them in turn from an
// offset, so each request carries the next user's API key.
const rotateLua = `
local reqs, i = {}, 0
function init(args)
  local method, file, body = args[1], args[2], args[3]
  if body == "" then body = nil end
  i = tonumber(args[4])
  for line in io.lines(file) do
    local key, path = line:match("^(%S+)\t(%S+)$")
    local h = {["Authorization"] = "Bearer " .. key}
    if body then h["Content-Type"] = "application/json" end
    reqs[#reqs + 1] = wrk.format(method, path, h, body)
  end
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
`

// load is one wrk run's description: what to send where.
type load struct {
	base   string   // http://host:port
	method string   // GET or POST
	lines  []string // KEY<TAB>PATH, sent in turn
	body   string
	offset int // of the first line sent
}

// wrkResult is what wrk reported.
type wrkResult struct {
	requests int
	rps      float64
	p99      time.Duration
	mean     time.Duration
	non2xx   int
	errors   int
}

// runWrk runs wrk with one thread on the client core for d.
func (e *environment) runWrk(ctx context.Context, l load, d time.Duration) (wrkResult, error) {
	script := e.dir + "/rotate.lua"
	if err := os.WriteFile(script, []byte(rotateLua), 0o644); err != nil {
		return wrkResult{}, err
	}
	lines, err := os.CreateTemp(e.dir, "requests.")
	if err != nil {
		return wrkResult{}, err
	}
	defer os.Remove(lines.Name())
	if _, err := lines.WriteString(strings.Join(l.lines, "\n") + "\n"); err != nil {
		return wrkResult{}, err
	}
	if err := lines.Close(); err != nil {
		return wrkResult{}, err
	}
	out, err := exec.CommandContext(ctx, "taskset", "-c", strconv.Itoa(e.o.clientCore),
		"wrk", "-t1", "-c"+strconv.Itoa(e.o.conns), "-d"+fmt.Sprintf("%.0fs", d.Seconds()), "--latency",
		"-s", script, l.base, "--", l.method, lines.Name(), l.body, strconv.Itoa(l.offset%max(len(l.lines), 1))).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	return parseWrk(string(out))
}

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkP99      = regexp.MustCompile(`\s99%\s+([\d.]+)(us|ms|s)`)
	wrkMean     = regexp.MustCompile(`Latency\s+([\d.]+)(us|ms|s)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkErrors   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// parseWrk reads wrk's report.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkRequests.FindStringSubmatch(out)
	rps := wrkRPS.FindStringSubmatch(out)
	p99 := wrkP99.FindStringSubmatch(out)
	if m == nil || rps == nil || p99 == nil {
		return r, fmt.Errorf("wrk printed no figures: %s", out)
	}
	r.requests, _ = strconv.Atoi(m[1])
	r.rps, _ = strconv.ParseFloat(rps[1], 64)
	r.p99 = wrkDuration(p99)
	if m := wrkMean.FindStringSubmatch(out); m != nil {
		r.mean = wrkDuration(m)
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.non2xx, _ = strconv.Atoi(m[1])
	}
	if m := wrkErrors.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			r.errors += n
		}
	}
	return r, nil
}

// wrkDuration reads a duration wrk printed, matched as number and unit.
func wrkDuration(m []string) time.Duration {
	v, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[2]]
	return time.Duration(v * float64(unit))
}
