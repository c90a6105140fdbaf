package imaging_test

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pms-dev/pms/imaging"
)

// Every test server here listens on loopback, and every fetcher that is
// meant to reach one is built with fetchLoopbackFetcher, which dials nothing
// outside 127.0.0.0/8: no test sends traffic anywhere else.

func fetchNewFetcher(t *testing.T, cfg imaging.FetchConfig) *imaging.Fetcher {
	t.Helper()
	f, err := imaging.NewFetcher(cfg, imaging.DefaultLimits)
	if err != nil {
		t.Fatalf("NewFetcher(%+v) error = %v", cfg, err)
	}
	return f
}

func fetchLoopbackFetcher(t *testing.T, cfg imaging.FetchConfig) *imaging.Fetcher {
	t.Helper()
	return fetchLimitedFetcher(t, cfg, imaging.DefaultLimits)
}

// fetchLimitedFetcher is fetchLoopbackFetcher with other limits.
func fetchLimitedFetcher(t *testing.T, cfg imaging.FetchConfig, lim imaging.Limits) *imaging.Fetcher {
	t.Helper()
	f, err := imaging.NewFetcherOnly(cfg, lim, netip.MustParsePrefix("127.0.0.0/8"))
	if err != nil {
		t.Fatalf("NewFetcherOnly(%+v) error = %v", cfg, err)
	}
	return f
}

// fetchFailure returns the code of the Failure in err and whether err wraps
// ErrPermanent; code is "" when err holds no Failure.
func fetchFailure(err error) (code string, permanent bool) {
	var fl *imaging.Failure
	if errors.As(err, &fl) {
		code = fl.Code
	}
	return code, errors.Is(err, imaging.ErrPermanent)
}

// fetchWantFailure checks that err is a Failure with code and permanence.
func fetchWantFailure(t *testing.T, err error, code string, permanent bool) {
	t.Helper()
	gotCode, gotPermanent := fetchFailure(err)
	if gotCode != code || gotPermanent != permanent {
		t.Errorf("Fetch() error = %v (code %q, permanent %v), want code %q, permanent %v",
			err, gotCode, gotPermanent, code, permanent)
	}
}

// fetchCanary is a loopback HTTP server that must never be reached.
type fetchCanary struct {
	port         string
	conns, hits  atomic.Int64
	listenerAddr string
}

// startFetchCanary starts a canary listening on addr; it reports false when
// addr cannot be listened on (no IPv6, say).
func startFetchCanary(t *testing.T, addr string) (*fetchCanary, bool) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, false
	}
	c := &fetchCanary{listenerAddr: ln.Addr().String()}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		c.hits.Add(1)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	_, c.port, _ = net.SplitHostPort(c.listenerAddr)
	return c, true
}

func (c *fetchCanary) check(t *testing.T) {
	t.Helper()
	if conns, hits := c.conns.Load(), c.hits.Load(); conns != 0 || hits != 0 {
		t.Errorf("canary on %s saw %d connections and %d requests, want none", c.listenerAddr, conns, hits)
	}
}

// startFetchServer serves h on 127.0.0.1. Handlers that stall wait on
// r.Context(), which ends when the client gives up or the test is over.
func startFetchServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv
}

// startRawFetchServer answers every connection on 127.0.0.1 by reading the
// request head and handing the connection to respond, then closing it.
func startRawFetchServer(t *testing.T, respond func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				respond(c)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestFetchConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  imaging.FetchConfig
		want []string // problems expected in the message; none when valid
	}{
		{"zero value takes defaults", imaging.FetchConfig{}, nil},
		{"all set", imaging.FetchConfig{
			ConnectTimeout: time.Second, Timeout: 2 * time.Second, MaxBytes: 1 << 20,
			MaxRedirects: 1, AllowPrivateNetworks: true, UserAgent: "pms-test/1",
		}, nil},
		{"negative connect timeout", imaging.FetchConfig{ConnectTimeout: -1}, []string{"connect_timeout: must not be negative"}},
		{"user agent with newline", imaging.FetchConfig{UserAgent: "a\r\nX-Evil: 1"}, []string{"user_agent: must not contain control characters"}},
		{"every problem reported", imaging.FetchConfig{
			ConnectTimeout: -1, Timeout: -1, MaxBytes: -1, MaxRedirects: -1, UserAgent: "\x00",
		}, []string{
			"connect_timeout: must not be negative",
			"timeout: must not be negative",
			"max_bytes: must not be negative",
			"max_redirects: must not be negative",
			"user_agent: must not contain control characters",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() problems mismatch (-want +got):\n%s", diff)
			}
			f, err := imaging.NewFetcher(tt.cfg, imaging.DefaultLimits)
			if (err != nil) != (tt.want != nil) || (err == nil) != (f != nil) {
				t.Errorf("NewFetcher() = %v, %v; want an error only when Validate fails", f, err)
			}
		})
	}
}

func TestFetcherAllowsPrivateNetworks(t *testing.T) {
	for _, allow := range []bool{false, true} {
		f := fetchNewFetcher(t, imaging.FetchConfig{AllowPrivateNetworks: allow})
		if got := f.AllowsPrivateNetworks(); got != allow {
			t.Errorf("AllowsPrivateNetworks() = %v with AllowPrivateNetworks %v", got, allow)
		}
	}
}

