package cmd

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// verifyStandardWebhook checks a delivery as a receiver following the
// Standard Webhooks specification does, written here from the spec and not
// from pms's code: the timestamp within tolerance of now, and at least one
// "v1," signature in the space-separated webhook-signature that is the
// base64 HMAC-SHA256, keyed with the base64-decoded part of a secret after
// "whsec_", of "<webhook-id>.<webhook-timestamp>.<body>". It returns the
// secrets (by index) that some signature verified under.
func verifyStandardWebhook(h http.Header, body []byte, secrets []string, now time.Time, tolerance time.Duration) ([]int, error) {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return nil, errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, errors.New("webhook-timestamp is not unix seconds")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return nil, errors.New("webhook-timestamp too old or too new")
	}
	var ok []int
	for i, secret := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		if err != nil {
			return nil, err
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "." + string(body)))
		want := mac.Sum(nil)
		for _, s := range strings.Fields(sigs) {
			version, b64, found := strings.Cut(s, ",")
			if !found || version != "v1" {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(b64)
			if err == nil && hmac.Equal(got, want) {
				ok = append(ok, i)
			}
		}
	}
	if len(ok) == 0 {
		return nil, errors.New("no signature verifies")
	}
	return ok, nil
}

// received is a delivery a receiver accepted.
type received struct {
	ID         string
	Body       []byte
	Signatures int   // v1 signatures in the header
	Verified   []int // indexes of the receiver's secrets that verified
}

// receiver is a webhook endpoint on loopback: it verifies every request,
// answers 401 to one that does not verify, and otherwise as fail says for
// the n-th request with an id: 0 accepts, a status answers it, and -1
// hangs past the sender's timeout.
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	secrets  []string
	got      []received
	rejected int
	requests map[string]int // by webhook-id
	fail     func(path, id string, n int) int
}

func newReceiver(t *testing.T, fail func(path, id string, n int) int) *receiver {
	t.Helper()
	r := &receiver{requests: map[string]int{}, fail: fail}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	verified, err := verifyStandardWebhook(req.Header, body, r.secrets, time.Now(), 5*time.Minute)
	if err != nil {
		r.rejected++
		r.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	id := req.Header.Get("webhook-id")
	r.requests[id]++
	n := r.requests[id]
	r.mu.Unlock()
	switch code := r.fail(req.URL.Path, id, n); code {
	case 0:
	case -1:
		select {
		case <-req.Context().Done():
		case <-time.After(3 * time.Second):
		}
		return
	default:
		w.WriteHeader(code)
		return
	}
	r.mu.Lock()
	r.got = append(r.got, received{ID: id, Body: body, Signatures: len(strings.Fields(req.Header.Get("webhook-signature"))), Verified: verified})
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// setSecrets replaces the secrets the receiver accepts.
func (r *receiver) setSecrets(s ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets = slices.Clone(s)
}

// accepted returns the deliveries accepted so far, in arrival order.
func (r *receiver) accepted() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// hits returns how many verified requests had the id.
func (r *receiver) hits(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests[id]
}

func (r *receiver) rejections() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rejected
}

// webhookJSON is what the tests read of a subscription.
type webhookJSON struct {
	ID             string `json:"id"`
	URL            string `json:"url"`
	Enabled        bool   `json:"enabled"`
	Status         string `json:"status"`
	DisabledReason string `json:"disabled_reason"`
	Secret         string `json:"secret"`
}

type deliveryJSON struct {
	ID           string  `json:"id"`
	EventID      string  `json:"event_id"`
	EventType    string  `json:"event_type"`
	Status       string  `json:"status"`
	Attempts     int     `json:"attempts"`
	ResponseCode int     `json:"response_code"`
	LastError    string  `json:"last_error"`
	LatencyMS    float64 `json:"latency_ms"`
}

// subscribe makes a subscription to url for every event type.
func subscribe(t *testing.T, s *stack, url string) webhookJSON {
	t.Helper()
	var w webhookJSON
	body := `{"url":"` + url + `","event_types":["product.created","product.updated","product.deleted","image.ready","image.failed","product.images_ready"]}`
	if code := s.do(t, http.MethodPost, "/api/v1/webhooks", body, "", &w); code != http.StatusCreated {
		t.Fatalf("POST /api/v1/webhooks %s = %d, want 201", body, code)
	}
	if !strings.HasPrefix(w.Secret, "whsec_") || w.Status != "active" {
		t.Fatalf("new subscription = %+v, want active with a whsec_ secret", w)
	}
	return w
}

func getWebhook(t *testing.T, s *stack, id string) webhookJSON {
	t.Helper()
	var w webhookJSON
	if code := s.do(t, http.MethodGet, "/api/v1/webhooks/"+id, "", "", &w); code != http.StatusOK {
		t.Fatalf("GET webhook %s = %d", id, code)
	}
	return w
}

func deliveries(t *testing.T, s *stack, id string) []deliveryJSON {
	t.Helper()
	var page struct {
		Items []deliveryJSON `json:"items"`
	}
	if code := s.do(t, http.MethodGet, "/api/v1/webhooks/"+id+"/deliveries?limit=100", "", "", &page); code != http.StatusOK {
		t.Fatalf("GET deliveries of %s = %d", id, code)
	}
	return page.Items
}

// doRaw is do that decodes the body whatever the status.
func (s *stack) doRaw(t *testing.T, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		t.Fatalf("%s %s = %d: %v", method, path, res.StatusCode, err)
	}
	return res.StatusCode
}
