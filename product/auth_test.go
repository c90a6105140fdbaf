package product_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pms-dev/pms/product"
)

// lookups is a KeyStore that only counts KeyByPrefix calls and knows no
// key: it stands in for the database, which a malformed key must not reach.
type lookups struct {
	product.KeyStore // nil: any other call panics
	n                int
}

func (l *lookups) KeyByPrefix(context.Context, string) (product.KeyOwner, error) {
	l.n++
	return product.KeyOwner{}, product.ErrUnauthenticated
}

func TestAuthenticateRefusesMalformedKeysWithoutLookup(t *testing.T) {
	secret := strings.Repeat("A", 43)
	for _, key := range []string{
		"",
		"pms_",
		"pms_AAAAAAAAAAAA_" + secret[1:],
		"pms_AAAAAAAAAAAA_" + secret + "A",
		"pms_AAAAAAAAAAAA-" + secret,
		"PMS_AAAAAAAAAAAA_" + secret,
		"pms_" + strings.Repeat("\xff", 12) + "_" + secret,
		"pms_AAAAAAAAAAAA_" + strings.Repeat("\x80", 43),
		"pms_AAAAAAAAAAA=_" + secret,
		"pms_AAAAAAAAAA+/_" + secret,
		"pms_AAAAAAAAAAAA_" + secret[:42] + "\x00",
		"pms_AAAAAAAAAAAA_" + secret[:41] + "é",
	} {
		store := &lookups{}
		_, err := product.NewAuth(store).Authenticate(context.Background(), key)
		if !errors.Is(err, product.ErrUnauthenticated) || store.n != 0 {
			t.Errorf("Authenticate(%q) = %v after %d lookups, want ErrUnauthenticated without any", key, err, store.n)
		}
	}
	// A well-formed key is looked up: the fake would notice if none were.
	store := &lookups{}
	key := "pms_" + strings.Repeat("a", 11) + "-_" + secret[:42] + "_"
	if _, err := product.NewAuth(store).Authenticate(context.Background(), key); !errors.Is(err, product.ErrUnauthenticated) || store.n != 1 {
		t.Errorf("Authenticate(%q) = %v after %d lookups, want ErrUnauthenticated after one", key, err, store.n)
	}
	if len(key) != product.KeyLength {
		t.Errorf("the well-formed key is %d bytes, want KeyLength %d", len(key), product.KeyLength)
	}
}

// noStore is a Store that must not be reached: any call panics.
type noStore struct{ product.Store }

func TestCreateUserRefusesWhatTheStoreCannotHold(t *testing.T) {
	svc := product.NewService(noStore{}, nil, product.Policy{})
	for _, tt := range []struct{ email, name, field string }{
		{"ann\xff@example.com", "Ann", "email"},
		{"ann\x00@example.com", "Ann", "email"},
		{"ann@example.com", "A\xffn", "name"},
		{"ann@example.com", "A\x00n", "name"},
	} {
		_, err := svc.CreateUser(context.Background(), tt.email, tt.name, false)
		var ve *product.ValidationError
		if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != tt.field {
			t.Errorf("CreateUser(%q, %q) = %v, want a validation error naming %s", tt.email, tt.name, err, tt.field)
		}
	}
}
