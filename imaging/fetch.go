package imaging

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// FetchConfig bounds what a Fetcher downloads. A zero field takes its value
// from DefaultFetchConfig.
type FetchConfig struct {
	// ConnectTimeout bounds each TCP connect and TLS handshake.
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
	// Timeout bounds a whole fetch: redirects, headers and body.
	Timeout time.Duration `mapstructure:"timeout"`
	// MaxBytes caps the size of a source body.
	MaxBytes int64 `mapstructure:"max_bytes"`
	// MaxRedirects caps the redirects followed in one fetch (zero means the
	// default, so redirects cannot be turned off).
	MaxRedirects int `mapstructure:"max_redirects"`
	// AllowPrivateNetworks also lets the fetcher connect to loopback, RFC 1918
	// and IPv6 unique-local addresses. It is for development and tests only,
	// and opens the service to SSRF against internal hosts: callers should log
	// a warning when it is set (see Fetcher.AllowsPrivateNetworks). Link-local
	// addresses (cloud metadata such as 169.254.169.254) and multicast stay
	// refused.
	AllowPrivateNetworks bool `mapstructure:"allow_private_networks"`
	// UserAgent is sent with every request.
	UserAgent string `mapstructure:"user_agent"`
}

// DefaultFetchConfig returns the defaults of every fetch setting, which a
// zero field of a FetchConfig also takes.
func DefaultFetchConfig() FetchConfig {
	return FetchConfig{ConnectTimeout: 5 * time.Second, Timeout: 30 * time.Second, MaxBytes: 25 << 20,
		MaxRedirects: 3, UserAgent: "pms-imaging/1"}
}

const maxURLLength = 2048

// Validate reports every problem with c, joined with errors.Join, or nil.
func (c FetchConfig) Validate() error {
	var errs []error
	check := func(bad bool, key, problem string) {
		if bad {
			errs = append(errs, fmt.Errorf("%s: %s", key, problem))
		}
	}
	check(c.ConnectTimeout < 0, "connect_timeout", "must not be negative")
	check(c.Timeout < 0, "timeout", "must not be negative")
	check(c.MaxBytes < 0, "max_bytes", "must not be negative")
	check(c.MaxRedirects < 0, "max_redirects", "must not be negative")
	check(strings.ContainsFunc(c.UserAgent, func(r rune) bool { return r < ' ' || r == 0x7f }),
		"user_agent", "must not contain control characters")
	return errors.Join(errs...)
}

func (c FetchConfig) withDefaults() FetchConfig {
	d := DefaultFetchConfig()
	setFetchDefault(&c.ConnectTimeout, d.ConnectTimeout)
	setFetchDefault(&c.Timeout, d.Timeout)
	setFetchDefault(&c.MaxBytes, d.MaxBytes)
	setFetchDefault(&c.MaxRedirects, d.MaxRedirects)
	setFetchDefault(&c.UserAgent, d.UserAgent)
	return c
}

func setFetchDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Fetcher downloads source images over http and https without letting a URL
// reach internal services: every address it connects to, on every redirect
// hop, is checked after DNS resolution. It is safe for concurrent use.
type Fetcher struct {
	cfg    FetchConfig
	limits Limits
	client *http.Client
	dialer *net.Dialer
	// only, when non-nil, replaces the public/private rules: the fetcher
	// dials nothing outside it. Tests use it to reach exactly their loopback
	// server.
	only []netip.Prefix
}

// NewFetcher validates cfg and lim, fills in the defaults of cfg and returns
// a Fetcher that refuses images breaking lim. It ignores proxy settings from
// the environment, since a proxy would dial on the fetcher's behalf and
// bypass its address checks.
func NewFetcher(cfg FetchConfig, lim Limits) (*Fetcher, error) {
	if err := errors.Join(cfg.Validate(), lim.Validate()); err != nil {
		return nil, fmt.Errorf("validate fetch config: %w", err)
	}
	f := &Fetcher{cfg: cfg.withDefaults(), limits: lim}
	f.dialer = &net.Dialer{Timeout: f.cfg.ConnectTimeout, ControlContext: f.control}
	f.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            f.dialer.DialContext,
			ForceAttemptHTTP2:      true,
			TLSHandshakeTimeout:    f.cfg.ConnectTimeout,
			MaxResponseHeaderBytes: 64 << 10,
			// Images are compressed already; without Accept-Encoding a server
			// has no reason to gzip, and a body it gzips anyway is refused
			// by sniffing rather than inflated.
			DisableCompression: true,
			MaxIdleConns:       64,
			IdleConnTimeout:    90 * time.Second,
		},
		CheckRedirect: f.checkRedirect,
	}
	return f, nil
}

