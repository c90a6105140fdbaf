package seal_test

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/pms-dev/pms/platform/seal"
)

func newKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, seal.KeySize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func mustKeys(t *testing.T, keys ...string) *seal.Keys {
	t.Helper()
	k, err := seal.ParseKeys(keys)
	if err != nil {
		t.Fatalf("ParseKeys: %v", err)
	}
	return k
}

func TestSealOpens(t *testing.T) {
	k := mustKeys(t, newKey(t))
	const secret = "whsec_c2VjcmV0IGJ5dGVzIG9mIHRoZSB3ZWJob29r"
	a, err := k.Seal(secret, "row-1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := k.Seal(secret, "row-1")
	if strings.Contains(a, secret) || !strings.HasPrefix(a, "sealed:v1:") || a == b {
		t.Fatalf("Seal = %q and %q: want two different sealed values without the secret", a, b)
	}
	if got, err := k.Open(a, "row-1"); err != nil || got != secret {
		t.Fatalf("Open = %q, %v; want the secret", got, err)
	}
	if got, err := k.Seal("", "row-1"); err != nil || got != "" {
		t.Errorf(`Seal("") = %q, %v; want "" (no previous secret)`, got, err)
	}
}

func TestOpenRefusesWhatWasChanged(t *testing.T) {
	k := mustKeys(t, newKey(t))
	sealed, err := k.Seal("whsec_abc", "row-1")
	if err != nil {
		t.Fatal(err)
	}
	box := sealed[strings.LastIndexByte(sealed, ':')+1:]
	raw, _ := base64.StdEncoding.DecodeString(box)
	raw[len(raw)-1] ^= 1
	altered := sealed[:len(sealed)-len(box)] + base64.StdEncoding.EncodeToString(raw)
	for name, tc := range map[string]struct{ value, context string }{
		"moved to another row": {sealed, "row-2"},
		"a byte altered":       {altered, "row-1"},
		"cut short":            {sealed[:len(sealed)-len(box)] + "AAAA", "row-1"},
		"not base64":           {sealed[:len(sealed)-len(box)] + "!!", "row-1"},
		"no key id":            {"sealed:v1:" + box, "row-1"},
	} {
		if got, err := k.Open(tc.value, tc.context); err == nil {
			t.Errorf("%s: Open = %q, want an error", name, got)
		}
	}
}

func TestKeysRotate(t *testing.T) {
	old, next := newKey(t), newKey(t)
	before, err := mustKeys(t, old).Seal("whsec_abc", "row-1")
	if err != nil {
		t.Fatal(err)
	}
	rotated := mustKeys(t, next, old)
	if got, err := rotated.Open(before, "row-1"); err != nil || got != "whsec_abc" {
		t.Fatalf("after the rotation, the old key's value opens as %q, %v", got, err)
	}
	after, err := rotated.Seal("whsec_abc", "row-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mustKeys(t, next).Open(after, "row-1"); err != nil {
		t.Errorf("the new key does not open what the rotated keys seal: %v", err)
	}
	if _, err := mustKeys(t, next).Open(before, "row-1"); !errors.Is(err, seal.ErrNoKey) {
		t.Errorf("with the old key dropped, its value opens with %v, want ErrNoKey", err)
	}
	var none *seal.Keys
	if _, err := none.Open(before, "row-1"); !errors.Is(err, seal.ErrNoKey) {
		t.Errorf("with no keys, a sealed value opens with %v, want ErrNoKey", err)
	}
}

func TestNoKeysStoresAsGiven(t *testing.T) {
	k := mustKeys(t)
	if k.On() {
		t.Fatal("no keys, but On")
	}
	if got, err := k.Seal("whsec_abc", "row-1"); err != nil || got != "whsec_abc" {
		t.Errorf("Seal with no keys = %q, %v; want the value as given", got, err)
	}
	// A value stored before sealing opens with keys or without.
	for _, keys := range []*seal.Keys{k, mustKeys(t, newKey(t))} {
		if got, err := keys.Open("whsec_abc", "row-1"); err != nil || got != "whsec_abc" {
			t.Errorf("Open of a clear value = %q, %v", got, err)
		}
	}
}

func TestParseKeysNamesNoKey(t *testing.T) {
	short := base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))
	k := newKey(t)
	for name, keys := range map[string][]string{
		"16 bytes":   {short},
		"not base64": {"not base64 at all!"},
		"twice":      {k, k},
	} {
		_, err := seal.ParseKeys(keys)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		for _, key := range keys {
			if strings.Contains(err.Error(), key) {
				t.Errorf("%s: the error %q shows the key", name, err)
			}
		}
	}
}
