package httpapi

import (
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TestTraceHeadersReadAsHeaderCarrier: the carrier of requests' trace
// context reads every key as propagation.HeaderCarrier does, whatever its
// case, and the propagator takes the same span context through either.
func TestTraceHeadersReadAsHeaderCarrier(t *testing.T) {
	h := http.Header{}
	h.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.Set("tracestate", "congo=t61rcWkgMzE")
	h.Set("baggage", "a=b")
	for _, k := range []string{"traceparent", "Traceparent", "TRACEPARENT", "tracestate", "Tracestate", "baggage", "absent"} {
		if got, want := traceHeaders(h).Get(k), (propagation.HeaderCarrier(h)).Get(k); got != want {
			t.Errorf("Get(%q) = %q, want %q", k, got, want)
		}
	}
	p := propagation.TraceContext{}
	a := p.Extract(t.Context(), traceHeaders(h))
	b := p.Extract(t.Context(), propagation.HeaderCarrier(h))
	if sa, sb := trace.SpanContextFromContext(a), trace.SpanContextFromContext(b); !sa.Equal(sb) || !sa.IsValid() {
		t.Errorf("span context through traceHeaders %v, through HeaderCarrier %v: want the same, valid", sa, sb)
	}
	if got := traceHeaders(http.Header{}).Get("traceparent"); got != "" {
		t.Errorf("Get on no headers = %q", got)
	}
}
