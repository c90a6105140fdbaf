package redis_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
	"github.com/pms-dev/pms/product/message"
)

// env is what an integration test works with: the caches on a Redis server
// in front of the real stores on the test database, and a plain client to
// look into Redis.
type env struct {
	client  *redis.Client
	raw     *goredis.Client
	db      *postgres.DB
	store   *countingStore
	keys    *countingKeys
	cache   *redis.ProductCache
	keyCach *redis.KeyCache
	user    account.User
	logs    *syncBuffer
}

// newEnv builds an env on the Redis server at addr and the test binary's
// database; edit may change the client config first.
func newEnv(t *testing.T, addr string, edit func(*redis.Config)) *env {
	t.Helper()
	return newEnvOn(t, addr, postgrestest.New(t), edit)
}

// newEnvOn is newEnv on the database db: a private one for tests that count
// store lookups, which a key revoked by another test (moving the key epoch
// of a shared database) would add to.
func newEnvOn(t *testing.T, addr string, db *postgres.DB, edit func(*redis.Config)) *env {
	t.Helper()
	cfg := redis.DefaultConfig()
	cfg.Addr = addr
	// The default 500 ms, missed on a very busy machine, would bypass the cache
	// these tests are about; the outage tests set their own timeout.
	cfg.Timeout = time.Second
	if edit != nil {
		edit(&cfg)
	}
	e := &env{db: db, logs: &syncBuffer{}}
	log := zerolog.New(zerolog.MultiLevelWriter(zerolog.NewTestWriter(t), e.logs))
	client, err := redis.New(cfg, log)
	if err != nil {
		t.Fatalf("redis.New() error = %v", err)
	}
	t.Cleanup(func() {
		if err := client.Close(); err != nil {
			t.Errorf("Close() error = %v", err)
		}
	})
	e.client = client
	e.raw = goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DisableIdentity: true})
	t.Cleanup(func() { e.raw.Close() })
	store, err := postgres.NewProductStore(e.db, postgres.DefaultIdempotencyConfig())
	if err != nil {
		t.Fatalf("NewProductStore() error = %v", err)
	}
	e.store = &countingStore{Store: store}
	accounts := postgres.NewAccountStore(e.db)
	e.keys = &countingKeys{Store: accounts, epochs: accounts}
	e.cache = redis.NewProductCache(client, e.store)
	e.keyCach = redis.NewKeyCache(client, e.keys, e.keys)
	e.user = account.User{ID: uuid.Must(uuid.NewV7()), Email: rand.Text() + "@example.com", Name: "Tester",
		CreatedAt: now()}
	if err := e.keyCach.CreateUser(context.Background(), e.user); err != nil {
		t.Fatalf("CreateUser() error = %v", err)
	}
	return e
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// newProduct creates a product (version 1) through the cache.
func (e *env) newProduct(t *testing.T, imageURLs ...string) product.Product {
	t.Helper()
	at := now()
	p := product.Product{ID: uuid.Must(uuid.NewV7()), UserID: e.user.ID, Name: "Lamp " + rand.Text(),
		Description: "A lamp.", Price: 1999, Version: 1, CreatedAt: at, UpdatedAt: at}
	for i, u := range imageURLs {
		p.Images = append(p.Images, product.Image{ID: uuid.Must(uuid.NewV7()), Position: i, SourceURL: u,
			Status: product.ImagePending, UpdatedAt: at})
	}
	if _, _, err := e.cache.Create(context.Background(), p, product.IdempotencyKey{}, nil); err != nil {
		t.Fatalf("Create() error = %v", err)
	}
	return p
}

// rename renames the product through the cache and returns it at its new
// version.
func (e *env) rename(t *testing.T, id uuid.UUID) product.Product {
	t.Helper()
	p, err := e.cache.Update(context.Background(), id, bump)
	if err != nil {
		t.Fatalf("Update(%s) error = %v", id, err)
	}
	return p
}

// bump is an Update's change that renames the product, at a new version.
func bump(p *product.Product) ([]message.Message, error) {
	p.Name = "Renamed " + rand.Text()
	p.Version++
	p.UpdatedAt = now()
	return nil, nil
}

