package cmd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pms-dev/pms/platform/kafka/kafkatest"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/platform/redis/redistest"
	"github.com/pms-dev/pms/platform/sysmon"
)

// TestAbuseServe attacks a running `pms serve` process the ways a stranger
// on the network can without a key or with one: slow clients (slowloris,
// slow bodies), oversize bodies, deep JSON, huge numbers and header floods,
// each many at once. No answer is a 5xx, the process never dies, a client
// keeps being served throughout, slow connections are closed by the
// server's timeouts, and its memory stays bounded.
func TestAbuseServe(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: builds and runs pms serve")
	}
	t.Parallel()
	bin := buildPMS(t)
	api, ops := freeAddr(t), freeAddr(t)
	env := map[string]string{
		"PMS_POSTGRES_URL":             postgrestest.Private(t),
		"PMS_REDIS_ADDR":               redistest.Addr(t),
		"PMS_KAFKA_BROKERS":            strings.Join(kafkatest.New(t).Brokers(), ","),
		"PMS_HTTP_ADDR":                api,
		"PMS_OPS_ADDR":                 ops,
		"PMS_HTTP_READ_HEADER_TIMEOUT": "2s", // production: 5s; shorter to keep the test short
		"PMS_HTTP_READ_TIMEOUT":        "4s", // production: 30s
		"PMS_RATE_LIMIT_READ_RATE":     "100000",
		"PMS_RATE_LIMIT_READ_BURST":    "100000",
		"PMS_RATE_LIMIT_WRITE_RATE":    "100000",
		"PMS_RATE_LIMIT_WRITE_BURST":   "100000",
		"PMS_LOG_LEVEL":                "warn",
	}
	config := filepath.Join("..", "config.yaml")
	out := pmsCLI(t, bin, env, "users", "create", "--email", "abuse@example.test", "--name", "Abuse", "--config", config)
	m := apiKeyLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("pms users create printed no key:\n%s", out)
	}
	serve := startProcess(t, bin, env, "serve", "--config", config)
	c := apiClient{base: "http://" + api, key: m[2]}
	waitUntil(t, 30*time.Second, "pms serve to answer", func() bool {
		r, err := c.do(http.MethodGet, "/health", "")
		return err == nil && r.status == http.StatusOK
	})
	created, err := c.do(http.MethodPost, "/api/v1/products", `{"product_name":"Target","product_price":1}`)
	if err != nil || created.status != http.StatusCreated {
		t.Fatalf("POST = %v %v, want 201", created.status, err)
	}
	// pms serve started itself again with sysmon kept steady (package
	// sysmon): the environment it runs with has the setting.
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", serve.cmd.Process.Pid))
	if err != nil || !slices.Contains(strings.Split(string(environ), "\x00"), "GODEBUG="+sysmon.Setting) {
		t.Errorf("pms serve runs without GODEBUG=%s (%v)", sysmon.Setting, err)
	}
	rest, _ := rss(t, serve)
	t.Logf("pms serve at rest: RSS %d MB, %d fds", rest>>20, fds(t, serve))
	loopbackOnly(t, api)

	// Every attack runs while a client reads the product every 50 ms.
	attack := func(name string, fn func() map[string]int) {
		t.Helper()
		stop := make(chan struct{})
		var served tally
		var slowest time.Duration
		var most int // connections to the API at once
		var wg sync.WaitGroup
		read := func() {
			r, err := c.do(http.MethodGet, "/api/v1/products?limit=1", "")
			served.add(r, err)
			slowest = max(slowest, r.latency)
			most = max(most, apiConns(t, api))
		}
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				read()
			}
		})
		start := time.Now()
		got := fn()
		close(stop)
		wg.Wait()
		read()
		now, peak := rss(t, serve)
		t.Logf("%s in %v: %v; meanwhile a client got %v (slowest %v); at most %d connections to the API; RSS %d MB, peak %d MB",
			name, time.Since(start).Round(time.Millisecond), got, &served, slowest.Round(time.Millisecond), most, now>>20, peak>>20)
		for k, n := range got {
			if strings.HasPrefix(k, "5") || k == "no answer" {
				t.Errorf("%s: %d answers were %s", name, n, k)
			}
		}
		if served.transport > 0 || len(served.codes) != 1 || served.count(http.StatusOK) == 0 {
			t.Errorf("%s: the client meanwhile got %v, want only 200s", name, &served)
		}
		if peak > rest+200<<20 {
			t.Errorf("%s: peak RSS %d MB, more than 200 MB over the %d MB at rest", name, peak>>20, rest>>20)
		}
		select {
		case <-serve.done:
			t.Fatalf("pms serve exited during %s: %v", name, serve.err)
		default:
		}
	}

	attack("300 slowloris connections (a header byte every 500 ms)", func() map[string]int {
		return many(300, func(int) string { return slowloris(t, api, 30*time.Second) })
	})
	attack("100 slow bodies (a byte every 500 ms of 10000)", func() map[string]int {
		return many(100, func(int) string { return slowBody(t, api, m[2], 30*time.Second) })
	})
	big := strings.Repeat("x", 8<<20)
	attack("50 bodies of 8 MiB at once, declared and chunked", func() map[string]int {
		return many(50, func(i int) string {
			return rawStatus(t, api, "POST", "/api/v1/products", m[2], `{"product_name":"`+big+`"}`, i%2 == 0, nil)
		})
	})
	attack("deep JSON: 20 bodies of a million '[' or '{\"a\":'", func() map[string]int {
		deep := []string{`{"product_name":"x","product_price":1,"product_images":` + strings.Repeat("[", 1<<20-100),
			strings.Repeat(`{"a":`, 200000)}
		return many(20, func(i int) string {
			return rawStatus(t, api, "POST", "/api/v1/products", m[2], deep[i%2], false, nil)
		})
	})
	attack("huge numbers", func() map[string]int {
		prices := []string{"1e400", "-1e400", "1e309", "1e-400", "123456789012345678901234567890", strings.Repeat("9", 100000),
			"0." + strings.Repeat("0", 100000) + "1", "1" + strings.Repeat("0", 400) + ".5", "9007199254740993", "-0"}
		return many(len(prices)*2, func(i int) string {
			body := fmt.Sprintf(`{"product_name":"n","product_price":%s}`, prices[i%len(prices)])
			if i >= len(prices) {
				return rawStatus(t, api, "GET", "/api/v1/products?price_min="+prices[i%len(prices)][:min(len(prices[i%len(prices)]), 1000)], m[2], "", false, nil)
			}
			return rawStatus(t, api, "POST", "/api/v1/products", m[2], body, false, nil)
		})
	})
	attack("header floods: 100 requests with 1 MiB of headers, 5000 headers or a 100 KB URL", func() map[string]int {
		return many(100, func(i int) string {
			switch i % 3 {
			case 0:
				return rawStatus(t, api, "GET", "/api/v1/products", m[2], "", false, []string{"X-Flood: " + strings.Repeat("a", 1<<20)})
			case 1:
				var hs []string
				for j := range 5000 {
					hs = append(hs, fmt.Sprintf("X-Flood-%d: %s", j, strings.Repeat("b", 100)))
				}
				return rawStatus(t, api, "GET", "/api/v1/products", m[2], "", false, hs)
			default:
				return rawStatus(t, api, "GET", "/api/v1/products?q="+strings.Repeat("c", 100<<10), m[2], "", false, nil)
			}
		})
	})
	// The client's own keep-alive connection may stay.
	waitUntil(t, 10*time.Second, "the attackers' connections to be gone", func() bool { return apiConns(t, api) <= 1 })
	now, peak := rss(t, serve)
	t.Logf("after all: RSS %d MB, peak %d MB, %d fds (PostgreSQL, Redis and Kafka pools included), %d connections to the API",
		now>>20, peak>>20, fds(t, serve), apiConns(t, api))
}