// AllowsPrivateNetworks reports whether the fetcher was configured to reach
// loopback, RFC 1918 and unique-local addresses, so the caller can log a
// warning at startup.
func (f *Fetcher) AllowsPrivateNetworks() bool { return f.cfg.AllowPrivateNetworks }

// Permits reports whether the fetcher would connect to ip: a public address
// (see PublicAddr), or a private one when AllowPrivateNetworks is set.
// Link-local, multicast, unspecified and broadcast addresses are never
// permitted.
func (f *Fetcher) Permits(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	switch {
	case !ip.IsValid() || alwaysRefused(ip):
		return false
	case f.only != nil:
		return prefixesContain(f.only, ip)
	case PublicAddr(ip):
		return true
	}
	return f.cfg.AllowPrivateNetworks && privateAddr(ip)
}

// CheckURL applies the fetcher's URL rules to rawURL without fetching it:
// http(s) only, no user info, no host that is or is written like a refused
// IP address. It returns nil or a *Failure saying why. Names are checked
// when their addresses are dialled (DialContext). Webhook deliveries use
// it, so they are held to the rules of image fetches.
func (f *Fetcher) CheckURL(rawURL string) error {
	u, err := parseSourceURL(rawURL)
	if err != nil {
		return err
	}
	return f.checkURL(u)
}

// DialContext connects as the fetcher does: within its connect timeout,
// only to addresses it Permits, checked after DNS resolution.
func (f *Fetcher) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return f.dialer.DialContext(ctx, network, address)
}

// Fetch downloads the image at rawURL and returns it with the Header its
// whole structure gives (see ReadHeader), within the fetcher's Limits;
// Source.URL is rawURL. Errors are *Failure values: permanent ones (wrapping
// ErrPermanent) have the codes invalid_url, blocked_address,
// too_many_redirects, source_not_found, source_status_4xx, source_status_3xx,
// too_large, those of ReadHeader and those of Limits.Check; transient ones
// source_unavailable and source_timeout. When ctx is cancelled, Fetch returns
// an error wrapping context.Canceled instead.
func (f *Fetcher) Fetch(ctx context.Context, rawURL string) (Source, error) {
	u, err := parseSourceURL(rawURL)
	if err != nil {
		return Source{}, err
	}
	where := fmt.Sprintf("get %q", redactSourceURL(u))
	if err := f.checkURL(u); err != nil {
		return Source{}, reFail(err, where)
	}

	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Source{}, Permanent("invalid_url", fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("User-Agent", f.cfg.UserAgent)
	req.Header.Set("Accept", "image/jpeg, image/png, image/webp, image/gif")
	resp, err := f.client.Do(req)
	if err != nil {
		return Source{}, classifyFetchError(ctx, where, err)
	}
	defer resp.Body.Close()
	if err := statusFailure(resp.StatusCode); err != nil {
		return Source{}, reFail(err, where)
	}
	if resp.ContentLength > f.cfg.MaxBytes {
		return Source{}, Permanent("too_large", fmt.Errorf("%s: content length %d is more than %d bytes", where, resp.ContentLength, f.cfg.MaxBytes))
	}
	src, err := f.readImage(resp.Body, resp.ContentLength)
	if err != nil {
		return Source{}, classifyFetchError(ctx, where, err)
	}
	src.URL = rawURL
	return src, nil
}

// parseSourceURL parses rawURL, refusing overlong or malformed URLs as invalid_url.
func parseSourceURL(rawURL string) (*url.URL, error) {
	if len(rawURL) > maxURLLength {
		return nil, Permanent("invalid_url", fmt.Errorf("url is %d bytes long, more than %d", len(rawURL), maxURLLength))
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// The url.Error around the cause repeats the URL, which may hold credentials.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, Permanent("invalid_url", fmt.Errorf("parse url: %w", err))
	}
	return u, nil
}

// checkURL refuses URLs the fetcher must not follow: anything but http(s),
// user info, overlong URLs, URLs whose text reads back as another host,
// addresses with a zone, and hosts that are, or are written like, refused
// IP addresses. Names are checked later, when their addresses are dialled.
func (f *Fetcher) checkURL(u *url.URL) error {
	switch {
	case len(u.String()) > maxURLLength:
		return Permanent("invalid_url", fmt.Errorf("url is longer than %d bytes", maxURLLength))
	case u.Scheme != "http" && u.Scheme != "https":
		return Permanent("invalid_url", fmt.Errorf("scheme %q is not http or https", u.Scheme))
	case u.User != nil:
		return Permanent("invalid_url", errors.New("url must not contain user info"))
	case u.Opaque != "" || u.Hostname() == "":
		return Permanent("invalid_url", errors.New("url has no host"))
	}
	host := u.Hostname()
	// The request is made from u's text: it must name the host checked here.
	if again, err := url.Parse(u.String()); err != nil || again.Hostname() != host {
		return Permanent("invalid_url", errors.New("url does not read back as the same host"))
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !f.Permits(ip) {
			return Permanent("blocked_address", fmt.Errorf("address %s is not allowed", ip))
		}
		if ip.Zone() != "" {
			return Permanent("invalid_url", errors.New("address has a zone, which only link-local addresses use"))
		}
		return nil
	}
	if numericHost(host) {
		if ip, ok := parseLegacyIPv4(host); ok && !f.Permits(ip) {
			return Permanent("blocked_address", fmt.Errorf("host %q means address %s, which is not allowed", host, ip))
		}
		return Permanent("invalid_url", fmt.Errorf("host %q is not a canonical ip address", host))
	}
	return nil
}

// checkRedirect applies the URL rules and the redirect cap to every hop.
func (f *Fetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > f.cfg.MaxRedirects {
		return Permanent("too_many_redirects", fmt.Errorf("stopped after %d redirects", f.cfg.MaxRedirects))
	}
	if err := f.checkURL(req.URL); err != nil {
		return reFail(err, fmt.Sprintf("redirect to %q", redactSourceURL(req.URL)))
	}
	return nil
}

// control runs after DNS resolution and before connect(2), on the address
// actually dialled, so a name that resolves (or rebinds) to a refused address
// is caught here.
func (f *Fetcher) control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return Permanent("blocked_address", fmt.Errorf("parse dialled address: %w", err))
	}
	if !f.Permits(ap.Addr()) {
		return Permanent("blocked_address", fmt.Errorf("dial %s: address %s is not allowed", address, ap.Addr()))
	}
	return nil
}

