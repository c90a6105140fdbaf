package httpapi

import (
	"context"
	"hash/maphash"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
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
		// The address is worked out only when some address has failed: a
		// process that has seen no failure pays nothing for it.
		var addr string
		reserved := false
		if s.failedAddrs.any() && !s.goodCreds.has(cred, now) {
			addr = addressKey(c.RealIP())
			reserved = s.failedAddrs.has(addr, now)
		}
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
		switch {
		case caller(c).KeyID != uuid.Nil:
			s.goodCreds.touch(cred, now)
			if reserved {
				s.failures.RefundFailure(context.WithoutCancel(req.Context()), addr)
			}
		case err != nil && toAPIError(err).Status == http.StatusUnauthorized:
			s.goodCreds.forget(cred) // such as a key revoked since
			if addr == "" {
				addr = addressKey(c.RealIP())
			}
			s.failedAddrs.add(addr, time.Now())
			if !reserved {
				s.failures.ReserveFailure(context.WithoutCancel(req.Context()), addr) // spends it; the request is over
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
// keeping them: a 64-bit hash of its Authorization header under the
// process's own random seed. Two credentials may share one, but nobody can
// aim for that without the seed, and it would cost nothing but the early
// reservation: a failure is still spent once the credentials fail.
func credentialOf(req *http.Request) uint64 {
	return maphash.String(credentialSeed, req.Header.Get(echo.HeaderAuthorization))
}

var credentialSeed = maphash.MakeSeed()

// What a process remembers for limitFailures: for how long, and how many
// of each kind. A key seen again within touchEvery of its last time is not
// written again.
const (
	recentFor  = 10 * time.Minute
	touchEvery = recentFor / 20
	maxRecent  = 50_000
)

// recentSet remembers keys seen within recentFor, at most maxRecent.
type recentSet[K comparable] struct {
	mu   sync.RWMutex
	seen map[K]time.Time
	n    atomic.Int64 // len(seen), for any
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
	r.n.Store(int64(len(r.seen)))
}

// touch is add for a key seen on every request: one seen within
// touchEvery is left as it is, under the read lock alone.
func (r *recentSet[K]) touch(k K, now time.Time) {
	r.mu.RLock()
	at, ok := r.seen[k]
	r.mu.RUnlock()
	if !ok || now.Sub(at) >= touchEvery {
		r.add(k, now)
	}
}

func (r *recentSet[K]) has(k K, now time.Time) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	at, ok := r.seen[k]
	return ok && now.Sub(at) < recentFor
}

// any reports whether the set holds a key, lately seen or not.
func (r *recentSet[K]) any() bool { return r.n.Load() > 0 }

func (r *recentSet[K]) forget(k K) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.seen, k)
	r.n.Store(int64(len(r.seen)))
}
