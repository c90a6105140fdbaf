package imaging

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"testing"
)

// The fuzz targets here check URLs and addresses only: they never call
// Fetch, so nothing is dialled. Their seed corpora are in testdata/fuzz.

// FuzzCheckURL parses and checks source URLs as Fetch does before it
// connects. A URL is refused as a permanent invalid_url or blocked_address,
// or it is http(s) without user info, names a host that is no refused or
// non-canonical address, and builds a request for that same host; its
// description in errors never shows a password.
func FuzzCheckURL(f *testing.F) {
	for _, seed := range []string{
		"https://img.example.com/a.png?w=100",
		"http://93.184.215.14/a.png",
		"http://127.0.0.1/",
		"http://[::ffff:169.254.169.254]/",
		"http://[fe80::1%25eth0]/",
		"http://2130706433/",
		"http://0x7f.1/",
		"http://017700000001/",
		"http://user:hunter2@img.example.com/",
		"http://img.example.com:99999/",
		"http://%31%32%37.0.0.1/",
		"ftp://img.example.com/a.png",
		"http:img.example.com",
		"//img.example.com/a.png",
	} {
		f.Add(seed)
	}
	fetcher, err := NewFetcher(FetchConfig{}, DefaultLimits)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := parseSourceURL(raw)
		if err != nil {
			wantURLFailure(t, raw, err)
			return
		}
		if desc, err := url.Parse(redactSourceURL(u)); err == nil && (desc.User != nil || desc.RawQuery != "") {
			t.Fatalf("the description of %q shows its user info or query: %q", raw, desc)
		}
		if err := fetcher.checkURL(u); err != nil {
			wantURLFailure(t, raw, err)
			return
		}
		host := u.Hostname()
		switch {
		case u.Scheme != "http" && u.Scheme != "https":
			t.Fatalf("checkURL(%q) accepted the scheme %q", raw, u.Scheme)
		case u.User != nil:
			t.Fatalf("checkURL(%q) accepted user info", raw)
		case host == "":
			t.Fatalf("checkURL(%q) accepted a URL without a host", raw)
		case len(u.String()) > maxURLLength:
			t.Fatalf("checkURL(%q) accepted a URL of %d bytes", raw, len(u.String()))
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			if !PublicAddr(ip) {
				t.Fatalf("checkURL(%q) accepted the address %s", raw, ip)
			}
		} else if numericHost(host) {
			t.Fatalf("checkURL(%q) accepted the host %q, which resolvers may read as an address", raw, host)
		}
		// Fetch requests u.String(): it must name the host that was checked.
		again, err := url.Parse(u.String())
		if err != nil || again.Hostname() != host {
			t.Fatalf("checkURL(%q) checked host %q, but the request URL %q names %v (%v)", raw, host, u.String(), again, err)
		}
	})
}

func wantURLFailure(t *testing.T, raw string, err error) {
	t.Helper()
	var fl *Failure
	if !errors.As(err, &fl) || !fl.Permanent || (fl.Code != "invalid_url" && fl.Code != "blocked_address") {
		t.Fatalf("checking %q: error %v, want a permanent invalid_url or blocked_address", raw, err)
	}
}

