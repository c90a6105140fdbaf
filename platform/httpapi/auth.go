package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pms-dev/pms/product/account"
)

const callerKey = "caller"

// caller returns who the request acts for, set by authenticate.
func caller(c echo.Context) account.Caller {
	if rc, ok := c.(*requestContext); ok {
		return rc.caller
	}
	cl, _ := c.Get(callerKey).(account.Caller)
	return cl
}

// setCaller keeps who the request acts for: in the requestContext that
// Server.ServeHTTP hands its handlers, else in Echo's store.
func setCaller(c echo.Context, cl account.Caller) {
	if rc, ok := c.(*requestContext); ok {
		rc.caller = cl
		return
	}
	c.Set(callerKey, cl)
}

// authenticate requires "Authorization: Bearer <key>" and puts the caller in
// the context, and their ids in the request's logger.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key, ok := bearerKey(c.Request().Header)
		if !ok {
			return errUnauthenticated("")
		}
		cl, err := s.auth.Authenticate(c.Request().Context(), key)
		if err != nil {
			return err
		}
		setCaller(c, cl)
		if rc, ok := c.(*requestContext); ok && rc.log != nil {
			rc.log.user, rc.log.key = cl.UserID, cl.KeyID // in the request's log lines from now on
		}
		return next(c)
	}
}

// maxAuthorizationLen is more than "Bearer <key>" takes with any spacing.
const maxAuthorizationLen = 2 * account.KeyLength

// bearerKey returns the key of the request's one "Authorization: Bearer
// <key>" header, or false for none, several, or one that is too long or of
// another scheme. Authenticate checks the key's form before any lookup.
func bearerKey(h http.Header) (string, bool) {
	vs := h.Values(echo.HeaderAuthorization)
	if len(vs) != 1 || len(vs[0]) > maxAuthorizationLen {
		return "", false
	}
	scheme, key, ok := strings.Cut(vs[0], " ")
	key = strings.TrimSpace(key)
	if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
		return "", false
	}
	return key, true
}

// errUnauthenticated is a 401 with the challenge RFC 6750 asks for.
func errUnauthenticated(problem string) *apiError {
	challenge := `Bearer realm="pms"`
	if problem != "" {
		challenge += `, error="invalid_token"`
	}
	return &apiError{Status: http.StatusUnauthorized, Code: "unauthorized",
		Message: "an API key is required: Authorization: Bearer <key>",
		Header:  http.Header{"Www-Authenticate": {challenge}}}
}

// RateLimit is the outcome of one rate-limit check.
type RateLimit struct {
	Allowed    bool
	Limit      int
	Remaining  int
	RetryAfter time.Duration
	ResetAfter time.Duration
}

// RateLimiter decides whether the holder of key may make one more request;
// write says whether it changes anything. It fails open: when it cannot
// decide it allows the request.
type RateLimiter func(ctx context.Context, key string, write bool) RateLimit

// The rate-limit headers, in canonical form: http.Header canonicalizes any
// other spelling anew, at the cost of an allocation, on every Set.
const (
	headerRateLimitLimit     = "Ratelimit-Limit"
	headerRateLimitRemaining = "Ratelimit-Remaining"
	headerRateLimitReset     = "Ratelimit-Reset"
)

// limitRate applies the rate limiter per API key and sets the RateLimit-*
// headers; an exhausted limit is a 429 with Retry-After.
func (s *Server) limitRate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		method := c.Request().Method
		write := method != http.MethodGet && method != http.MethodHead
		rl := s.limiter(c.Request().Context(), caller(c).KeyID.String(), write)
		h := c.Response().Header()
		if rl.Limit > 0 {
			// One slice for the three (the names are canonical).
			v := []string{strconv.Itoa(rl.Limit), strconv.Itoa(rl.Remaining), strconv.Itoa(ceilSeconds(rl.ResetAfter))}
			h[headerRateLimitLimit], h[headerRateLimitRemaining], h[headerRateLimitReset] = v[0:1:1], v[1:2:2], v[2:3:3]
		}
		if !rl.Allowed {
			limit := limitRead
			if write {
				limit = limitWrite
			}
			s.metrics.refused.WithLabelValues(limit).Inc()
			return &apiError{Status: http.StatusTooManyRequests, Code: "rate_limited",
				Message: "too many requests; slow down",
				Header:  http.Header{"Retry-After": {strconv.Itoa(max(1, ceilSeconds(rl.RetryAfter)))}}}
		}
		return next(c)
	}
}

func ceilSeconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

type meJSON struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
	Name   string `json:"name"`
	Admin  bool   `json:"admin"`
	KeyID  string `json:"key_id"`
}

func (s *Server) me(c echo.Context) error {
	cl := caller(c)
	u, err := s.auth.User(c.Request().Context(), cl.UserID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, meJSON{UserID: u.ID.String(), Email: u.Email, Name: u.Name, Admin: u.Admin, KeyID: cl.KeyID.String()})
}