// newKey stores a new API key for the env's user and returns it.
func (e *env) newKey(t *testing.T) account.APIKey {
	t.Helper()
	secret := sha256.Sum256([]byte(rand.Text()))
	k := account.APIKey{ID: uuid.Must(uuid.NewV7()), UserID: e.user.ID, Prefix: rand.Text()[:12],
		Hash: secret[:], CreatedAt: now()}
	if err := e.keyCach.CreateKey(context.Background(), k); err != nil {
		t.Fatalf("CreateKey() error = %v", err)
	}
	return k
}

// cachedVersion returns the version in the product's Redis value, or 0 when
// there is none.
func (e *env) cachedVersion(t *testing.T, id uuid.UUID) int {
	t.Helper()
	data, err := e.raw.Get(context.Background(), productKey(id)).Bytes()
	if err == goredis.Nil {
		return 0
	}
	if err != nil {
		t.Fatalf("GET %s: %v", productKey(id), err)
	}
	var v struct {
		Version int `json:"Version"`
	}
	if err := json.Unmarshal(data, &v); err != nil || v.Version == 0 {
		t.Fatalf("cached value %s has no version (err %v)", data, err)
	}
	return v.Version
}

func productKey(id uuid.UUID) string { return "pms:product:{" + id.String() + "}" }

// countingStore counts store reads. blockGet, when set before the test
// starts reading, runs after each read, before Get returns; aroundUpdate,
// when set before the test updates, runs each Update (the nth, counting
// from 1) in place of the wrapped store's, which update calls.
type countingStore struct {
	product.Store
	gets         atomic.Int64
	blockGet     func(p product.Product)
	updates      atomic.Int64
	aroundUpdate func(n int64, update func() (product.Product, error)) (product.Product, error)
}

func (s *countingStore) Update(ctx context.Context, id uuid.UUID, change func(*product.Product) ([]message.Message, error)) (product.Product, error) {
	update := func() (product.Product, error) { return s.Store.Update(ctx, id, change) }
	if s.aroundUpdate != nil {
		return s.aroundUpdate(s.updates.Add(1), update)
	}
	return update()
}

func (s *countingStore) Get(ctx context.Context, id uuid.UUID) (product.Product, error) {
	s.gets.Add(1)
	p, err := s.Store.Get(ctx, id)
	if s.blockGet != nil {
		s.blockGet(p)
	}
	return p, err
}

// countingKeys counts key lookups and key epoch reads, and can play a store
// that is down (failing at once) or hung (answering only when the caller
// gives up), or one whose epoch alone cannot be read (epochDown).
type countingKeys struct {
	account.Store
	epochs     account.Epochs
	lookups    atomic.Int64
	epochReads atomic.Int64
	outage     atomic.Int32 // storeUp, storeDown or storeHung
	epochDown  atomic.Bool
}

const (
	storeUp = iota
	storeDown
	storeHung
)

func (k *countingKeys) KeyByPrefix(ctx context.Context, prefix string) (account.KeyOwner, error) {
	k.lookups.Add(1)
	switch k.outage.Load() {
	case storeDown:
		return account.KeyOwner{}, fmt.Errorf("look up key: %w", product.ErrUnavailable)
	case storeHung:
		<-ctx.Done()
		return account.KeyOwner{}, fmt.Errorf("look up key: %w: %w", product.ErrUnavailable, ctx.Err())
	}
	return k.Store.KeyByPrefix(ctx, prefix)
}

func (k *countingKeys) KeyEpoch(ctx context.Context) (int64, error) {
	k.epochReads.Add(1)
	switch {
	case k.outage.Load() == storeDown, k.epochDown.Load():
		return 0, fmt.Errorf("read key epoch: %w", product.ErrUnavailable)
	case k.outage.Load() == storeHung:
		<-ctx.Done()
		return 0, fmt.Errorf("read key epoch: %w: %w", product.ErrUnavailable, ctx.Err())
	}
	return k.epochs.KeyEpoch(ctx)
}

// syncBuffer collects log lines from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Count(b.buf.Bytes(), []byte(s))
}

// eventually polls cond every 20ms until it holds or d passes.
func eventually(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}
