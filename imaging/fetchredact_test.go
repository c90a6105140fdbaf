package imaging_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pms-dev/pms/imaging"
)

// TestFetchErrorsHideCredentials fetches URLs that carry a secret in every
// place a URL can: the errors, which end up in logs and on the product, name
// the URL without it.
func TestFetchErrorsHideCredentials(t *testing.T) {
	const secret = "hunter2-fetch-secret"
	srv := startFetchServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			// To cloud metadata: refused before any connection is made.
			http.Redirect(w, r, "http://169.254.169.254/latest?X-Amz-Signature="+secret, http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	f := fetchLoopbackFetcher(t, imaging.FetchConfig{Timeout: 5 * time.Second})
	host := strings.TrimPrefix(srv.URL, "http://")
	for name, tt := range map[string]struct{ url, code string }{
		"password in user info":  {"http://user:" + secret + "@" + host + "/a.png", "invalid_url"},
		"user info unparsable":   {"http://user:" + secret + "@[::1/a.png", "invalid_url"},
		"token in the query":     {srv.URL + "/a.png?token=" + secret + "&w=100", "source_not_found"},
		"signature by any name":  {srv.URL + "/a.png?s=" + secret, "source_not_found"},
		"secret in the fragment": {srv.URL + "/a.png#" + secret, "source_not_found"},
		"secret in a redirect":   {srv.URL + "/redirect", "blocked_address"},
		"secret in a long URL":   {srv.URL + "/a.png?token=" + secret + "&pad=" + strings.Repeat("p", 2100), "invalid_url"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.Fetch(context.Background(), tt.url)
			fetchWantFailure(t, err, tt.code, true)
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("Fetch(%q) error %q holds the secret", tt.url, err)
			}
		})
	}
}
