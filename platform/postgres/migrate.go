package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/pms-dev/pms/sql/migrations"
)

// ErrSchemaBehind is returned by CheckSchema when migrations are pending.
var ErrSchemaBehind = errors.New("database schema is behind: run `pms migrate up`")

// Migration is the state of one schema migration.
type Migration struct {
	Version int64
	Name    string
	Applied bool
}

// Migrator applies the embedded migrations under a PostgreSQL advisory lock,
// one transaction each, in order.
type Migrator struct {
	provider *goose.Provider
}

// Migrator returns a Migrator for the database.
func (d *DB) Migrator() (*Migrator, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("make migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, d.db.DB, migrations.FS, goose.WithSessionLocker(locker))
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	// The provider is not closed: its Close would close the shared pool.
	return &Migrator{provider: p}, nil
}

// Up applies every pending migration, calling progress after each one.
func (m *Migrator) Up(ctx context.Context, progress func(Migration)) error {
	pending, err := m.pending(ctx)
	if err != nil {
		return err
	}
	for range pending {
		res, err := m.provider.UpByOne(ctx)
		if err != nil {
			return translate(fmt.Errorf("apply migration: %w", err))
		}
		progress(Migration{Version: res.Source.Version, Name: res.Source.Path, Applied: true})
	}
	return nil
}

// Down rolls back the latest applied migration and returns it.
func (m *Migrator) Down(ctx context.Context) (Migration, error) {
	res, err := m.provider.Down(ctx)
	if err != nil {
		return Migration{}, translate(fmt.Errorf("roll back migration: %w", err))
	}
	return Migration{Version: res.Source.Version, Name: res.Source.Path}, nil
}

// Status lists every migration and whether it is applied.
func (m *Migrator) Status(ctx context.Context) ([]Migration, error) {
	st, err := m.provider.Status(ctx)
	if err != nil {
		return nil, translate(fmt.Errorf("read migration status: %w", err))
	}
	out := make([]Migration, len(st))
	for i, s := range st {
		out[i] = Migration{Version: s.Source.Version, Name: s.Source.Path, Applied: s.State == goose.StateApplied}
	}
	return out, nil
}

func (m *Migrator) pending(ctx context.Context) ([]Migration, error) {
	all, err := m.Status(ctx)
	if err != nil {
		return nil, err
	}
	var pending []Migration
	for _, s := range all {
		if !s.Applied {
			pending = append(pending, s)
		}
	}
	return pending, nil
}

// CheckSchema returns ErrSchemaBehind when a migration is pending.
func (m *Migrator) CheckSchema(ctx context.Context) error {
	behind, err := m.provider.HasPending(ctx)
	if err != nil {
		return translate(fmt.Errorf("check schema version: %w", err))
	}
	if behind {
		return ErrSchemaBehind
	}
	return nil
}
