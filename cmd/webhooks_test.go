package cmd

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// webhookEnv makes deliveries fast enough for a test: short timeouts and
// backoffs, and a retry span of seconds.
var webhookEnv = map[string]string{
	"PMS_WEBHOOKS_TIMEOUT":       "500ms",
	"PMS_WEBHOOKS_RETRY_BASE":    "20ms",
	"PMS_WEBHOOKS_RETRY_MAX":     "200ms",
	"PMS_WEBHOOKS_RETRY_SPAN":    "15s", // a busy machine must not use it up on a receiver that fails once
	"PMS_WEBHOOKS_POLL_INTERVAL": "20ms",
}

// flaky answers the first request of about a third of the ids with 500
// and of about a fifth by hanging past the sender's timeout; /gone always
// answers 410 and /down always 500.
func flaky(path, id string, n int) int {
	switch path {
	case "/gone":
		return http.StatusGone
	case "/down":
		return http.StatusInternalServerError
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	switch v := h.Sum32(); {
	case n == 1 && v%3 == 0:
		return http.StatusInternalServerError
	case n == 1 && v%5 == 1:
		return -1
	}
	return 0
}

// TestWebhooksDeliverEveryEventInOrder runs products through a scripted
// run while a receiver on loopback, which verifies every signature with
// its own implementation of the Standard Webhooks algorithm, answers some
// first attempts with 500 or not at all: every event of pms.events reaches
// it, in order per product, each with its id; a secret rotation is signed
// with both secrets; a receiver that answers 410 gets its subscription
// disabled, and one that always fails gets it marked failing.
func TestWebhooksDeliverEveryEventInOrder(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	src := newSource(t, serve(noisyPNG(t, 11)))
	s, _ := startAll(t, r.env(webhookEnv))
	rcv := newReceiver(t, flaky)

	sub := subscribe(t, s, rcv.srv.URL+"/hook")
	gone := subscribe(t, s, rcv.srv.URL+"/gone")
	down := subscribe(t, s, rcv.srv.URL+"/down")
	rcv.setSecrets(sub.Secret, gone.Secret, down.Secret)

	// Phase 1: three products with an image each, changed twice; one deleted.
	script := func(phase string, n int) []string {
		var ids []string
		for i := range n {
			id := createProduct(t, s, fmt.Sprintf("hooks-%s-%d", phase, i), src.URL(fmt.Sprintf("/%s%d.png", phase, i)))
			ids = append(ids, id)
		}
		for _, id := range ids {
			waitSettled(t, s, id, 30*time.Second)
			for j := range 2 {
				if code := s.do(t, http.MethodPatch, "/api/v1/products/"+id, fmt.Sprintf(`{"product_name":"Renamed %d"}`, j), "", nil); code != http.StatusOK {
					t.Fatalf("PATCH = %d", code)
				}
			}
		}
		if code := s.do(t, http.MethodDelete, "/api/v1/products/"+ids[0], "", "", nil); code != http.StatusNoContent {
			t.Fatalf("DELETE = %d", code)
		}
		return ids
	}
	perProduct := 5 // created, image.ready, images_ready, updated, updated
	first := script("a", 3)
	wantEvents := len(first)*perProduct + 1
	waitUntil(t, 60*time.Second, "phase 1 delivered", func() bool { return len(distinct(rcv.accepted())) >= wantEvents })

	// Phase 2: rotate the secret; both sign while the rotation overlaps.
	var rotated webhookJSON
	if code := s.do(t, http.MethodPost, "/api/v1/webhooks/"+sub.ID+"/rotate-secret", "", "", &rotated); code != http.StatusOK || rotated.Secret == sub.Secret {
		t.Fatalf("rotate-secret = %d, %+v: want 200 and a new secret", code, rotated)
	}
	rcv.setSecrets(rotated.Secret, sub.Secret, gone.Secret, down.Secret)
	before := len(rcv.accepted())
	second := script("b", 2)
	wantEvents += len(second)*perProduct + 1
	waitUntil(t, 60*time.Second, "phase 2 delivered", func() bool { return len(distinct(rcv.accepted())) >= wantEvents })

	// Every event on the topic, in the topic's order per product, and
	// nothing else.
	byKey, _ := readEvents(t, r.kafka.Brokers(), wantEvents, 30*time.Second)
	got := distinct(rcv.accepted())
	if len(got) != wantEvents {
		t.Errorf("receiver accepted %d distinct events, want %d", len(got), wantEvents)
	}
	order := map[string][]string{} // product id -> event ids in arrival order
	for _, rec := range rcv.accepted() {
		var ev cloudEvent
		if err := json.Unmarshal(rec.Body, &ev); err != nil {
			t.Fatalf("delivery body is not a CloudEvent: %v", err)
		}
		if ev.ID != rec.ID {
			t.Errorf("delivery webhook-id %s, event id %s: want the same", rec.ID, ev.ID)
		}
		if ids := order[ev.Subject]; len(ids) == 0 || ids[len(ids)-1] != ev.ID {
			order[ev.Subject] = append(order[ev.Subject], ev.ID)
		}
	}
	for _, id := range append(first, second...) {
		var want []string
		for _, ev := range byKey[id] {
			want = append(want, ev.ID)
		}
		if strings.Join(order[id], ",") != strings.Join(want, ",") {
			t.Errorf("product %s: delivered %v, want the topic's order %v", id, order[id], want)
		}
	}
	// Duplicates (a timed-out attempt the receiver had taken) carry the
	// same id and body.
	bodies := map[string]string{}
	for _, rec := range rcv.accepted() {
		if b, ok := bodies[rec.ID]; ok && b != string(rec.Body) {
			t.Errorf("two deliveries with id %s and different bodies", rec.ID)
		}
		bodies[rec.ID] = string(rec.Body)
	}
	// After the rotation: two signatures, one under the new secret (0)
	// and one under the old (1).
	for _, rec := range rcv.accepted()[before:] {
		if rec.Signatures != 2 || fmt.Sprint(rec.Verified) != "[0 1]" {
			t.Errorf("delivery %s after rotation has %d signatures verifying under secrets %v, want 2, under the new and the old", rec.ID, rec.Signatures, rec.Verified)
			break
		}
	}
	// Retries happened and the log says so.
	var retried int
	for _, d := range deliveries(t, s, sub.ID) {
		if d.Status != "delivered" {
			t.Errorf("delivery %s is %s after the run, want delivered", d.ID, d.Status)
		}
		if d.Attempts > 1 {
			retried++
		}
	}
	if retried == 0 {
		t.Errorf("no delivery needed a second attempt: the receiver's failures did not happen")
	}

	// 410 disables at once, with its reason; the always-failing receiver
	// is disabled as failing once its first delivery used the span.
	if w := getWebhook(t, s, gone.ID); w.Enabled || w.Status != "gone" || !strings.Contains(w.DisabledReason, "410") {
		t.Errorf("subscription answered with 410 = %+v, want disabled, gone, reason naming 410", w)
	}
	waitUntil(t, 60*time.Second, "the failing subscription disabled", func() bool { return getWebhook(t, s, down.ID).Status == "failing" })
	// The reason names the delivery that used up the span and its last
	// error: a 500 as a rule, a time-out when the machine stalled.
	if w := getWebhook(t, s, down.ID); w.Enabled || !namesAFailedDelivery(w.DisabledReason, deliveries(t, s, down.ID)) {
		t.Errorf("failing subscription = %+v, want disabled with a failed delivery and its last error in its reason; deliveries %+v", w, deliveries(t, s, down.ID))
	}

	// A retry of a delivered delivery sends it again, with the same id.
	log := deliveries(t, s, sub.ID)
	again := log[len(log)-1]
	hits := rcv.hits(again.EventID)
	var d deliveryJSON
	if code := s.do(t, http.MethodPost, "/api/v1/webhooks/"+sub.ID+"/deliveries/"+again.ID+"/retry", "", "", &d); code != http.StatusAccepted || d.Status != "pending" {
		t.Fatalf("retry = %d %+v, want 202 pending", code, d)
	}
	waitUntil(t, 20*time.Second, "the retried delivery", func() bool { return rcv.hits(again.EventID) > hits })

	if n := rcv.rejections(); n != 0 {
		t.Errorf("receiver rejected %d requests pms sent: signatures or timestamps did not verify", n)
	}
}

// namesAFailedDelivery reports whether reason names one of the failed
// deliveries and its last error, which is an answer of 500 or a time-out.
func namesAFailedDelivery(reason string, ds []deliveryJSON) bool {
	for _, d := range ds {
		if d.Status == "failed" && d.LastError != "" && strings.Contains(reason, d.ID) && strings.Contains(reason, d.LastError) &&
			(strings.Contains(d.LastError, "500") || strings.Contains(d.LastError, "Timeout")) {
			return true
		}
	}
	return false
}

// distinct returns the ids of the deliveries, each once.
func distinct(rs []received) map[string]bool {
	ids := map[string]bool{}
	for _, r := range rs {
		ids[r.ID] = true
	}
	return ids
}

// TestWebhookReceiverRejectsForgeriesAndReplays: the test's receiver is no
// rubber stamp: a wrong signature, an unknown secret and a correctly
// signed delivery older than 5 minutes are refused.
func TestWebhookReceiverRejectsForgeriesAndReplays(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	sign := func(id string, ts int64, body string, key string) string {
		k, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(key, "whsec_"))
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "." + body))
		return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	other := "whsec_" + base64.StdEncoding.EncodeToString([]byte("another secret of thirty-two b.."))
	now := time.Now()
	tests := []struct {
		name string
		ts   int64
		sig  string
		ok   bool
	}{
		{"signed now", now.Unix(), sign("msg_1", now.Unix(), "{}", secret), true},
		{"two signatures, one good", now.Unix(), sign("msg_1", now.Unix(), "{}", other) + " " + sign("msg_1", now.Unix(), "{}", secret), true},
		{"other secret", now.Unix(), sign("msg_1", now.Unix(), "{}", other), false},
		{"other body", now.Unix(), sign("msg_1", now.Unix(), "{ }", secret), false},
		{"replayed after 6 minutes", now.Add(-6 * time.Minute).Unix(), sign("msg_1", now.Add(-6*time.Minute).Unix(), "{}", secret), false},
		{"v2 only", now.Unix(), strings.Replace(sign("msg_1", now.Unix(), "{}", secret), "v1,", "v2,", 1), false},
	}
	for _, tt := range tests {
		h := http.Header{}
		h.Set("webhook-id", "msg_1")
		h.Set("webhook-timestamp", strconv.FormatInt(tt.ts, 10))
		h.Set("webhook-signature", tt.sig)
		_, err := verifyStandardWebhook(h, []byte("{}"), []string{secret}, now, 5*time.Minute)
		if (err == nil) != tt.ok {
			t.Errorf("%s: verify = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// TestWebhooksRefuseLoopbackWithoutPrivateNetworks: with private networks
// not allowed (the production setting), a subscription to a loopback
// address is refused when made, and one to a name that resolves to
// loopback is never sent: its deliveries fail at the dial with
// blocked_address and the receiver hears nothing.
func TestWebhooksRefuseLoopbackWithoutPrivateNetworks(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	s, _ := startAll(t, r.env(merged(webhookEnv, map[string]string{"PMS_IMAGING_FETCH_ALLOW_PRIVATE_NETWORKS": "false"})))
	rcv := newReceiver(t, func(string, string, int) int { return 0 })

	body := `{"url":"` + rcv.srv.URL + `/hook","event_types":["product.created"]}`
	var refused struct {
		Error struct {
			Fields []struct{ Field, Problem string } `json:"fields"`
		} `json:"error"`
	}
	code := s.doRaw(t, http.MethodPost, "/api/v1/webhooks", body, &refused)
	if code != http.StatusBadRequest || len(refused.Error.Fields) != 1 || refused.Error.Fields[0].Field != "url" ||
		!strings.Contains(refused.Error.Fields[0].Problem, "blocked_address") {
		t.Fatalf("POST webhook to %s = %d %+v, want 400 naming url as blocked_address", rcv.srv.URL, code, refused)
	}

	port := rcv.srv.URL[strings.LastIndex(rcv.srv.URL, ":")+1:]
	sub := subscribe(t, s, "http://localhost:"+port+"/hook")
	rcv.setSecrets(sub.Secret)
	if code := s.do(t, http.MethodPost, "/api/v1/products", `{"product_name":"SSRF","product_price":1}`, "", nil); code != http.StatusCreated {
		t.Fatalf("POST product = %d", code)
	}
	waitUntil(t, 20*time.Second, "a refused attempt in the log", func() bool {
		ds := deliveries(t, s, sub.ID)
		return len(ds) == 1 && ds[0].Attempts >= 2
	})
	d := deliveries(t, s, sub.ID)[0]
	if d.Status == "delivered" || !strings.Contains(d.LastError, "blocked_address") || d.ResponseCode != 0 {
		t.Errorf("delivery to loopback by name = %+v, want not delivered, last_error blocked_address, no response", d)
	}
	if n := len(rcv.accepted()) + rcv.rejections(); n != 0 {
		t.Errorf("the loopback receiver got %d requests, want none", n)
	}
}

// TestWebhooksBelongToTheirOwner: a subscription is its owner's alone (to
// others it does not exist), its secret is shown only when made, bad input
// is a 400 naming the field, and it delivers only events of products its
// owner may read.
func TestWebhooksBelongToTheirOwner(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	s, _ := startAll(t, r.env(webhookEnv))
	otherKey, err := newTestKey(testAccounts(t, s.app.cfg))
	if err != nil {
		t.Fatal(err)
	}
	other := &stack{app: s.app, base: s.base, ops: s.ops, key: otherKey, logs: s.logs}
	rcv := newReceiver(t, func(string, string, int) int { return 0 })

	mine := subscribe(t, s, rcv.srv.URL+"/mine")
	theirs := subscribe(t, other, rcv.srv.URL+"/theirs")
	rcv.setSecrets(mine.Secret, theirs.Secret)
	if w := getWebhook(t, s, mine.ID); w.Secret != "" {
		t.Errorf("GET webhook shows the secret %q, want it only in the answer that made it", w.Secret)
	}
	for _, req := range []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/webhooks/" + mine.ID, ""},
		{http.MethodPatch, "/api/v1/webhooks/" + mine.ID, `{"enabled":false}`},
		{http.MethodPost, "/api/v1/webhooks/" + mine.ID + "/rotate-secret", ""},
		{http.MethodGet, "/api/v1/webhooks/" + mine.ID + "/deliveries", ""},
		{http.MethodDelete, "/api/v1/webhooks/" + mine.ID, ""},
	} {
		if code := other.do(t, req.method, req.path, req.body, "", nil); code != http.StatusNotFound {
			t.Errorf("%s %s by another user = %d, want 404", req.method, req.path, code)
		}
	}
	var list struct {
		Items []webhookJSON `json:"items"`
	}
	if code := other.do(t, http.MethodGet, "/api/v1/webhooks", "", "", &list); code != http.StatusOK || len(list.Items) != 1 || list.Items[0].ID != theirs.ID {
		t.Errorf("GET /api/v1/webhooks by the other user = %d %+v, want only their own", code, list.Items)
	}
	for _, body := range []string{
		`{"url":"ftp://example.com/x","event_types":["product.created"]}`,
		`{"url":"https://example.com/x","event_types":["product.exploded"]}`,
		`{"url":"https://example.com/x","event_types":[]}`,
		`{"url":"https://example.com/x","event_types":["product.created"],"enabled":"yes"}`,
		`{"event_types":["product.created"]}`,
	} {
		var bad struct {
			Error struct {
				Fields []struct{ Field string } `json:"fields"`
			} `json:"error"`
		}
		if code := s.doRaw(t, http.MethodPost, "/api/v1/webhooks", body, &bad); code != http.StatusBadRequest || len(bad.Error.Fields) == 0 {
			t.Errorf("POST webhook %s = %d %+v, want 400 naming the field", body, code, bad)
		}
	}

	// Each user's product reaches only their own subscription.
	body := `{"product_name":"Owned","product_price":1}`
	var p, q e2eProduct
	if code := s.do(t, http.MethodPost, "/api/v1/products", body, "", &p); code != http.StatusCreated {
		t.Fatalf("POST product = %d", code)
	}
	if code := other.do(t, http.MethodPost, "/api/v1/products", body, "", &q); code != http.StatusCreated {
		t.Fatalf("POST product = %d", code)
	}
	waitUntil(t, 20*time.Second, "both created events delivered", func() bool { return len(rcv.accepted()) >= 2 })
	time.Sleep(300 * time.Millisecond) // room for a wrong delivery
	if ds := deliveries(t, s, mine.ID); len(ds) != 1 || ds[0].EventType != "product.created" {
		t.Errorf("owner's deliveries = %+v, want only their product's created event", ds)
	}
	if ds := deliveries(t, other, theirs.ID); len(ds) != 1 {
		t.Errorf("other user's deliveries = %+v, want only their product's created event", ds)
	}
	if got := len(rcv.accepted()); got != 2 {
		t.Errorf("receiver accepted %d deliveries, want 2", got)
	}
}

// TestWebhooksReplaySince: `pms webhooks replay --since` sends what was
// delivered since then again, with the same ids, in order per product, and
// shows its progress; a bad --since is a usage error.
func TestWebhooksReplaySince(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs pms all and the pms binary")
	}
	t.Parallel()
	bin := buildPMS(t)
	r := newRig(t)
	env := r.env(webhookEnv)
	s, _ := startAll(t, env)
	rcv := newReceiver(t, func(string, string, int) int { return 0 })
	sub := subscribe(t, s, rcv.srv.URL+"/hook")
	rcv.setSecrets(sub.Secret)
	var ids []string
	for i := range 3 {
		var p e2eProduct
		if code := s.do(t, http.MethodPost, "/api/v1/products", fmt.Sprintf(`{"product_name":"Replay %d","product_price":1}`, i), "", &p); code != http.StatusCreated {
			t.Fatalf("POST product = %d", code)
		}
		if code := s.do(t, http.MethodPatch, "/api/v1/products/"+p.ID, `{"product_name":"Replayed"}`, "", nil); code != http.StatusOK {
			t.Fatalf("PATCH product = %d", code)
		}
		ids = append(ids, p.ID)
	}
	waitUntil(t, 20*time.Second, "6 deliveries", func() bool { return len(rcv.accepted()) >= 6 })
	before := rcv.accepted()

	if out, err := pmsRun(t, bin, env, "webhooks", "replay", "--since", "yesterday", "--config", "../config.yaml"); err == nil || !strings.Contains(out, "neither an RFC 3339 time nor a positive duration") {
		t.Errorf("replay --since yesterday = %v:\n%s\nwant a usage error", err, out)
	}
	out := withoutLogs(pmsCLI(t, bin, env, "webhooks", "replay", "--since", "10m", "--config", "../config.yaml"))
	t.Logf("pms webhooks replay:\n%s", out)
	if !strings.Contains(out, "queued 6 deliveries again") || !strings.Contains(out, "replaying") {
		t.Fatalf("replay:\n%s\nwant a progress bar and 6 queued again", out)
	}
	waitUntil(t, 20*time.Second, "6 more deliveries", func() bool { return len(rcv.accepted()) >= 12 })
	again := rcv.accepted()[len(before):]
	for _, id := range ids {
		var first, second []string
		for _, rec := range before {
			if strings.Contains(string(rec.Body), `"subject":"`+id+`"`) {
				first = append(first, rec.ID)
			}
		}
		for _, rec := range again {
			if strings.Contains(string(rec.Body), `"subject":"`+id+`"`) {
				second = append(second, rec.ID)
			}
		}
		if len(first) != 2 || strings.Join(first, ",") != strings.Join(second, ",") {
			t.Errorf("product %s: delivered %v, replayed %v: want the same two ids in the same order", id, first, second)
		}
	}
}

// TestWebhooksSlowReceiverHoldsUpNoOne: a receiver that never answers
// holds at most webhooks.per_subscription senders, each for
// webhooks.timeout; another subscription's deliveries go on meanwhile.
func TestWebhooksSlowReceiverHoldsUpNoOne(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	env := r.env(merged(webhookEnv, map[string]string{
		"PMS_WEBHOOKS_TIMEOUT": "5s", "PMS_WEBHOOKS_CONCURRENCY": "4", "PMS_WEBHOOKS_PER_SUBSCRIPTION": "2", "PMS_WEBHOOKS_RETRY_SPAN": "1m",
	}))
	s, _ := startAll(t, env)
	rcv := newReceiver(t, func(path, _ string, _ int) int {
		if path == "/slow" {
			return -1
		}
		return 0
	})
	slow := subscribe(t, s, rcv.srv.URL+"/slow")
	fast := subscribe(t, s, rcv.srv.URL+"/fast")
	rcv.setSecrets(slow.Secret, fast.Secret)
	start := time.Now()
	for i := range 10 {
		if code := s.do(t, http.MethodPost, "/api/v1/products", fmt.Sprintf(`{"product_name":"Slow %d","product_price":1}`, i), "", nil); code != http.StatusCreated {
			t.Fatalf("POST product = %d", code)
		}
	}
	// Ten products: ten queues per subscription. The slow one's take two
	// senders for 5s at a time; the fast one's all arrive well before the
	// slow receiver's first attempts time out.
	waitUntil(t, 20*time.Second, "the fast subscription's 10 deliveries", func() bool { return len(rcv.accepted()) >= 10 })
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("the fast subscription's deliveries took %v, want them before the slow one's 5s timeouts", took)
	}
	var inFlight int
	for _, d := range deliveries(t, s, slow.ID) {
		if d.Attempts == 0 {
			inFlight++
		}
	}
	if inFlight != 10 {
		t.Errorf("slow subscription has %d deliveries not yet attempted to the end, want all 10", inFlight)
	}
	if hits := rcv.slowHits(); hits > 2 {
		t.Errorf("the slow receiver holds %d requests at once, want at most webhooks.per_subscription (2)", hits)
	}
}

