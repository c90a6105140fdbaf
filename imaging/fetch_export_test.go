package imaging

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/netip"
)

// NewFetcherOnly returns a Fetcher with lim that connects only to addresses
// inside prefixes (link-local and multicast still excluded), so tests can
// reach their loopback server while every other address, public ones
// included, is refused.
func NewFetcherOnly(cfg FetchConfig, lim Limits, prefixes ...netip.Prefix) (*Fetcher, error) {
	f, err := NewFetcher(cfg, lim)
	if err != nil {
		return nil, err
	}
	f.only = append([]netip.Prefix{}, prefixes...)
	return f, nil
}

// TrustForTest makes f trust only the certificates in roots, so tests can
// fetch from an httptest TLS server. Call it before the first Fetch.
func (f *Fetcher) TrustForTest(roots *x509.CertPool) {
	f.client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: roots}
}
