package account_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/pms-dev/pms/product/account"
)

// lookups is a Store that only counts KeyByPrefix calls and knows no
// key: it stands in for the database, which a malformed key must not reach.
type lookups struct {
	account.Store // nil: any other call panics
	n             int
}

func (l *lookups) KeyByPrefix(context.Context, string) (account.KeyOwner, error) {
	l.n++
	return account.KeyOwner{}, account.ErrUnauthenticated
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
		_, err := account.NewService(store).Authenticate(context.Background(), key)
		if !errors.Is(err, account.ErrUnauthenticated) || store.n != 0 {
			t.Errorf("Authenticate(%q) = %v after %d lookups, want ErrUnauthenticated without any", key, err, store.n)
		}
	}
	// A well-formed key is looked up: the fake would notice if none were.
	store := &lookups{}
	key := "pms_" + strings.Repeat("a", 11) + "-_" + secret[:42] + "_"
	if _, err := account.NewService(store).Authenticate(context.Background(), key); !errors.Is(err, account.ErrUnauthenticated) || store.n != 1 {
		t.Errorf("Authenticate(%q) = %v after %d lookups, want ErrUnauthenticated after one", key, err, store.n)
	}
	if len(key) != account.KeyLength {
		t.Errorf("the well-formed key is %d bytes, want KeyLength %d", len(key), account.KeyLength)
	}
}

// fixture is a Service on a memStore and a clock.
type fixture struct {
	svc   *account.Service
	store *memStore
	clock *clock
}

func newFixture(t *testing.T) fixture {
	f := fixture{store: newMemStore(), clock: newClock()}
	f.svc = account.NewService(f.store)
	account.SetClock(f.svc, f.clock.Now)
	t.Cleanup(f.svc.Wait)
	return f
}

// now is the clock's time as the Service stamps it.
func (f fixture) now() time.Time { return f.clock.Now().UTC().Truncate(time.Microsecond) }

// newUser stores a user and returns them.
func (f fixture) newUser(t *testing.T, admin bool) account.User {
	t.Helper()
	u, err := f.svc.CreateUser(context.Background(), uuid.NewString()+"@example.com", "Ann", admin)
	if err != nil {
		t.Fatalf("CreateUser() error = %v", err)
	}
	return u
}

// newKey makes a key for u and returns it in plain text with its stored form.
func (f fixture) newKey(t *testing.T, u account.User) (string, account.APIKey) {
	t.Helper()
	plain, k, err := f.svc.CreateKey(context.Background(), u.ID)
	if err != nil {
		t.Fatalf("CreateKey(%s) error = %v", u.ID, err)
	}
	return plain, k
}

func TestCreateUser(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u, err := f.svc.CreateUser(ctx, "  Ann@Example.com\t", " Ann Smith ", true)
	if err != nil {
		t.Fatalf("CreateUser() error = %v", err)
	}
	want := account.User{ID: u.ID, Email: "Ann@Example.com", Name: "Ann Smith", Admin: true, CreatedAt: f.now()}
	if diff := cmp.Diff(want, u); diff != "" || u.ID.Version() != 7 {
		t.Errorf("CreateUser() = %+v (id version %d), want a UUIDv7 and (-want +got):\n%s", u, u.ID.Version(), diff)
	}
	for name, get := range map[string]func() (account.User, error){
		"User":        func() (account.User, error) { return f.svc.User(ctx, u.ID) },
		"UserByEmail": func() (account.User, error) { return f.svc.UserByEmail(ctx, "ann@example.COM") },
	} {
		if got, err := get(); err != nil || got != want {
			t.Errorf("%s() = %+v, %v; want %+v", name, got, err, want)
		}
	}
	if _, err := f.svc.CreateUser(ctx, "ANN@example.com", "Another Ann", false); !errors.Is(err, account.ErrEmailTaken) {
		t.Errorf("CreateUser(taken email) error = %v, want ErrEmailTaken", err)
	}
	if _, err := f.svc.User(ctx, uuid.New()); !errors.Is(err, account.ErrUserNotFound) {
		t.Errorf("User(unknown) error = %v, want ErrUserNotFound", err)
	}
}

