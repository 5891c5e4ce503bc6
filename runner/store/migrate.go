package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema is the PostgreSQL schema that holds every tasker-runner table.
const Schema = "tasker"

// migrateLockKey is the advisory lock taken while migrating. The value is
// arbitrary but fixed forever: every version of the runner must agree on it.
const migrateLockKey int64 = 0x7461736b6572 // "tasker"

//go:embed migrations/*.sql
var migrationFS embed.FS

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Migration is one numbered schema change embedded in the binary.
type Migration struct {
	Version  int    // from the file name prefix, starting at 1
	Name     string // from the file name, e.g. "initial"
	SQL      string
	Checksum string // hex SHA-256 of SQL; an applied migration must never change
	// Superseded lists the checksums of earlier texts of the file that
	// differ from SQL in comments only: a database that applied one of
	// them has this migration.
	Superseded []string
}

// supersededChecksums are, by version, the checksums of migration files as
// released before a comment in them was reworded (no statement changed).
// Add an entry, never remove one, when a comment of a released migration
// must change.
var supersededChecksums = map[int][]string{
	// Comments cited a design document that is not in the repository.
	1: {"e0e2bc67c2f5a80587b7807b6d6c8f072635cbd99997109901eef92229096439"},
	8: {"0bc7c42e75b137989ca37ad1f0d1fdc9226aefac4fc08feeac1cf4b41c5e0e53"},
}

// ID names the migration as its file does, without ".sql": "0001_initial".
func (m Migration) ID() string { return fmt.Sprintf("%04d_%s", m.Version, m.Name) }

// MigrationStatus is a [Migration] with what the database says about it.
type MigrationStatus struct {
	Migration
	// AppliedAt is nil when the migration is pending.
	AppliedAt *time.Time
	// Modified reports that the applied checksum differs from the embedded one.
	Modified bool
}

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	return loadMigrations(migrationFS, "migrations")
}

func loadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("store: reading migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("store: migration file %q: name must look like 0001_some_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("store: reading migration %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(body)
		out = append(out, Migration{Version: v, Name: m[2], SQL: string(body), Checksum: hex.EncodeToString(sum[:]),
			Superseded: supersededChecksums[v]})
	}
	slices.SortFunc(out, func(a, b Migration) int { return cmp.Compare(a.Version, b.Version) })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("store: migrations must be numbered 1..n without gaps or duplicates; found %s at position %d", m.ID(), i+1)
		}
	}
	return out, nil
}

// Migrate applies every pending migration. It is what the runner calls at
// start when asked to; see [Migrator] for more control.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := NewMigrator(pool).Up(ctx)
	return err
}

// Migrator applies and reports the embedded migrations.
type Migrator struct {
	pool       *pgxpool.Pool
	migrations []Migration
	err        error
}

// NewMigrator returns a [Migrator] for the embedded migrations.
func NewMigrator(pool *pgxpool.Pool) *Migrator {
	ms, err := Migrations()
	return &Migrator{pool: pool, migrations: ms, err: err}
}

// Up applies every pending migration, each in its own transaction, and
// returns the ones it applied. It holds a session advisory lock for the whole
// run, so concurrent callers wait and then find nothing left to do. It
// refuses to run when an applied migration was modified or when the database
// has migrations this binary does not know (it is older than the schema).
func (m *Migrator) Up(ctx context.Context) ([]Migration, error) {
	if m.err != nil {
		return nil, m.err
	}
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migrate: acquiring a connection: %w", err)
	}
	defer conn.Release()

	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		return nil, fmt.Errorf("store: migrate: taking the migration lock: %w", err)
	}
	defer func() {
		// A fresh context: the caller's may be done, and the lock must not
		// outlive this call on a pooled connection.
		unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(unlockCtx, "SELECT pg_advisory_unlock($1)", migrateLockKey); err != nil {
			// Closing the connection releases the lock for sure.
			_ = conn.Conn().Close(unlockCtx)
		}
	}()

	if _, err := conn.Exec(ctx, bootstrapSQL); err != nil {
		return nil, fmt.Errorf("store: migrate: creating schema %s: %w", Schema, err)
	}
	status, err := m.status(ctx, conn.Conn())
	if err != nil {
		return nil, err
	}
	var applied []Migration
	for _, s := range status {
		if s.Modified {
			return applied, fmt.Errorf("store: migrate: migration %s was changed after it was applied (checksum differs); restore the original file", s.ID())
		}
		if s.AppliedAt != nil {
			continue
		}
		start := time.Now()
		err := pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, s.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx,
				`INSERT INTO tasker.schema_migrations (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)`,
				s.Version, s.Name, s.Checksum, time.Since(start).Milliseconds())
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("store: migrate: applying %s: %w", s.ID(), err)
		}
		applied = append(applied, s.Migration)
	}
	return applied, nil
}

// Status reports every embedded migration and whether it is applied. It
// fails when the database holds migrations newer than this binary knows.
func (m *Migrator) Status(ctx context.Context) ([]MigrationStatus, error) {
	if m.err != nil {
		return nil, m.err
	}
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migration status: acquiring a connection: %w", err)
	}
	defer conn.Release()
	return m.status(ctx, conn.Conn())
}

// ErrUnknownMigrations is returned (wrapped) when the database has applied
// migrations that this binary does not embed: it is older than the schema.
var ErrUnknownMigrations = errors.New("database schema is newer than this binary")

func (m *Migrator) status(ctx context.Context, conn *pgx.Conn) ([]MigrationStatus, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('tasker.schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("store: reading migration status: %w", err)
	}
	type row struct {
		checksum  string
		appliedAt time.Time
	}
	applied := map[int]row{}
	if exists {
		rows, err := conn.Query(ctx, `SELECT version, checksum, applied_at FROM tasker.schema_migrations ORDER BY version`)
		if err != nil {
			return nil, fmt.Errorf("store: reading migration status: %w", err)
		}
		for rows.Next() {
			var v int
			var r row
			if err := rows.Scan(&v, &r.checksum, &r.appliedAt); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: reading migration status: %w", err)
			}
			applied[v] = r
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: reading migration status: %w", err)
		}
	}
	out := make([]MigrationStatus, 0, len(m.migrations))
	for _, mg := range m.migrations {
		s := MigrationStatus{Migration: mg}
		if r, ok := applied[mg.Version]; ok {
			at := r.appliedAt
			s.AppliedAt = &at
			s.Modified = r.checksum != mg.Checksum && !slices.Contains(mg.Superseded, r.checksum)
			delete(applied, mg.Version)
		}
		out = append(out, s)
	}
	if len(applied) > 0 {
		var unknown []int
		for v := range applied {
			unknown = append(unknown, v)
		}
		slices.Sort(unknown)
		return out, fmt.Errorf("store: the database has applied migrations %v that this binary (which knows up to %d) does not: %w",
			unknown, len(m.migrations), ErrUnknownMigrations)
	}
	return out, nil
}

// bootstrapSQL creates what the migrations themselves are recorded in. It runs
// under the advisory lock, so IF NOT EXISTS never races.
const bootstrapSQL = `
CREATE SCHEMA IF NOT EXISTS tasker;
CREATE TABLE IF NOT EXISTS tasker.schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    duration_ms bigint      NOT NULL DEFAULT 0,
    applied_at  timestamptz NOT NULL DEFAULT now()
);`
