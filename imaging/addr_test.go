package imaging_test

import (
	"net/netip"
	"testing"

	"github.com/pms-dev/pms/imaging"
)

// These addresses are only handed to the filter functions; nothing is dialled.
func TestPublicAddr(t *testing.T) {
	tests := []struct {
		name string
		ip   string
		want bool
	}{
		{"cloud metadata", "169.254.169.254", false},
		{"link-local v4", "169.254.0.1", false},
		{"mapped loopback", "::ffff:127.0.0.1", false},
		{"mapped metadata", "::ffff:169.254.169.254", false},
		{"mapped rfc1918", "::ffff:10.0.0.1", false},
		{"unspecified v4", "0.0.0.0", false},
		{"this network", "0.1.2.3", false},
		{"cgnat low", "100.64.0.1", false},
		{"cgnat high", "100.127.255.254", false},
		{"rfc1918 10/8", "10.0.0.1", false},
		{"rfc1918 172.16/12 low", "172.16.0.1", false},
		{"rfc1918 172.16/12 high", "172.31.255.255", false},
		{"rfc1918 192.168/16", "192.168.1.1", false},
		{"loopback", "127.0.0.1", false},
		{"loopback high", "127.255.255.254", false},
		{"multicast", "224.0.0.1", false},
		{"multicast ssdp", "239.255.255.250", false},
		{"broadcast", "255.255.255.255", false},
		{"reserved", "240.0.0.1", false},
		{"benchmarking low", "198.18.0.1", false},
		{"benchmarking high", "198.19.255.255", false},
		{"ietf protocol assignments", "192.0.0.8", false},
		{"test-net-1", "192.0.2.1", false},
		{"test-net-2", "198.51.100.1", false},
		{"test-net-3", "203.0.113.1", false},
		{"6to4 relay anycast", "192.88.99.1", false},
		{"v6 loopback", "::1", false},
		{"v6 unspecified", "::", false},
		{"v6 link-local", "fe80::1", false},
		{"v6 link-local with zone", "fe80::1%eth0", false},
		{"ula fc00", "fc00::1", false},
		{"ula fd00", "fd12:3456:789a::1", false},
		{"site-local", "fec0::1", false},
		{"v6 multicast all nodes", "ff02::1", false},
		{"v6 multicast site", "ff05::1:3", false},
		{"ipv4-compatible loopback", "::127.0.0.1", false},
		{"ipv4-compatible public", "::8.8.8.8", false},
		{"ipv4-translated loopback", "::ffff:0:7f00:1", false},
		{"6to4 loopback", "2002:7f00:1::", false},
		{"6to4 metadata", "2002:a9fe:a9fe::1", false},
		{"6to4 rfc1918", "2002:a00:1::1", false},
		{"nat64 loopback", "64:ff9b::7f00:1", false},
		{"nat64 metadata", "64:ff9b::a9fe:a9fe", false},
		{"nat64 local-use prefix", "64:ff9b:1::808:808", false},
		{"teredo", "2001::", false},
		{"teredo client", "2001:0:4136:e378:8000:63bf:3fff:fdd2", false},
		{"v6 benchmarking", "2001:2::1", false},
		{"v6 documentation", "2001:db8::1", false},
		{"v6 documentation 3fff", "3fff::1", false},
		{"discard-only", "100::1", false},
		{"srv6 sid", "5f00::1", false},
		{"zero addr", "", false},

		{"google dns", "8.8.8.8", true},
		{"cloudflare dns", "1.1.1.1", true},
		{"just above cgnat", "100.128.0.1", true},
		{"just above 172.16/12", "172.32.0.1", true},
		{"just above benchmarking", "198.20.0.1", true},
		{"last unicast below multicast", "223.255.255.254", true},
		{"mapped public", "::ffff:8.8.8.8", true},
		{"cloudflare v6", "2606:4700::1", true},
		{"google dns v6", "2001:4860:4860::8888", true},
		{"6to4 public", "2002:808:808::1", true},
		{"nat64 public", "64:ff9b::808:808", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ip netip.Addr
			if tt.ip != "" {
				ip = netip.MustParseAddr(tt.ip)
			}
			if got := imaging.PublicAddr(ip); got != tt.want {
				t.Errorf("PublicAddr(%s) = %v, want %v", tt.ip, got, tt.want)
			}
		})
	}
}

func TestFetcherPermits(t *testing.T) {
	byDefault := fetchNewFetcher(t, imaging.FetchConfig{})
	private := fetchNewFetcher(t, imaging.FetchConfig{AllowPrivateNetworks: true})
	loopbackOnly, err := imaging.NewFetcherOnly(imaging.FetchConfig{}, imaging.DefaultLimits, netip.MustParsePrefix("127.0.0.0/8"))
	if err != nil {
		t.Fatalf("NewFetcherOnly() error = %v", err)
	}
	// Link-local and multicast stay refused even when listed explicitly.
	tooWide, err := imaging.NewFetcherOnly(imaging.FetchConfig{}, imaging.DefaultLimits,
		netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
	if err != nil {
		t.Fatalf("NewFetcherOnly() error = %v", err)
	}
	tests := []struct {
		ip                                        string
		byDefault, private, loopbackOnly, tooWide bool
	}{
		{"127.0.0.1", false, true, true, true},
		{"::ffff:127.0.0.1", false, true, true, true},
		{"::1", false, true, false, true},
		{"10.0.0.1", false, true, false, true},
		{"172.16.0.1", false, true, false, true},
		{"192.168.1.1", false, true, false, true},
		{"fd00::1", false, true, false, true},
		{"100.64.0.1", false, false, false, true},
		{"169.254.169.254", false, false, false, false},
		{"::ffff:169.254.169.254", false, false, false, false},
		{"fe80::1", false, false, false, false},
		{"fe80::1%lo", false, false, false, false},
		{"224.0.0.1", false, false, false, false},
		{"ff02::1", false, false, false, false},
		{"0.0.0.0", false, false, false, false},
		{"0.0.0.1", false, false, false, false},
		{"::", false, false, false, false},
		{"255.255.255.255", false, false, false, false},
		{"2002:7f00:1::", false, false, false, true},
		{"8.8.8.8", true, true, false, true},
		{"2606:4700::1", true, true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			ip := netip.MustParseAddr(tt.ip)
			for _, c := range []struct {
				name string
				f    *imaging.Fetcher
				want bool
			}{
				{"default", byDefault, tt.byDefault},
				{"AllowPrivateNetworks", private, tt.private},
				{"only 127.0.0.0/8", loopbackOnly, tt.loopbackOnly},
				{"only ::/0 and 0.0.0.0/0", tooWide, tt.tooWide},
			} {
				if got := c.f.Permits(ip); got != c.want {
					t.Errorf("%s: Permits(%s) = %v, want %v", c.name, ip, got, c.want)
				}
			}
		})
	}
}