// apiConns counts the established TCP connections whose local end is addr
// (a loopback host:port), from /proc/net/tcp.
func apiConns(t *testing.T, addr string) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	local := fmt.Sprintf(":%04X", p)
	n := 0
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], local) && f[3] == "01" {
			n++
		}
	}
	return n
}

// many runs n attacks at once and counts their outcomes.
func many(n int, attack func(i int) string) map[string]int {
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			o := attack(i)
			mu.Lock()
			got[o]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return got
}

// slowloris opens a connection and sends a request's headers a byte every
// 500 ms, never ending them. It returns how the server ended it, failing
// the test if it kept the connection for d.
func slowloris(t *testing.T, addr string, d time.Duration) string {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return "no connection: " + err.Error()
	}
	defer conn.Close()
	start := time.Now()
	req := "GET /api/v1/products HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("s", 1000)
	closed := make(chan string, 1)
	go func() {
		b, err := io.ReadAll(conn)
		closed <- closedHow(b, err, time.Since(start))
	}()
	for i := 0; time.Since(start) < d; i++ {
		select {
		case how := <-closed:
			return how
		case <-time.After(500 * time.Millisecond):
		}
		if _, err := conn.Write([]byte{req[i%len(req)]}); err != nil {
			return <-closed
		}
	}
	t.Errorf("a slowloris connection was kept open for %v", d)
	return "kept open"
}