// TestWebhookSecretsSealedEndToEnd: with webhooks.secret_keys, `pms all`
// keeps the signing secret sealed in PostgreSQL and its worker still signs
// with it (the receiver checks the signature); `pms webhooks reseal` after
// a rotation moves it to the new key, with its progress, after which the
// old key can go. A serving process warns while a rotation waits for the
// reseal, and when no keys are set.
func TestWebhookSecretsSealedEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs pms all and the pms binary")
	}
	t.Parallel()
	bin := buildPMS(t)
	r := newRig(t)
	oldKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	newKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	env := r.env(webhookEnv)
	env["PMS_WEBHOOKS_SECRET_KEYS"] = oldKey
	s, stop := startAll(t, env)
	rcv := newReceiver(t, func(string, string, int) int { return 0 })
	sub := subscribe(t, s, rcv.srv.URL+"/hook")
	rcv.setSecrets(sub.Secret)
	if code := s.do(t, http.MethodPost, "/api/v1/products", `{"product_name":"Sealed","product_price":1}`, "", nil); code != http.StatusCreated {
		t.Fatalf("POST product = %d", code)
	}
	waitUntil(t, 20*time.Second, "the created event delivered, its signature checked", func() bool { return len(rcv.accepted()) >= 1 })
	stop()
	if logs := s.logs.String(); strings.Contains(logs, warnClear) || strings.Contains(logs, warnStale) {
		t.Errorf("pms all with a sealing key and its secrets sealed warned:\n%s", logs)
	}

	raw, err := sql.Open("postgres", r.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	stored := func() string {
		var secret string
		if err := raw.QueryRowContext(t.Context(), `SELECT secret FROM webhooks WHERE id = $1`, sub.ID).Scan(&secret); err != nil {
			t.Fatal(err)
		}
		return secret
	}
	first := stored()
	if strings.Contains(first, strings.TrimPrefix(sub.Secret, "whsec_")) || !strings.HasPrefix(first, "sealed:v1:") {
		t.Fatalf("PostgreSQL holds the secret as %q, want it sealed", first)
	}
	env["PMS_WEBHOOKS_SECRET_KEYS"] = newKey + "," + oldKey
	startedWarns(t, env, warnStale, `"subscriptions":1`)
	out := withoutLogs(pmsCLI(t, bin, env, "webhooks", "reseal", "--config", "../config.yaml"))
	if !strings.Contains(out, "resealed the secrets of 1 subscription(s)") || !strings.Contains(out, "resealing") {
		t.Fatalf("reseal:\n%s\nwant a progress bar and 1 resealed", out)
	}
	if again := stored(); again == first || !strings.HasPrefix(again, "sealed:v1:") {
		t.Fatalf("after reseal PostgreSQL holds %q (was %q), want it sealed under the new key", again, first)
	}
	env["PMS_WEBHOOKS_SECRET_KEYS"] = newKey
	if out := withoutLogs(pmsCLI(t, bin, env, "webhooks", "reseal", "--config", "../config.yaml")); !strings.Contains(out, "resealed the secrets of 0 subscription(s)") {
		t.Errorf("reseal with the new key alone:\n%s\nwant nothing left to reseal", out)
	}
	delete(env, "PMS_WEBHOOKS_SECRET_KEYS")
	startedWarns(t, env, warnClear, warnStale)
	env["PMS_WEBHOOKS_SECRET_KEYS"] = "c2hvcnQ="
	if out, err := pmsRun(t, bin, env, "webhooks", "reseal", "--config", "../config.yaml"); err == nil || !strings.Contains(out, "webhooks.secret_keys: key 1: must be 32 random bytes in base64") {
		t.Errorf("reseal with a short key = %v:\n%s\nwant the config refused", err, out)
	}
}

// The warnings of a serving process about how the secrets are kept.
const (
	warnClear = "webhooks.secret_keys is empty: webhook signing secrets are stored in clear"
	warnStale = "webhook signing secrets are not stored as webhooks.secret_keys asks: run pms webhooks reseal"
)

// startedWarns starts pms all on env, stops it once it is ready, and
// fails t unless its log holds every one of want.
func startedWarns(t *testing.T, env map[string]string, want ...string) {
	t.Helper()
	s, stop := startAll(t, env)
	stop()
	logs := s.logs.String()
	for _, w := range want {
		if !strings.Contains(logs, w) {
			t.Errorf("pms all's log lacks %q:\n%s", w, logs)
		}
	}
}
