package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/pms-dev/pms/product/account"
)

// AccountStore keeps users and their API keys. It is an account.Store.
type AccountStore struct {
	db *DB
}

// NewAccountStore returns an AccountStore on db.
func NewAccountStore(db *DB) *AccountStore { return &AccountStore{db: db} }

var (
	_ account.Store  = (*AccountStore)(nil)
	_ account.Epochs = (*AccountStore)(nil)
)

type keyRow struct {
	ID         uuid.UUID    `db:"id"`
	UserID     uuid.UUID    `db:"user_id"`
	Prefix     string       `db:"prefix"`
	Hash       []byte       `db:"hash"`
	CreatedAt  time.Time    `db:"created_at"`
	LastUsedAt sql.NullTime `db:"last_used_at"`
	RevokedAt  sql.NullTime `db:"revoked_at"`
}

func (r keyRow) toKey() account.APIKey {
	return account.APIKey{ID: r.ID, UserID: r.UserID, Prefix: r.Prefix, Hash: r.Hash, CreatedAt: r.CreatedAt.UTC(),
		LastUsedAt: r.LastUsedAt.Time.UTC(), RevokedAt: r.RevokedAt.Time.UTC()}
}

type userRow struct {
	ID        uuid.UUID `db:"id"`
	Email     string    `db:"email"`
	Name      string    `db:"name"`
	Admin     bool      `db:"is_admin"`
	CreatedAt time.Time `db:"created_at"`
}

func (r userRow) toUser() account.User {
	return account.User{ID: r.ID, Email: r.Email, Name: r.Name, Admin: r.Admin, CreatedAt: r.CreatedAt.UTC()}
}

const insertUser = `INSERT INTO users (id, email, name, is_admin, created_at) VALUES ($1, $2, $3, $4, $5)`

// CreateUser stores a new user, or returns account.ErrEmailTaken when
// another user has the email, in any case.
func (s *AccountStore) CreateUser(ctx context.Context, u account.User) error {
	if _, err := s.db.db.ExecContext(ctx, insertUser, u.ID, u.Email, u.Name, u.Admin, u.CreatedAt); err != nil {
		return translate(fmt.Errorf("insert user: %w", err))
	}
	return nil
}

const insertKey = `INSERT INTO api_keys (id, user_id, prefix, hash, created_at) VALUES ($1, $2, $3, $4, $5)`

// CreateKey stores a new key.
func (s *AccountStore) CreateKey(ctx context.Context, k account.APIKey) error {
	if _, err := s.db.db.ExecContext(ctx, insertKey, k.ID, k.UserID, k.Prefix, k.Hash, k.CreatedAt); err != nil {
		return translate(fmt.Errorf("insert api key: %w", err))
	}
	return nil
}

const selectKeyOwner = `
SELECT k.id, k.user_id, k.prefix, k.hash, k.created_at, k.last_used_at, k.revoked_at,
       u.email, u.name, u.is_admin, u.created_at AS user_created_at
FROM api_keys k JOIN users u ON u.id = k.user_id
WHERE k.prefix = $1`

// KeyByPrefix returns the key with the prefix and its user, or
// account.ErrUnauthenticated. It is a prepared statement: every
// authenticated request that misses the cache runs it.
func (s *AccountStore) KeyByPrefix(ctx context.Context, prefix string) (account.KeyOwner, error) {
	var row struct {
		keyRow
		Email         string    `db:"email"`
		Name          string    `db:"name"`
		Admin         bool      `db:"is_admin"`
		UserCreatedAt time.Time `db:"user_created_at"`
	}
	stmt, err := s.db.prepared(ctx, selectKeyOwner)
	if err != nil {
		return account.KeyOwner{}, translate(fmt.Errorf("prepare api key lookup: %w", err))
	}
	if err := stmt.GetContext(ctx, &row, prefix); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return account.KeyOwner{}, account.ErrUnauthenticated
		}
		return account.KeyOwner{}, translate(fmt.Errorf("select api key: %w", err))
	}
	u := userRow{ID: row.UserID, Email: row.Email, Name: row.Name, Admin: row.Admin, CreatedAt: row.UserCreatedAt}
	return account.KeyOwner{Key: row.toKey(), User: u.toUser()}, nil
}