func TestCreateUserRefusesWhatTheStoreCannotHold(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct {
		email, name string
		fields      []string // nil when valid
	}{
		{"ann\xff@example.com", "Ann", []string{"email"}},
		{"ann\x00@example.com", "Ann", []string{"email"}},
		{"ann@example.com", "A\xffn", []string{"name"}},
		{"ann@example.com", "A\x00n", []string{"name"}},
		{"", "Ann", []string{"email"}},
		{"ann.example.com", "Ann", []string{"email"}},
		{"@example.com", "Ann", []string{"email"}},
		{"ann@", "Ann", []string{"email"}},
		{strings.Repeat("a", 243) + "@example.com", "Ann", []string{"email"}}, // 255 bytes
		{"ann@example.com", "", []string{"name"}},
		{"ann@example.com", " \t ", []string{"name"}},
		{"ann@example.com", strings.Repeat("n", 256), []string{"name"}},
		{"", "", []string{"email", "name"}},
		{strings.Repeat("a", 242) + "@example.com", strings.Repeat("n", 255), nil}, // the longest of each
	} {
		users := len(f.store.users)
		_, err := f.svc.CreateUser(context.Background(), tt.email, tt.name, false)
		var got []string
		if ve := (*account.ValidationError)(nil); errors.As(err, &ve) {
			for _, fe := range ve.Fields {
				got = append(got, fe.Field)
			}
		} else if err != nil {
			t.Errorf("CreateUser(%q, %q) error = %v, want a validation error or none", tt.email, tt.name, err)
		}
		if !cmp.Equal(got, tt.fields) {
			t.Errorf("CreateUser(%q, %q) = %v, want a validation error naming %v", tt.email, tt.name, err, tt.fields)
		}
		if stored := len(f.store.users) - users; stored != map[bool]int{true: 1, false: 0}[tt.fields == nil] {
			t.Errorf("CreateUser(%q, %q) stored %d users", tt.email, tt.name, stored)
		}
	}
}

func TestCreateKeyAuthenticates(t *testing.T) {
	f := newFixture(t)
	for _, admin := range []bool{false, true} {
		u := f.newUser(t, admin)
		plain, k := f.newKey(t, u)
		if len(plain) != account.KeyLength || !strings.HasPrefix(plain, "pms_") || plain[16] != '_' || plain[4:16] != k.Prefix {
			t.Errorf("CreateKey() = %q with prefix %q, want pms_<prefix>_<secret> of %d bytes", plain, k.Prefix, account.KeyLength)
		}
		prefix, secret := plain[4:16], plain[17:] // both base64url, which has '_'
		if sum := sha256.Sum256([]byte(secret)); !cmp.Equal(k.Hash, sum[:]) {
			t.Errorf("CreateKey() stores hash %x, want SHA-256 of the secret", k.Hash)
		}
		want := account.APIKey{ID: k.ID, UserID: u.ID, Prefix: prefix, Hash: k.Hash, CreatedAt: f.now()}
		if diff := cmp.Diff(want, k); diff != "" || k.ID.Version() != 7 {
			t.Errorf("CreateKey() stored form (id version %d) (-want +got):\n%s", k.ID.Version(), diff)
		}
		c, err := f.svc.Authenticate(context.Background(), plain)
		if want := (account.Caller{UserID: u.ID, Admin: admin, KeyID: k.ID}); err != nil || c != want {
			t.Errorf("Authenticate(new key) = %+v, %v; want %+v", c, err, want)
		}
	}
	u := f.newUser(t, false)
	a, _ := f.newKey(t, u)
	b, _ := f.newKey(t, u)
	if a[:16] == b[:16] || a[17:] == b[17:] {
		t.Errorf("two keys %q and %q share a prefix or a secret", a, b)
	}
	keys, err := f.svc.ListKeys(context.Background(), u.ID)
	if err != nil || len(keys) != 2 {
		t.Errorf("ListKeys() = %d keys, %v; want both", len(keys), err)
	}
}

