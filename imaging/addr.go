package imaging

import (
	"net/netip"
	"strconv"
	"strings"
)

// notGlobalV4 lists the IPv4 ranges that are not globally routable unicast,
// after the IANA special-purpose address registry.
var notGlobalV4 = mustPrefixes(
	"0.0.0.0/8",       // "this network"; 0.0.0.0 reaches the local host
	"10.0.0.0/8",      // private (RFC 1918)
	"100.64.0.0/10",   // shared address space, carrier-grade NAT (RFC 6598)
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, including cloud metadata 169.254.169.254
	"172.16.0.0/12",   // private (RFC 1918)
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation (TEST-NET-1)
	"192.88.99.0/24",  // deprecated 6to4 relay anycast
	"192.168.0.0/16",  // private (RFC 1918)
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation (TEST-NET-2)
	"203.0.113.0/24",  // documentation (TEST-NET-3)
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, including broadcast 255.255.255.255
)

// IPv6 is checked against an allow-list: only 2000::/3 is allocated as global
// unicast, which already leaves out ::/128, ::1, the IPv4-compatible ::/96,
// ::ffff:0:0/96 (unmapped before the check), 64:ff9b:1::/48, 100::/64,
// fc00::/7, fe80::/10 and ff00::/8. notGlobalV6 lists what is carved out of it.
var (
	globalUnicastV6 = netip.MustParsePrefix("2000::/3")
	notGlobalV6     = mustPrefixes(
		"2001::/23",     // IETF protocol assignments: Teredo 2001::/32, benchmarking, ORCHID
		"2001:db8::/32", // documentation
		"3fff::/20",     // documentation (RFC 9637)
	)
	// sixToFour and nat64WellKnown embed an IPv4 address, which must itself be
	// public: 2002:AABB:CCDD::/48 carries it in bytes 2-5, 64:ff9b::/96 in the last four.
	sixToFour      = netip.MustParsePrefix("2002::/16")
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")
)

// privateNets are the ranges AllowPrivateNetworks opens: loopback, RFC 1918
// and IPv6 unique-local addresses.
var privateNets = mustPrefixes(
	"127.0.0.0/8",
	"10.0.0.0/8",
	"172.16.0.0/12",
	"192.168.0.0/16",
	"::1/128",
	"fc00::/7",
)

// alwaysRefusedNets are never dialled, whatever the configuration: "this
// network" (0.0.0.0 reaches the local host) and the broadcast address. Link-local
// and multicast addresses are refused too, see alwaysRefused.
var alwaysRefusedNets = mustPrefixes(
	"0.0.0.0/8",
	"255.255.255.255/32",
	"::/128",
)

// PublicAddr reports whether ip is a globally routable unicast address, the
// only kind a Fetcher connects to by default. IPv4-mapped IPv6 addresses are
// judged by their IPv4 address; 6to4 and NAT64 (64:ff9b::/96) addresses by the
// IPv4 address they embed. Zones are ignored. The zero Addr is not public.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	switch {
	case !ip.IsValid():
		return false
	case ip.Is4():
		return publicV4(ip)
	case nat64WellKnown.Contains(ip):
		return publicV4(embeddedV4(ip, 12))
	case sixToFour.Contains(ip):
		return publicV4(embeddedV4(ip, 2))
	case !globalUnicastV6.Contains(ip):
		return false
	}
	return !prefixesContain(notGlobalV6, ip)
}

func publicV4(ip netip.Addr) bool {
	return ip.Is4() && !prefixesContain(notGlobalV4, ip)
}

// embeddedV4 returns the IPv4 address held in bytes off to off+3 of ip.
func embeddedV4(ip netip.Addr, off int) netip.Addr {
	b := ip.As16()
	return netip.AddrFrom4([4]byte(b[off : off+4]))
}

// privateAddr reports whether ip is loopback, RFC 1918 or unique-local. ip
// must already be unmapped.
func privateAddr(ip netip.Addr) bool {
	return prefixesContain(privateNets, ip)
}

// alwaysRefused reports whether ip may never be dialled: link-local (cloud
// metadata endpoints live there), multicast, unspecified or broadcast. ip must
// already be unmapped.
func alwaysRefused(ip netip.Addr) bool {
	return ip.IsLinkLocalUnicast() || ip.IsMulticast() || prefixesContain(alwaysRefusedNets, ip)
}

func prefixesContain(prefixes []netip.Prefix, ip netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func mustPrefixes(s ...string) []netip.Prefix {
	prefixes := make([]netip.Prefix, len(s))
	for i, p := range s {
		prefixes[i] = netip.MustParsePrefix(p)
	}
	return prefixes
}

// numericHost reports whether host ends in a number, as the WHATWG URL
// standard puts it: its last label (ignoring one trailing dot) is decimal or
// 0x-hex. Such a host is no DNS name; resolvers built on inet_aton read forms
// like "2130706433", "127.1" or "0x7f.1" as IPv4 addresses.
func numericHost(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if rest, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		return strings.Trim(rest, "0123456789abcdef") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}

// parseLegacyIPv4 reads host the way inet_aton does: one to four parts, each
// decimal, 0x-hex or 0-octal, the last filling the remaining bytes. It reports
// false when host is no such address.
func parseLegacyIPv4(host string) (netip.Addr, bool) {
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	for i, p := range parts {
		n, ok := parseLegacyPart(p)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if n > 0xff {
				return netip.Addr{}, false
			}
			v |= n << (8 * (3 - i))
			continue
		}
		if n >= 1<<(8*(4-i)) {
			return netip.Addr{}, false
		}
		v |= n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseLegacyPart(p string) (uint64, bool) {
	base := 10
	switch {
	case len(p) >= 2 && (p[:2] == "0x" || p[:2] == "0X"):
		base, p = 16, p[2:]
		if p == "" {
			return 0, true // inet_aton and WHATWG read a bare "0x" as zero
		}
	case len(p) > 1 && p[0] == '0':
		base, p = 8, p[1:]
	}
	n, err := strconv.ParseUint(p, base, 32)
	return n, err == nil
}
