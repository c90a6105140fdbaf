package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"

	"github.com/labstack/echo/v4"
)

// parseProxies parses http.trusted_proxies: CIDRs, or single addresses.
func parseProxies(entries []string) ([]*net.IPNet, error) {
	nets := make([]*net.IPNet, 0, len(entries))
	for _, s := range entries {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is neither a CIDR nor an IP address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		p = p.Masked()
		nets = append(nets, &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())})
	}
	return nets, nil
}

// clientIP returns how the server finds a request's client address. Only a
// peer inside one of the trusted proxy ranges may name the client: through
// X-Forwarded-For, where the right-most address that is not a trusted proxy
// is the client (the ones left of it are the client's to forge), or else
// through X-Real-IP. Without trusted proxies, and for every other peer, the
// client is the TCP peer, whatever the headers say.
//
// Nothing is trusted by default: Echo's own defaults would trust every
// private, loopback and link-local peer.
func clientIP(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	fromXFF, fromRealIP := echo.ExtractIPFromXFFHeader(opts...), echo.ExtractIPFromRealIPHeader(opts...)
	return func(req *http.Request) string {
		if len(req.Header.Values(echo.HeaderXForwardedFor)) > 0 {
			return fromXFF(req)
		}
		return fromRealIP(req)
	}
}