// slowBody sends a POST's headers at once and its body a byte every 500
// ms; it returns how the server ended it, failing the test if it kept the
// connection for d.
func slowBody(t *testing.T, addr, key string, d time.Duration) string {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return "no connection: " + err.Error()
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /api/v1/products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n{", key)
	closed := make(chan string, 1)
	go func() {
		b, err := io.ReadAll(conn)
		closed <- closedHow(b, err, time.Since(start))
	}()
	for time.Since(start) < d {
		select {
		case how := <-closed:
			return how
		case <-time.After(500 * time.Millisecond):
		}
		if _, err := conn.Write([]byte(" ")); err != nil {
			return <-closed
		}
	}
	t.Errorf("a slow body was read for %v", d)
	return "kept open"
}

// closedHow describes how a server ended a connection: the status it
// answered, if any, and after how many whole seconds.
func closedHow(b []byte, err error, after time.Duration) string {
	status := "closed without an answer"
	if line, _, ok := strings.Cut(string(b), "\r\n"); ok && strings.HasPrefix(line, "HTTP/1.1 ") {
		status = line[len("HTTP/1.1 "):min(len(line), len("HTTP/1.1 ")+3)]
	}
	if err != nil {
		status += ", then reset"
	}
	return fmt.Sprintf("%s after %ds", status, int(after.Seconds()))
}

// rawStatus sends one request over a connection of its own, with the body
// declared or (chunked) not and the extra header lines, and returns the
// status code the server answered, or "no answer".
func rawStatus(t *testing.T, addr, method, target, key, body string, chunked bool, headers []string) string {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return "no connection"
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	w := bufio.NewWriterSize(conn, 64<<10)
	fmt.Fprintf(w, "%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n", method, target, key)
	for _, h := range headers {
		fmt.Fprintf(w, "%s\r\n", h)
	}
	if body != "" {
		w.WriteString("Content-Type: application/json\r\n")
		if chunked {
			fmt.Fprintf(w, "Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)
		} else {
			fmt.Fprintf(w, "Content-Length: %d\r\n\r\n%s", len(body), body)
		}
	} else {
		w.WriteString("\r\n")
	}
	// The server may answer and close before the whole request is sent
	// (413, 431), so the answer is read while the request is written. When
	// it closes with much of the request unread, its kernel resets the
	// connection, which can discard the answer before it is read: that is
	// a refusal too, though not a status. The reset shows as an error of
	// the write, or, when the whole request was already in the kernel's
	// buffers, of the read.
	answer := make(chan string, 1)
	var rerr error
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			rerr = err
			answer <- "no answer"
			return
		}
		resp.Body.Close()
		answer <- strconv.Itoa(resp.StatusCode)
	}()
	werr := w.Flush()
	got := <-answer
	if got == "no answer" && (werr != nil || errors.Is(rerr, syscall.ECONNRESET)) {
		return "reset while sending"
	}
	return got
}

// fds returns how many file descriptors the process has open.
func fds(t *testing.T, p *process) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	return len(entries)
}
