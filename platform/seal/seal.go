// Package seal keeps secrets that pms must read back (webhook signing
// secrets: they sign, so they cannot be hashed) encrypted at rest, with
// AES-256-GCM under keys the operator gives, so that a copy of the
// database alone does not give them away.
//
// A sealed value is "sealed:v1:", the key's id (8 hex digits of the
// SHA-256 of the key) and ":", then the nonce and ciphertext in base64.
// Each value is bound to a context (a row's id): moved to another row, it
// does not open. Keys can be rotated: the first seals, every one opens, so
// a new key goes first and an old one stays until every value it sealed
// has been written again.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// prefix starts every sealed value.
const prefix = "sealed:v1:"

// KeySize is the size of a key, in bytes before base64.
const KeySize = 32

// Keys seal and open values. The zero Keys (no keys) seals nothing: values
// are stored as given, as they were before sealing, and only such values
// open.
type Keys struct {
	ids   []string
	aeads []cipher.AEAD
}

// ParseKeys returns the keys, each KeySize random bytes in standard
// base64; the first seals. Its errors name a key by position, never by
// its value.
func ParseKeys(keys []string) (*Keys, error) {
	k := &Keys{}
	for i, s := range keys {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil || len(raw) != KeySize {
			return nil, fmt.Errorf("key %d: must be %d random bytes in base64 (openssl rand -base64 %d)", i+1, KeySize, KeySize)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		sum := sha256.Sum256(raw)
		id := hex.EncodeToString(sum[:4])
		for _, other := range k.ids {
			if other == id {
				return nil, fmt.Errorf("key %d: given twice", i+1)
			}
		}
		k.ids, k.aeads = append(k.ids, id), append(k.aeads, aead)
	}
	return k, nil
}

// On reports whether values are sealed.
func (k *Keys) On() bool { return k != nil && len(k.aeads) > 0 }

// Seal returns plain sealed under the first key and bound to context, or
// plain itself when there are no keys. "" stays "".
func (k *Keys) Seal(plain, context string) (string, error) {
	if !k.On() || plain == "" {
		return plain, nil
	}
	aead := k.aeads[0]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	box := aead.Seal(nonce, nonce, []byte(plain), []byte(context))
	return prefix + k.ids[0] + ":" + base64.StdEncoding.EncodeToString(box), nil
}

// Current reports whether stored is as Seal would store it now: sealed
// under the first key, or, with no keys, in clear. "" always is.
func (k *Keys) Current(stored string) bool {
	if stored == "" {
		return true
	}
	if !k.On() {
		return !strings.HasPrefix(stored, prefix)
	}
	return strings.HasPrefix(stored, prefix+k.ids[0]+":")
}

// ErrNoKey is returned for a value sealed under a key that Keys lacks.
var ErrNoKey = errors.New("sealed under a key not given")

// Open returns the value that Seal sealed under context, or stored itself
// when it was stored before sealing (without the prefix).
func (k *Keys) Open(stored, context string) (string, error) {
	rest, sealed := strings.CutPrefix(stored, prefix)
	if !sealed {
		return stored, nil
	}
	id, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return "", errors.New("open: a sealed value without its key id")
	}
	var aead cipher.AEAD
	if k != nil {
		for i, kid := range k.ids {
			if kid == id {
				aead = k.aeads[i]
			}
		}
	}
	if aead == nil {
		return "", fmt.Errorf("open: %w (key id %s)", ErrNoKey, id)
	}
	box, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(box) < aead.NonceSize() {
		return "", errors.New("open: a sealed value that is not base64 of a nonce and ciphertext")
	}
	plain, err := aead.Open(nil, box[:aead.NonceSize()], box[aead.NonceSize():], []byte(context))
	if err != nil {
		return "", errors.New("open: the value does not open under its key and context (altered, or moved from another row)")
	}
	return string(plain), nil
}