// statusFailure maps a response status to a Failure, or returns nil for 2xx.
func statusFailure(code int) error {
	err := fmt.Errorf("status %d %s", code, http.StatusText(code))
	switch {
	case code >= 200 && code <= 299:
		return nil
	case code == http.StatusNotFound || code == http.StatusGone:
		return Permanent("source_not_found", err)
	case code == http.StatusRequestTimeout:
		return Transient("source_timeout", err)
	case code == http.StatusTooManyRequests || code >= 500:
		return Transient("source_unavailable", err)
	case code >= 400:
		return Permanent("source_status_4xx", err)
	}
	return Permanent("source_status_3xx", err)
}

// classifyFetchError turns a transport or body error into a Failure; what
// says what was being done. A Failure inside err (from the dialer, the
// redirect check or the body reader) keeps its code.
func classifyFetchError(ctx context.Context, what string, err error) error {
	if fl := (*Failure)(nil); errors.As(err, &fl) {
		return reFail(fl, what)
	}
	// url.Error repeats the full URL, query included; what already names it.
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		err = ue.Err
	}
	err = fmt.Errorf("%s: %w", what, err)
	var ne net.Error
	var dnsErr *net.DNSError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return Transient("source_timeout", err)
	case ctx.Err() != nil:
		return err // the caller gave up; nothing to record
	case errors.As(err, &ne) && ne.Timeout():
		return Transient("source_timeout", err)
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return Permanent("source_not_found", err)
	}
	return Transient("source_unavailable", err)
}

// reFail returns err with what prefixed to its message, keeping the code and
// permanence of a Failure.
func reFail(err error, what string) error {
	var fl *Failure
	if !errors.As(err, &fl) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return &Failure{Code: fl.Code, Permanent: fl.Permanent, Err: fmt.Errorf("%s: %w", what, fl.Err)}
}

// redactSourceURL describes u for error messages: without its user info,
// query and fragment, which in a client's URL may hold a password or a
// signature under any name.
func redactSourceURL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return r.String()
}
