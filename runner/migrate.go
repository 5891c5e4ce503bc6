package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// Migration is one numbered schema change this binary embeds.
type Migration struct {
	Version  int    // from 1, in the order they apply
	Name     string // e.g. "initial"
	Checksum string // hex SHA-256 of its SQL: an applied one must never change
}

// ID names the migration as its file does: "0001_initial".
func (m Migration) ID() string { return fmt.Sprintf("%04d_%s", m.Version, m.Name) }

// MigrationStatus is a [Migration] with what the database says about it.
type MigrationStatus struct {
	Migration
	// AppliedAt is nil while the migration is pending.
	AppliedAt *time.Time
	// Modified reports that the database applied a different text of it
	// (its checksum differs): [Migrate] refuses to run until the original
	// file is back.
	Modified bool
}

// ErrUnknownMigrations is returned (wrapped) by [Migrate] and [Migrations]
// when the database has applied migrations this binary does not embed: a
// newer release migrated it. Migrations keep older releases working during
// a rolling upgrade, so a program may only warn about it.
var ErrUnknownMigrations = store.ErrUnknownMigrations

// Migrate applies every pending migration, each in its own transaction, and
// returns the ones it applied. Concurrent callers (several processes
// starting at once) wait for each other under an advisory lock and find
// nothing left to do. It refuses to run when an applied migration was
// modified or the schema is newer than this binary ([ErrUnknownMigrations]).
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]Migration, error) {
	applied, err := store.NewMigrator(pool).Up(ctx)
	out := make([]Migration, 0, len(applied))
	for _, m := range applied {
		out = append(out, migration(m))
	}
	return out, err
}

// Migrations returns every migration this binary embeds, in order, with
// whether the database applied it. With [ErrUnknownMigrations] it still
// returns the embedded ones.
func Migrations(ctx context.Context, pool *pgxpool.Pool) ([]MigrationStatus, error) {
	status, err := store.NewMigrator(pool).Status(ctx)
	out := make([]MigrationStatus, 0, len(status))
	for _, s := range status {
		out = append(out, MigrationStatus{Migration: migration(s.Migration), AppliedAt: s.AppliedAt, Modified: s.Modified})
	}
	return out, err
}

func migration(m store.Migration) Migration {
	return Migration{Version: m.Version, Name: m.Name, Checksum: m.Checksum}
}

// EmbeddedMigrations returns every migration this binary embeds, in order,
// without asking a database.
func EmbeddedMigrations() ([]Migration, error) {
	ms, err := store.Migrations()
	out := make([]Migration, 0, len(ms))
	for _, m := range ms {
		out = append(out, migration(m))
	}
	return out, err
}
