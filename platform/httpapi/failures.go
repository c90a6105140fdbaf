package httpapi

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

// FailureLimiter keeps a budget of failed authentications per client
// address. ReserveFailure takes one failure from addr's budget and reports
// whether there was one, or how long until there is; RefundFailure gives
// one back. Both fail open: a limiter that cannot reach its store reserves
// without limit.
type FailureLimiter interface {
	ReserveFailure(ctx context.Context, addr string) (retryAfter time.Duration, ok bool)
	RefundFailure(ctx context.Context, addr string)
}

// limitFailures limits how many credentials each client address may have
// checked that turn out bad, so that sending made-up API keys costs
// PostgreSQL and the key cache at most the address's budget.
//
//   - Every request that fails authentication (401) spends a failure.
//   - Once an address has failed in this process, each request from it
//     whose credentials are not known to be good takes its failure before
//     the key is looked up, and gets it back if it authenticates; with no
//     budget left it gets a 429 with Retry-After, at no cost to PostgreSQL
//     or the key cache. Taking first keeps the bound under any number of
//     concurrent requests.
//   - Credentials that authenticated in this process lately take nothing
//     and are never refused, even while their address is blocked: a busy
//     client that shares an address with a failing one (behind a NAT, or a
//     proxy missing from http.trusted_proxies) keeps working. A client
//     whose address never failed costs no round trip at all.
func (s *Server) limitFailures(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		now := time.Now()
		cred := credentialOf(req)
		addr := addressKey(c.RealIP())
		reserved := !s.goodCreds.has(cred, now) && s.failedAddrs.has(addr, now)
		if reserved {
			if wait, ok := s.failures.ReserveFailure(req.Context(), addr); !ok {
				s.metrics.refused.WithLabelValues(limitAuthFailures).Inc()
				return &apiError{Status: http.StatusTooManyRequests, Code: "rate_limited",
					Message: "too many failed authentications from this address; try again later",
					Header:  http.Header{"Retry-After": {strconv.Itoa(max(1, ceilSeconds(wait)))}}}
			}
		}
		err := next(c)
		// The budget changes even when the client hung up at once.
		ctx := context.WithoutCancel(req.Context())
		switch {
		case caller(c).KeyID != uuid.Nil:
			s.goodCreds.add(cred, time.Now())
			if reserved {
				s.failures.RefundFailure(ctx, addr)
			}
		case err != nil && toAPIError(err).Status == http.StatusUnauthorized:
			s.goodCreds.forget(cred) // such as a key revoked since
			s.failedAddrs.add(addr, time.Now())
			if !reserved {
				s.failures.ReserveFailure(ctx, addr) // spends it; the request is over
			}
		}
		return err
	}
}

// addressKey is the client address a budget is kept for: the address for
// IPv4, its /64 for IPv6, since one host commonly holds a whole /64.
func addressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// credentialOf identifies the credentials a request presents without
// keeping them: a hash of its Authorization header.
func credentialOf(req *http.Request) [sha256.Size]byte {
	return sha256.Sum256([]byte(req.Header.Get(echo.HeaderAuthorization)))
}

// What a process remembers for limitFailures: for how long, and how many
// of each kind.
const (
	recentFor = 10 * time.Minute
	maxRecent = 50_000
)

// recentSet remembers keys seen within recentFor, at most maxRecent.
type recentSet[K comparable] struct {
	mu   sync.Mutex
	seen map[K]time.Time
}

func newRecentSet[K comparable]() *recentSet[K] {
	return &recentSet[K]{seen: map[K]time.Time{}}
}

func (r *recentSet[K]) add(k K, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.seen[k]; !ok && len(r.seen) >= maxRecent {
		for old, at := range r.seen {
			if now.Sub(at) >= recentFor {
				delete(r.seen, old)
			}
		}
		if len(r.seen) >= maxRecent {
			clear(r.seen) // rare; costs what was remembered, not correctness
		}
	}
	r.seen[k] = now
}

func (r *recentSet[K]) has(k K, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.seen[k]
	return ok && now.Sub(at) < recentFor
}

func (r *recentSet[K]) forget(k K) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.seen, k)
}