func TestCreateKeyForUnknownUser(t *testing.T) {
	f := newFixture(t)
	if _, _, err := f.svc.CreateKey(context.Background(), uuid.New()); !errors.Is(err, account.ErrUserNotFound) {
		t.Errorf("CreateKey(unknown user) error = %v, want ErrUserNotFound", err)
	}
	if len(f.store.keys) != 0 {
		t.Errorf("CreateKey(unknown user) stored %v", f.store.keys)
	}
}

func TestAuthenticateRefuses(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u := f.newUser(t, false)
	good, _ := f.newKey(t, u)
	revoked, rk := f.newKey(t, u)
	if _, err := f.svc.RevokeKey(ctx, rk.ID); err != nil {
		t.Fatal(err)
	}
	wrong := good[:len(good)-1] + "A"
	if wrong == good {
		wrong = good[:len(good)-1] + "B"
	}
	for name, key := range map[string]string{
		"wrong secret":   wrong,
		"unknown prefix": "pms_" + strings.Repeat("Z", 12) + good[16:],
		"revoked":        revoked,
	} {
		if c, err := f.svc.Authenticate(ctx, key); !errors.Is(err, account.ErrUnauthenticated) {
			t.Errorf("Authenticate(%s) = %+v, %v; want ErrUnauthenticated", name, c, err)
		}
	}
	down := errors.New("store is down")
	f.store.lookupErr = down
	if _, err := f.svc.Authenticate(ctx, good); !errors.Is(err, down) || errors.Is(err, account.ErrUnauthenticated) {
		t.Errorf("Authenticate(store down) error = %v, want the store's error, not ErrUnauthenticated", err)
	}
}

// TestAuthenticateDegraded authenticates from a store that answers from a
// cache in degraded mode: the caller is marked, no last use is written,
// and a revoked key stays refused.
func TestAuthenticateDegraded(t *testing.T) {
	f := newFixture(t)
	u := f.newUser(t, false)
	plain, k := f.newKey(t, u)
	revoked, rk := f.newKey(t, u)
	if _, err := f.svc.RevokeKey(context.Background(), rk.ID); err != nil {
		t.Fatal(err)
	}
	f.store.stale = true
	c, err := f.svc.Authenticate(context.Background(), plain)
	if want := (account.Caller{UserID: u.ID, KeyID: k.ID, Degraded: true}); err != nil || c != want {
		t.Errorf("Authenticate(stale key) = %+v, %v; want %+v", c, err, want)
	}
	if _, err := f.svc.Authenticate(context.Background(), revoked); !errors.Is(err, account.ErrUnauthenticated) {
		t.Errorf("Authenticate(stale revoked key) error = %v, want ErrUnauthenticated", err)
	}
	f.svc.Wait()
	if got := f.store.touched(); len(got) != 0 {
		t.Errorf("a degraded Authenticate wrote last use: %+v", got)
	}
}

