package account_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/pms-dev/pms/product/account"
)

// TestIsBase64URLEveryByte: of all 256 bytes, those of the unpadded base64url
// alphabet pass, alone and at either end of a string, and no other does.
func TestIsBase64URLEveryByte(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if base64.RawURLEncoding.EncodeToString([]byte{0xfb, 0xff}) != "-_8" {
		t.Fatal("the alphabet's last two letters are not - and _")
	}
	for b := range 256 {
		c := string(rune(b))
		if b >= 0x80 {
			c = string([]byte{byte(b)})
		}
		want := strings.Contains(alphabet, c)
		for _, s := range []string{c, "Ab" + c, c + "9z"} {
			if got := account.IsBase64URL(s); got != want {
				t.Errorf("isBase64URL(%q) = %v, want %v", s, got, want)
			}
		}
	}
}
