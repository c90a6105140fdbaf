package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
)

// TestMigrator runs the migrations down and up on a database of its own:
// the schema check refuses a database that is behind, naming the command.
func TestMigrator(t *testing.T) {
	db, err := postgres.Open(postgrestest.Config(t, postgrestest.Empty(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, err := db.Migrator()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	if err := m.CheckSchema(ctx); !errors.Is(err, postgres.ErrSchemaBehind) {
		t.Errorf("CheckSchema on an empty database = %v, want ErrSchemaBehind", err)
	}
	var applied []int64
	if err := m.Up(ctx, func(mg postgres.Migration) { applied = append(applied, mg.Version) }); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if len(applied) < 5 || applied[0] != 1 {
		t.Errorf("Up applied %v, want every migration from 1 in order", applied)
	}
	if err := m.CheckSchema(ctx); err != nil {
		t.Errorf("CheckSchema after Up = %v, want nil", err)
	}
	down, err := m.Down(ctx)
	if err != nil || down.Version != applied[len(applied)-1] {
		t.Fatalf("Down = %+v, %v; want the latest migration rolled back", down, err)
	}
	if err := m.CheckSchema(ctx); !errors.Is(err, postgres.ErrSchemaBehind) {
		t.Errorf("CheckSchema after Down = %v, want ErrSchemaBehind", err)
	}
	status, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last := status[len(status)-1]; last.Applied || !status[0].Applied {
		t.Errorf("Status = %+v, want all applied but the last", status)
	}
	if err := m.Up(ctx, func(postgres.Migration) {}); err != nil {
		t.Fatalf("Up again: %v", err)
	}
	if err := m.CheckSchema(ctx); err != nil {
		t.Errorf("CheckSchema after Up again = %v", err)
	}
}