// TestAuthenticateTouchesOncePerMinute checks the last-use writes: at most
// one per key and minute, whether the store shows the last write or a cache
// in front of it an older one, at the precision PostgreSQL keeps.
func TestAuthenticateTouchesOncePerMinute(t *testing.T) {
	for _, cached := range []bool{false, true} {
		f := newFixture(t)
		f.store.cached = cached
		u := f.newUser(t, false)
		plain, k := f.newKey(t, u)
		var want []time.Time
		for _, step := range []struct {
			after   time.Duration
			touches bool
		}{
			{0, true},                 // never used
			{30 * time.Second, false}, // used 30s ago
			{31 * time.Second, true},  // used 61s ago
			{time.Second, false},
		} {
			f.clock.Advance(step.after)
			if _, err := f.svc.Authenticate(context.Background(), plain); err != nil {
				t.Fatalf("Authenticate() error = %v", err)
			}
			f.svc.Wait()
			if step.touches {
				want = append(want, f.now())
			}
			var got []time.Time
			for _, tc := range f.store.touched() {
				if tc.id != k.ID {
					t.Errorf("TouchKeys(%s), want key %s", tc.id, k.ID)
				}
				got = append(got, tc.at)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("store shows last use cached %v: after %s more, touches (-want +got):\n%s", cached, step.after, diff)
			}
		}
		if cached {
			continue
		}
		// Another process touched the key 30s ago: this one has no reason to.
		other := account.NewService(f.store)
		account.SetClock(other, f.clock.Now)
		f.clock.Advance(30 * time.Second)
		if _, err := other.Authenticate(context.Background(), plain); err != nil {
			t.Fatal(err)
		}
		other.Wait()
		if got := f.store.touched(); len(got) != len(want) {
			t.Errorf("a key used 30s ago was touched again: %+v", got[len(want):])
		}
	}
}

// TestTouchesWrittenTogether uses three keys and waits for their last uses
// without Wait: they are written by themselves, soon, in one TouchKeys call.
func TestTouchesWrittenTogether(t *testing.T) {
	f := newFixture(t)
	u := f.newUser(t, false)
	want := map[uuid.UUID]bool{}
	for range 3 {
		plain, k := f.newKey(t, u)
		want[k.ID] = true
		if _, err := f.svc.Authenticate(context.Background(), plain); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(f.store.touched()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := f.store.touched()
	if len(got) != len(want) {
		t.Fatalf("touches after 10s: %+v, want one for each of %d keys", got, len(want))
	}
	for _, tc := range got {
		if !want[tc.id] || tc.batch != 1 {
			t.Errorf("touch %+v, want each key once, all in the first TouchKeys call", tc)
		}
		delete(want, tc.id)
	}
}

// TestTouchOutlivesTheRequest ends a request as soon as it is
// authenticated: the last-use write goes on, bounded by its own timeout,
// and the request does not wait for it.
func TestTouchOutlivesTheRequest(t *testing.T) {
	f := newFixture(t)
	u := f.newUser(t, false)
	plain, _ := f.newKey(t, u)
	f.store.hold = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := f.svc.Authenticate(ctx, plain)
		cancel()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Authenticate() error = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Authenticate() waited for its last-use write")
	}
	close(f.store.hold)
	f.svc.Wait()
	got := f.store.touched()
	if len(got) != 1 || got[0].ctxErr != nil || !got[0].hadDeadline || got[0].deadlineIn > 5*time.Second {
		t.Errorf("touches %+v, want one with a live context and a deadline within 5s", got)
	}
}

func TestRevokeKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u := f.newUser(t, false)
	plain, k := f.newKey(t, u)
	f.clock.Advance(time.Minute)
	revoked, err := f.svc.RevokeKey(ctx, k.ID)
	if err != nil || revoked.ID != k.ID || !revoked.RevokedAt.Equal(f.now()) {
		t.Fatalf("RevokeKey() = %+v, %v; want the key revoked at %s", revoked, err, f.now())
	}
	if _, err := f.svc.Authenticate(ctx, plain); !errors.Is(err, account.ErrUnauthenticated) {
		t.Errorf("Authenticate(revoked key) error = %v, want ErrUnauthenticated", err)
	}
	first := f.now()
	f.clock.Advance(time.Minute)
	if again, err := f.svc.RevokeKey(ctx, k.ID); err != nil || !again.RevokedAt.Equal(first) {
		t.Errorf("RevokeKey(again) = %+v, %v; want it still revoked at %s", again, err, first)
	}
	if _, err := f.svc.RevokeKey(ctx, uuid.New()); !errors.Is(err, account.ErrKeyNotFound) {
		t.Errorf("RevokeKey(unknown) error = %v, want ErrKeyNotFound", err)
	}
}
