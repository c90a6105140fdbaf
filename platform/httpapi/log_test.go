package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestRequestLogLines: the line written for each request says which
// request it was (its X-Request-ID), its method and route, its status, and
// who it acted for once the key is known; a line logged while a request
// runs says which request, method and route too.
func TestRequestLogLines(t *testing.T) {
	t.Parallel()
	a, logs := newLoggedAPI(t)
	a.key = a.newKey(t, false)

	me := a.do(t, http.MethodGet, "/api/v1/me", "", "X-Request-ID", "log-test-me")
	var who struct {
		UserID string `json:"user_id"`
		KeyID  string `json:"key_id"`
	}
	if err := json.Unmarshal(me.body, &who); err != nil || me.status != http.StatusOK || who.UserID == "" || who.KeyID == "" {
		t.Fatalf("%v: want 200 with user_id and key_id (%v)", me, err)
	}
	failed := a.do(t, http.MethodGet, "/test/store-data-error", "", "X-Request-ID", "log-test-error")
	wantError(t, failed, http.StatusBadRequest, "invalid_input")

	lines := map[string][]map[string]any{} // by request_id
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		id, _ := entry["request_id"].(string)
		lines[id] = append(lines[id], entry)
	}
	want := func(id string, message string, fields map[string]any, absent ...string) {
		t.Helper()
		for _, entry := range lines[id] {
			if entry["message"] != message {
				continue
			}
			for k, v := range fields {
				if entry[k] != v {
					t.Errorf("%q line of request %s: %s = %v, want %v; line %v", message, id, k, entry[k], v, entry)
				}
			}
			for _, k := range absent {
				if _, ok := entry[k]; ok {
					t.Errorf("%q line of request %s has %s; line %v", message, id, k, entry)
				}
			}
			return
		}
		t.Errorf("no %q line with request_id %q; lines by request id: %v", message, id, lines)
	}
	want("log-test-me", "request", map[string]any{"method": "GET", "route": "/api/v1/me", "status": float64(http.StatusOK),
		"user_id": who.UserID, "key_id": who.KeyID})
	want("log-test-error", "request", map[string]any{"method": "GET", "route": "/test/store-data-error",
		"status": float64(http.StatusBadRequest)}, "user_id", "key_id")
	var warned string
	for _, entry := range lines["log-test-error"] {
		if entry["level"] == "warn" {
			warned, _ = entry["message"].(string)
		}
	}
	if warned == "" {
		t.Fatalf("no warn line with request_id log-test-error; lines by request id: %v", lines)
	}
	want("log-test-error", warned, map[string]any{"method": "GET", "route": "/test/store-data-error"}, "user_id", "key_id")
}
