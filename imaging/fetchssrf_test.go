package imaging_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pms-dev/pms/imaging"
)

// End-to-end SSRF checks. Canaries and servers listen on loopback only; a
// fetcher that should reach one is limited to 127.0.0.0/8 (or 127.0.0.2/32),
// and addresses off this machine are only ever written in redirects that the
// fetcher must refuse before dialling.

// TestFetchRefusesLoopbackByDefault fetches loopback addresses, in every
// spelling, with the default configuration: none may reach the canary.
func TestFetchRefusesLoopbackByDefault(t *testing.T) {
	v4, _ := startFetchCanary(t, "127.0.0.1:0")
	v6, haveV6 := startFetchCanary(t, "[::1]:0")
	f := fetchNewFetcher(t, imaging.FetchConfig{Timeout: 5 * time.Second})
	tests := []struct {
		name, url string
		v6        bool
		code      string
	}{
		{"loopback", "http://127.0.0.1:%s/x", false, "blocked_address"},
		{"name resolving to loopback", "http://localhost:%s/x", false, "blocked_address"},
		{"upper-case scheme", "HTTP://127.0.0.1:%s/x", false, "blocked_address"},
		{"https", "https://127.0.0.1:%s/x", false, "blocked_address"},
		{"ipv4-mapped", "http://[::ffff:127.0.0.1]:%s/", false, "blocked_address"},
		{"ipv4-mapped hex", "http://[::ffff:7f00:1]:%s/", false, "blocked_address"},
		{"decimal", "http://2130706433:%s/", false, "blocked_address"},
		{"hex", "http://0x7f000001:%s/", false, "blocked_address"},
		{"octal", "http://0177.0.0.1:%s/", false, "blocked_address"},
		{"short form", "http://127.1:%s/", false, "blocked_address"},
		{"trailing dot", "http://127.0.0.1.:%s/", false, "blocked_address"},
		{"unspecified", "http://0.0.0.0:%s/", false, "blocked_address"},
		{"zero", "http://0:%s/", false, "blocked_address"},
		{"v6 unspecified", "http://[::]:%s/", true, "blocked_address"},
		{"v6 loopback", "http://[::1]:%s/", true, "blocked_address"},
		{"v6 loopback long form", "http://[0:0:0:0:0:0:0:1]:%s/", true, "blocked_address"},
		{"ipv4-compatible", "http://[::127.0.0.1]:%s/", false, "blocked_address"},
		{"nat64", "http://[64:ff9b::7f00:1]:%s/", false, "blocked_address"},
		{"6to4", "http://[2002:7f00:1::]:%s/", false, "blocked_address"},
		{"percent-encoded host", "http://%%31%%32%%37.0.0.1:%s/", false, "invalid_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := v4.port
			if tt.v6 {
				// Without IPv6 on this machine the refusal is still checked
				// (it comes before any dial); only the canary cannot listen.
				port = "1"
				if haveV6 {
					port = v6.port
				}
			}
			_, err := f.Fetch(context.Background(), fmt.Sprintf(tt.url, port))
			fetchWantFailure(t, err, tt.code, true)
		})
	}
	v4.check(t)
	if haveV6 {
		v6.check(t)
	} else {
		t.Log("no listener on [::1]: the IPv6 refusals were checked, their canary was not")
	}
}

