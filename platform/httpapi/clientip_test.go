package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/platform/httpapi"
)

// TestClientAddressOverLoopback sends requests from 127.0.0.1 with forged
// and honest forwarding headers, and reads back the client address the
// server settled on.
func TestClientAddressOverLoopback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		trusted []string
		header  []string // name, value pairs
		want    string
	}{
		{"no proxies: XFF ignored", nil, []string{"X-Forwarded-For", "203.0.113.7"}, "127.0.0.1"},
		{"no proxies: X-Real-IP ignored", nil, []string{"X-Real-IP", "203.0.113.7"}, "127.0.0.1"},
		{"no headers", []string{"127.0.0.0/8"}, nil, "127.0.0.1"},
		{"untrusted peer: XFF ignored", []string{"10.0.0.0/8"}, []string{"X-Forwarded-For", "203.0.113.7"}, "127.0.0.1"},
		{"untrusted peer: X-Real-IP ignored", []string{"10.0.0.0/8"}, []string{"X-Real-IP", "203.0.113.7"}, "127.0.0.1"},
		{"trusted peer: right-most untrusted hop", []string{"127.0.0.0/8"},
			[]string{"X-Forwarded-For", "198.51.100.1, 203.0.113.9"}, "203.0.113.9"},
		{"trusted peer: trusted hops skipped", []string{"127.0.0.1", "127.0.0.5"},
			[]string{"X-Forwarded-For", "203.0.113.9, 127.0.0.5"}, "203.0.113.9"},
		{"trusted peer: X-Real-IP", []string{"127.0.0.0/8"}, []string{"X-Real-IP", "203.0.113.7"}, "203.0.113.7"},
		{"trusted peer: XFF wins over X-Real-IP", []string{"127.0.0.0/8"},
			[]string{"X-Forwarded-For", "203.0.113.9", "X-Real-IP", "203.0.113.7"}, "203.0.113.9"},
		{"trusted peer: unreadable XFF", []string{"127.0.0.0/8"}, []string{"X-Forwarded-For", "not-an-ip"}, "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.TrustedProxies = tt.trusted
			s, err := httpapi.New(cfg, httpapi.API{}, prometheus.NewRegistry(), zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			httpapi.AddClientIPRoute(s, "/test/ip")
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/test/ip", nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i+1 < len(tt.header); i += 2 {
				req.Header.Set(tt.header[i], tt.header[i+1])
			}
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			got, _ := io.ReadAll(res.Body)
			if string(got) != tt.want {
				t.Errorf("trusting %v, GET with %q: client address %q, want %q", tt.trusted, tt.header, got, tt.want)
			}
		})
	}
}

// TestClientIPExtractor checks peers that a test may not dial against the
// extractor itself.
func TestClientIPExtractor(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string
		peer    string
		xff     string
		want    string
	}{
		{"private peer, nothing trusted", nil, "10.1.2.3:4000", "203.0.113.7", "10.1.2.3"},
		{"private peer not in the list", []string{"192.168.0.0/16"}, "10.1.2.3:4000", "203.0.113.7", "10.1.2.3"},
		{"link-local peer not in the list", []string{"192.168.0.0/16"}, "169.254.169.254:80", "203.0.113.7", "169.254.169.254"},
		{"trusted private peer", []string{"10.0.0.0/8"}, "10.1.2.3:4000", "192.0.2.1, 10.9.9.9", "192.0.2.1"},
		{"spoofed left of the client", []string{"10.0.0.0/8"}, "10.1.2.3:4000", "1.1.1.1, 198.51.100.4", "198.51.100.4"},
		{"trusted IPv6 peer", []string{"2001:db8::/32"}, "[2001:db8::1]:4000", "198.51.100.4, 2001:db8::2", "198.51.100.4"},
		{"single trusted address", []string{"10.1.2.3"}, "10.1.2.3:4000", "2001:db8:beef::1", "2001:db8:beef::1"},
		{"neighbour of a single trusted address", []string{"10.1.2.3"}, "10.1.2.4:4000", "2001:db8:beef::1", "10.1.2.4"},
		{"IPv4-mapped peer", []string{"10.0.0.0/8"}, "[::ffff:10.1.2.3]:4000", "192.0.2.1", "192.0.2.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.RemoteAddr = tt.peer
			req.Header.Set("X-Forwarded-For", tt.xff)
			if got := httpapi.ClientIP(tt.trusted...)(req); got != tt.want {
				t.Errorf("trusting %v, peer %s with X-Forwarded-For %q: client %q, want %q", tt.trusted, tt.peer, tt.xff, got, tt.want)
			}
		})
	}
}

func TestTrustedProxiesValidate(t *testing.T) {
	for _, tt := range []struct {
		proxies []string
		ok      bool
	}{
		{nil, true},
		{[]string{"10.0.0.0/8", "2001:db8::/32", "192.0.2.1", "::1"}, true},
		{[]string{"10.0.0.0/33"}, false},
		{[]string{"proxy.internal"}, false},
		{[]string{""}, false},
		{[]string{"fe80::1%eth0"}, false},
	} {
		cfg := testConfig()
		cfg.TrustedProxies = tt.proxies
		err := cfg.Validate()
		if (err == nil) != tt.ok || (err != nil && !strings.Contains(err.Error(), "http.trusted_proxies")) {
			t.Errorf("Validate() with trusted_proxies %q = %v, want ok %v", tt.proxies, err, tt.ok)
		}
	}
}