// FuzzAddr checks the address rules against the standard library's own
// classification, and the legacy IPv4 reader against every way of writing
// an address. A public address is none of loopback, private, link-local,
// multicast or unspecified, whatever its IPv6 form; the default fetcher
// permits exactly the public ones, and one that allows private networks
// adds exactly loopback and private ones. Every legacy form of an address
// reads back as that address, and a host read as an address is numeric, so
// checkURL refuses it.
func FuzzAddr(f *testing.F) {
	for _, seed := range []struct {
		b    []byte
		host string
	}{
		{[]byte{8, 8, 8, 8}, "8.8.8.8"},
		{[]byte{127, 0, 0, 1}, "127.1"},
		{[]byte{169, 254, 169, 254}, "0xa9fea9fe"},
		{[]byte{10, 0, 0, 1}, "012.0.0.01"},
		{netip.MustParseAddr("::ffff:127.0.0.1").AsSlice(), "2130706433"},
		{netip.MustParseAddr("2002:a00:1::").AsSlice(), "0x7f.1"},
		{netip.MustParseAddr("64:ff9b::7f00:1").AsSlice(), "1.2.3.4."},
		{netip.MustParseAddr("2606:4700::1111").AsSlice(), "example.com"},
		{netip.MustParseAddr("fe80::1").AsSlice(), "09"},
		{netip.MustParseAddr("fc00::1").AsSlice(), ""},
	} {
		f.Add(seed.b, seed.host)
	}
	def, err := NewFetcher(FetchConfig{}, DefaultLimits)
	if err != nil {
		f.Fatal(err)
	}
	private, err := NewFetcher(FetchConfig{AllowPrivateNetworks: true}, DefaultLimits)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte, host string) {
		if ip, ok := netip.AddrFromSlice(b); ok {
			wantAddrRules(t, ip, def, private)
		}
		if len(b) >= 4 {
			wantLegacyForms(t, binary.BigEndian.Uint32(b))
		}
		if ip, ok := parseLegacyIPv4(host); ok && !numericHost(host) {
			t.Fatalf("parseLegacyIPv4(%q) = %s, but numericHost is false: checkURL would let it through", host, ip)
		}
	})
}

func wantAddrRules(t *testing.T, ip netip.Addr, def, private *Fetcher) {
	t.Helper()
	u := ip.Unmap()
	public := PublicAddr(ip)
	if public && (u.IsLoopback() || u.IsPrivate() || u.IsLinkLocalUnicast() || u.IsLinkLocalMulticast() ||
		u.IsInterfaceLocalMulticast() || u.IsMulticast() || u.IsUnspecified()) {
		t.Fatalf("PublicAddr(%s) = true for an address the standard library calls special", ip)
	}
	if PublicAddr(u) != public {
		t.Fatalf("PublicAddr(%s) = %v, but PublicAddr(%s) = %v", ip, public, u, !public)
	}
	if u.Is4() && PublicAddr(netip.AddrFrom16(u.As16())) != public {
		t.Fatalf("PublicAddr of %s and of its IPv4-mapped form differ", u)
	}
	if ip.Is6() && !ip.Is4In6() && PublicAddr(ip.WithZone("eth0")) != public {
		t.Fatalf("PublicAddr of %s changes with a zone", ip)
	}
	if got := def.Permits(ip); got != public {
		t.Fatalf("default Fetcher.Permits(%s) = %v, want %v (PublicAddr)", ip, got, public)
	}
	if got, want := private.Permits(ip), public || u.IsLoopback() || u.IsPrivate(); got != want {
		t.Fatalf("Fetcher.Permits(%s) with private networks = %v, want %v", ip, got, want)
	}
}

func wantLegacyForms(t *testing.T, v uint32) {
	t.Helper()
	want := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	a, b, c, d := v>>24, v>>16&0xff, v>>8&0xff, v&0xff
	for _, form := range []string{
		want.String(),
		strconv.FormatUint(uint64(v), 10),
		fmt.Sprintf("0x%x", v),
		fmt.Sprintf("0X%X", v),
		fmt.Sprintf("0%o", v),
		fmt.Sprintf("%d.%d", a, v&0xffffff),
		fmt.Sprintf("%d.%d.%d", a, b, v&0xffff),
		fmt.Sprintf("0x%x.0%o.%d.0x%02x", a, b, c, d),
		fmt.Sprintf("%d.%d.%d.%d.", a, b, c, d),
	} {
		got, ok := parseLegacyIPv4(form)
		if !ok || got != want {
			t.Fatalf("parseLegacyIPv4(%q) = %s, %v, want %s", form, got, ok, want)
		}
		if !numericHost(form) {
			t.Fatalf("numericHost(%q) = false for a form of %s", form, want)
		}
	}
}