func TestFetchStatus(t *testing.T) {
	srv := startFetchServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var code int
		fmt.Sscan(strings.TrimPrefix(r.URL.Path, "/"), &code)
		w.WriteHeader(code)
	}))
	f := fetchLoopbackFetcher(t, imaging.FetchConfig{Timeout: 5 * time.Second})
	tests := []struct {
		status    int
		code      string
		permanent bool
	}{
		{http.StatusNotFound, "source_not_found", true},
		{http.StatusGone, "source_not_found", true},
		{http.StatusForbidden, "source_status_4xx", true},
		{http.StatusUnauthorized, "source_status_4xx", true},
		{http.StatusBadRequest, "source_status_4xx", true},
		{http.StatusRequestTimeout, "source_timeout", false},
		{http.StatusTooManyRequests, "source_unavailable", false},
		{http.StatusInternalServerError, "source_unavailable", false},
		{http.StatusBadGateway, "source_unavailable", false},
		{http.StatusServiceUnavailable, "source_unavailable", false},
		{http.StatusNotModified, "source_status_3xx", true},
		{http.StatusNoContent, "not_an_image", true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			_, err := f.Fetch(context.Background(), fmt.Sprintf("%s/%d", srv.URL, tt.status))
			fetchWantFailure(t, err, tt.code, tt.permanent)
		})
	}
}

func TestFetchTimeout(t *testing.T) {
	img := fetchPNG(t, 1, 1)
	srv := startFetchServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stall-body" {
			w.Write(img[:40])
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
	}))
	const timeout = 300 * time.Millisecond
	f := fetchLoopbackFetcher(t, imaging.FetchConfig{Timeout: timeout})
	for _, path := range []string{"/stall-headers", "/stall-body"} {
		t.Run(path, func(t *testing.T) {
			start := time.Now()
			_, err := f.Fetch(context.Background(), srv.URL+path)
			fetchWantFailure(t, err, "source_timeout", false)
			if took := time.Since(start); took > timeout+2*time.Second {
				t.Errorf("Fetch() took %v with Timeout %v", took, timeout)
			}
		})
	}
}

func TestFetchCancelled(t *testing.T) {
	srv := startFetchServer(t, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	f := fetchLoopbackFetcher(t, imaging.FetchConfig{Timeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := f.Fetch(ctx, srv.URL+"/x")
	if code, _ := fetchFailure(err); !errors.Is(err, context.Canceled) || code != "" {
		t.Errorf("Fetch(cancelled) error = %v, want context.Canceled and no Failure", err)
	}
}

func TestFetchConnectionBroken(t *testing.T) {
	img := fetchPNG(t, 1, 1)
	reset := startRawFetchServer(t, func(c net.Conn) { c.(*net.TCPConn).SetLinger(0) })
	truncated := startRawFetchServer(t, func(c net.Conn) {
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n%s", img[:20])
	})
	f := fetchLoopbackFetcher(t, imaging.FetchConfig{Timeout: 5 * time.Second})
	for name, u := range map[string]string{"reset": reset, "truncated": truncated} {
		t.Run(name, func(t *testing.T) {
			_, err := f.Fetch(context.Background(), u+"/x")
			fetchWantFailure(t, err, "source_unavailable", false)
		})
	}
}

func TestFetchSendsUserAgent(t *testing.T) {
	var got atomic.Value
	img := fetchPNG(t, 1, 1)
	srv := startFetchServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.UserAgent())
		w.Write(img)
	}))
	for _, tt := range []struct{ set, want string }{{"", "pms-imaging/1"}, {"pms-test/2", "pms-test/2"}} {
		f := fetchLoopbackFetcher(t, imaging.FetchConfig{UserAgent: tt.set})
		if _, err := f.Fetch(context.Background(), srv.URL); err != nil {
			t.Fatalf("Fetch() error = %v", err)
		}
		if ua := got.Load(); ua != tt.want {
			t.Errorf("with UserAgent %q the server saw %q, want %q", tt.set, ua, tt.want)
		}
	}
}

func TestFetchHTTPS(t *testing.T) {
	img := fetchPNG(t, 4, 4)
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		w.Write(img)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusting client hangs up mid-handshake
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	trusting := fetchLoopbackFetcher(t, imaging.FetchConfig{Timeout: 5 * time.Second})
	trusting.TrustForTest(roots)
	got, err := trusting.Fetch(context.Background(), srv.URL+"/img")
	if err != nil {
		t.Fatalf("Fetch(https) error = %v", err)
	}
	if got.Header.Format != imaging.FormatPNG || got.Header.Width != 4 || proto.Load() != "HTTP/2.0" {
		t.Errorf("Fetch(https) = %s %d×%d over %v, want png 4×4 over HTTP/2.0", got.Header.Format, got.Header.Width, got.Header.Height, proto.Load())
	}

	// An untrusted certificate is worth retrying later, not a refusal.
	untrusting := fetchLoopbackFetcher(t, imaging.FetchConfig{Timeout: 5 * time.Second})
	_, err = untrusting.Fetch(context.Background(), srv.URL+"/img")
	fetchWantFailure(t, err, "source_unavailable", false)
}

// ConnectTimeout bounds the TLS handshake on its own, well inside Timeout.
func TestFetchConnectTimeout(t *testing.T) {
	silent := startRawFetchServer(t, func(net.Conn) {}) // reads the ClientHello, never answers
	f := fetchLoopbackFetcher(t, imaging.FetchConfig{ConnectTimeout: 200 * time.Millisecond, Timeout: 20 * time.Second})
	start := time.Now()
	_, err := f.Fetch(context.Background(), strings.Replace(silent, "http://", "https://", 1)+"/x")
	fetchWantFailure(t, err, "source_timeout", false)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Fetch() took %v with ConnectTimeout 200ms", took)
	}
}
