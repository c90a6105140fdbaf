package webhook_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pms-dev/pms/webhook"
)

// TestSignMatchesTheSpecExample signs the example of the Standard Webhooks
// documentation and gets its signature.
func TestSignMatchesTheSpecExample(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	got, err := webhook.Sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign() = %q, want %q", got, want)
	}
}

func TestSignaturesDuringRotation(t *testing.T) {
	a, _ := webhook.NewSecret()
	b, _ := webhook.NewSecret()
	at := time.Unix(1700000000, 0)
	sub := webhook.Subscription{Secret: b, PreviousSecret: a, PreviousSecretUntil: at.Add(time.Hour)}
	both, err := webhook.Signatures(sub.Secrets(at), "id", at, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := webhook.Sign(a, "id", at, []byte("{}"))
	sb, _ := webhook.Sign(b, "id", at, []byte("{}"))
	if both != sb+" "+sa {
		t.Errorf("Signatures during rotation = %q, want the new and the old one", both)
	}
	if after := sub.Secrets(at.Add(2 * time.Hour)); len(after) != 1 || after[0] != b {
		t.Errorf("Secrets after the overlap = %v, want only the new one", after)
	}
	if !strings.HasPrefix(a, "whsec_") || a == b {
		t.Errorf("NewSecret() = %q, %q: want distinct whsec_ secrets", a, b)
	}
}