// touchKeys sets each key's last use unless the row shows a later one
// (another process's): ids and times are parallel arrays.
const touchKeys = `
UPDATE api_keys AS k SET last_used_at = u.at
FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at)
WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)`

// TouchKeys records when keys were last used, in one prepared statement.
func (s *AccountStore) TouchKeys(ctx context.Context, uses []account.KeyUse) error {
	if len(uses) == 0 {
		return nil
	}
	ids, ats := make([]uuid.UUID, len(uses)), make([]string, len(uses))
	for i, u := range uses {
		ids[i], ats[i] = u.ID, u.At.Format(time.RFC3339Nano)
	}
	stmt, err := s.db.prepared(ctx, touchKeys)
	if err != nil {
		return translate(fmt.Errorf("prepare the api key touch: %w", err))
	}
	if _, err := stmt.ExecContext(ctx, uuidArray(ids), pq.Array(ats)); err != nil {
		return translate(fmt.Errorf("touch api keys: %w", err))
	}
	return nil
}

const selectKeys = `
SELECT id, user_id, prefix, hash, created_at, last_used_at, revoked_at
FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id DESC`

// ListKeys returns a user's keys, newest first.
func (s *AccountStore) ListKeys(ctx context.Context, userID uuid.UUID) ([]account.APIKey, error) {
	var rows []keyRow
	if err := s.db.db.SelectContext(ctx, &rows, selectKeys, userID); err != nil {
		return nil, translate(fmt.Errorf("list api keys: %w", err))
	}
	keys := make([]account.APIKey, len(rows))
	for i, r := range rows {
		keys[i] = r.toKey()
	}
	return keys, nil
}

const revokeKey = `
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1
RETURNING id, user_id, prefix, hash, created_at, last_used_at, revoked_at`

// RevokeKey marks a key revoked, or returns account.ErrKeyNotFound. The
// statement moves the key epoch (KeyEpoch) too, through a trigger.
func (s *AccountStore) RevokeKey(ctx context.Context, id uuid.UUID, at time.Time) (account.APIKey, error) {
	var row keyRow
	if err := s.db.db.GetContext(ctx, &row, revokeKey, id, at); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return account.APIKey{}, account.ErrKeyNotFound
		}
		return account.APIKey{}, translate(fmt.Errorf("revoke api key: %w", err))
	}
	return row.toKey(), nil
}

const selectKeyEpoch = `SELECT epoch FROM api_key_epoch`

// KeyEpoch returns the key epoch: a number that moves, in the transaction
// of the change, whenever what KeyByPrefix returns may have changed, last
// use aside (a key revoked, edited or deleted, or its user edited, by pms or
// by hand: triggers move it). It is one prepared read of a one-row table,
// for each process to run about once a second.
func (s *AccountStore) KeyEpoch(ctx context.Context) (int64, error) {
	stmt, err := s.db.prepared(ctx, selectKeyEpoch)
	if err != nil {
		return 0, translate(fmt.Errorf("prepare api key epoch read: %w", err))
	}
	var epoch int64
	if err := stmt.GetContext(ctx, &epoch); err != nil {
		return 0, translate(fmt.Errorf("read api key epoch: %w", err))
	}
	return epoch, nil
}

const (
	selectUser        = `SELECT id, email, name, is_admin, created_at FROM users WHERE id = $1`
	selectUserByEmail = `SELECT id, email, name, is_admin, created_at FROM users WHERE lower(email) = $1`
)

// GetUser returns the user with the id, or account.ErrUserNotFound.
func (s *AccountStore) GetUser(ctx context.Context, id uuid.UUID) (account.User, error) {
	return s.user(ctx, selectUser, id)
}

// UserByEmail returns the user with the email (any case), or account.ErrUserNotFound.
func (s *AccountStore) UserByEmail(ctx context.Context, email string) (account.User, error) {
	return s.user(ctx, selectUserByEmail, strings.ToLower(email))
}

func (s *AccountStore) user(ctx context.Context, query string, arg any) (account.User, error) {
	var row userRow
	if err := s.db.db.GetContext(ctx, &row, query, arg); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return account.User{}, account.ErrUserNotFound
		}
		return account.User{}, translate(fmt.Errorf("select user: %w", err))
	}
	return row.toUser(), nil
}