// TestFetchRefusesBadURLs uses a loopback-only fetcher, so even a URL that
// slipped through could reach nothing but this machine.
func TestFetchRefusesBadURLs(t *testing.T) {
	canary, _ := startFetchCanary(t, "127.0.0.1:0")
	f := fetchLoopbackFetcher(t, imaging.FetchConfig{Timeout: 5 * time.Second})
	long := "http://127.0.0.1:" + canary.port + "/" + strings.Repeat("a", 2048)
	tests := []struct{ name, url string }{
		{"ftp", "ftp://127.0.0.1:%s/x.png"},
		{"file", "file:///etc/passwd"},
		{"gopher", "gopher://127.0.0.1:%s/"},
		{"javascript", "javascript:alert(1)"},
		{"data", "data:image/png;base64,iVBORw0KGgo="},
		{"opaque", "http:127.0.0.1"},
		{"no scheme", "//127.0.0.1:%s/x"},
		{"relative", "/x.png"},
		{"empty", ""},
		{"user and password", "http://user:pass@127.0.0.1:%s/x"},
		{"user only", "http://user@127.0.0.1:%s/x"},
		{"no host", "http:///x"},
		{"port only", "http://:%s/x"},
		{"unparsable", "http://[::1/x"},
		{"control character", "http://127.0.0.1:%s/\x7f\n"},
		{"too long", "%s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.url
			switch {
			case tt.name == "too long":
				u = long
			case strings.Contains(u, "%s"):
				u = fmt.Sprintf(u, canary.port)
			}
			_, err := f.Fetch(context.Background(), u)
			fetchWantFailure(t, err, "invalid_url", true)
		})
	}
	canary.check(t)
}

// fetchRedirector serves /redirect?to=URL (a 302 to URL), /hop/N (a chain of
// N redirects ending at the image) and /img.
func fetchRedirector(img []byte) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", r.URL.Query().Get("to"))
		w.WriteHeader(http.StatusFound)
	})
	mux.HandleFunc("/hop/{n}", func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscan(r.PathValue("n"), &n)
		if n == 0 {
			http.Redirect(w, r, "/img", http.StatusMovedPermanently)
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/hop/%d", n-1), http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/img", func(w http.ResponseWriter, _ *http.Request) { w.Write(img) })
	return mux
}

func TestFetchRedirects(t *testing.T) {
	img := fetchPNG(t, 2, 3)
	srv := startFetchServer(t, fetchRedirector(img))
	redirect := func(to string) string { return srv.URL + "/redirect?to=" + url.QueryEscape(to) }
	tests := []struct {
		name         string
		maxRedirects int
		url          string
		code         string // "" when the fetch succeeds
	}{
		{"cloud metadata", 0, redirect("http://169.254.169.254/latest/meta-data/"), "blocked_address"},
		{"rfc1918", 0, redirect("http://10.0.0.1/"), "blocked_address"},
		{"mapped metadata", 0, redirect("http://[::ffff:169.254.169.254]/"), "blocked_address"},
		{"decimal metadata", 0, redirect("http://2852039166/"), "blocked_address"},
		{"public address outside the test allow-list", 0, redirect("http://8.8.8.8/"), "blocked_address"},
		{"ftp", 0, redirect("ftp://127.0.0.1/x.png"), "invalid_url"},
		{"file", 0, redirect("file:///etc/passwd"), "invalid_url"},
		{"user info", 0, redirect(srv.URL[:7] + "u:p@" + srv.URL[7:] + "/img"), "invalid_url"},
		{"three hops", 0, srv.URL + "/hop/2", ""},
		{"four hops", 0, srv.URL + "/hop/3", "too_many_redirects"},
		{"one hop allowed, one taken", 1, srv.URL + "/hop/0", ""},
		{"one hop allowed, two taken", 1, srv.URL + "/hop/1", "too_many_redirects"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fetchLoopbackFetcher(t, imaging.FetchConfig{MaxRedirects: tt.maxRedirects, Timeout: 5 * time.Second})
			src, err := f.Fetch(context.Background(), tt.url)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Fetch(%q) error = %v, want none", tt.url, err)
				}
				want := imaging.Source{URL: tt.url, Data: img, Header: imaging.Header{Format: imaging.FormatPNG, Width: 2, Height: 3, Frames: 1}}
				if diff := cmp.Diff(want, src); diff != "" {
					t.Errorf("Fetch(%q) mismatch (-want +got):\n%s", tt.url, diff)
				}
				return
			}
			fetchWantFailure(t, err, tt.code, true)
			// The hop must be refused by the redirect check, before any dial.
			if tt.code == "blocked_address" && (!strings.Contains(err.Error(), "redirect to") || strings.Contains(err.Error(), "dial")) {
				t.Errorf("Fetch(%q) error = %v, want a refusal from the redirect check, not the dialler", tt.url, err)
			}
		})
	}
}

// With AllowPrivateNetworks the loopback server is reachable, but link-local,
// multicast and unspecified targets are still refused.
func TestFetchRedirectsWithPrivateNetworksAllowed(t *testing.T) {
	img := fetchPNG(t, 1, 1)
	srv := startFetchServer(t, fetchRedirector(img))
	f := fetchNewFetcher(t, imaging.FetchConfig{AllowPrivateNetworks: true, Timeout: 5 * time.Second})
	if _, err := f.Fetch(context.Background(), srv.URL+"/hop/1"); err != nil {
		t.Fatalf("Fetch(loopback) error = %v, want none with AllowPrivateNetworks", err)
	}
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, to := range []string{
		"http://169.254.169.254/latest/meta-data/",
		"http://[::ffff:169.254.169.254]/latest/meta-data/",
		"http://[fe80::1]/",
		"http://[fe80::1%25lo]:" + port + "/img",
		"http://224.0.0.1/",
		"http://[ff02::1]/",
		"http://0.0.0.0:" + port + "/img",
		"http://[::]:" + port + "/img",
		"http://255.255.255.255/",
	} {
		t.Run(to, func(t *testing.T) {
			_, err := f.Fetch(context.Background(), srv.URL+"/redirect?to="+url.QueryEscape(to))
			fetchWantFailure(t, err, "blocked_address", true)
			if !strings.Contains(err.Error(), "redirect to") {
				t.Errorf("Fetch() error = %v, want a refusal from the redirect check", err)
			}
		})
	}
}

// A name is checked when its address is dialled: the server on 127.0.0.2 is
// allowed, but "localhost" resolves to 127.0.0.1, which is not.
func TestFetchChecksResolvedAddressAtConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	canary, _ := startFetchCanary(t, "127.0.0.1:0")
	srv := httptest.NewUnstartedServer(fetchRedirector(fetchPNG(t, 1, 1)))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	f, err := imaging.NewFetcherOnly(imaging.FetchConfig{Timeout: 5 * time.Second}, imaging.DefaultLimits, netip.MustParsePrefix("127.0.0.2/32"))
	if err != nil {
		t.Fatalf("NewFetcherOnly() error = %v", err)
	}
	if _, err := f.Fetch(context.Background(), srv.URL+"/img"); err != nil {
		t.Fatalf("Fetch(allowed server) error = %v, want none", err)
	}
	target := "http://localhost:" + canary.port + "/x"
	for name, u := range map[string]string{
		"direct":   target,
		"redirect": srv.URL + "/redirect?to=" + url.QueryEscape(target),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.Fetch(context.Background(), u)
			fetchWantFailure(t, err, "blocked_address", true)
			if !strings.Contains(err.Error(), "dial") {
				t.Errorf("Fetch(%q) error = %v, want a refusal from the dialler", u, err)
			}
		})
	}
	canary.check(t)
}

// Hosts the transport rewrites (IDNA maps full-width characters to ASCII)
// are still checked, at connect time, on the address actually dialled.
func TestFetchRefusesHostsNormalisedByTransport(t *testing.T) {
	canary, _ := startFetchCanary(t, "127.0.0.1:0")
	f := fetchNewFetcher(t, imaging.FetchConfig{Timeout: 5 * time.Second})
	for _, host := range []string{"１２７.０.０.１", "ｌｏｃａｌｈｏｓｔ", "LOCALHOST"} {
		t.Run(host, func(t *testing.T) {
			_, err := f.Fetch(context.Background(), "http://"+host+":"+canary.port+"/x")
			fetchWantFailure(t, err, "blocked_address", true)
		})
	}
	canary.check(t)
}
