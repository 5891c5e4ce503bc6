package store_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

func openPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := store.NewPool(t.Context(), store.PoolConfig{URL: url, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestMigrateUpTwice(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := openPool(t, pgtest.EmptyURL(t))
	all, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}

	m := store.NewMigrator(pool)
	status, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range status {
		if s.AppliedAt != nil {
			t.Fatalf("fresh database: migration %d reported applied", s.Version)
		}
	}
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regnamespace('tasker') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Fatalf("status must not create the schema: exists=%v err=%v", exists, err)
	}

	applied, err := m.Up(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(all) {
		t.Fatalf("first Up applied %d migrations, want %d", len(applied), len(all))
	}
	applied, err = m.Up(ctx)
	if err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if len(applied) != 0 {
		t.Fatalf("second Up applied %d migrations, want 0", len(applied))
	}
	status, err = m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range status {
		if s.AppliedAt == nil || s.Modified {
			t.Fatalf("after Up: %+v", s)
		}
	}
	assertMigrationRows(t, pool, len(all))
}

func assertMigrationRows(t *testing.T, pool *pgxpool.Pool, want int) {
	t.Helper()
	var n, distinct int
	if err := pool.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT version) FROM tasker.schema_migrations`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != want || distinct != want {
		t.Fatalf("schema_migrations has %d rows (%d distinct), want %d", n, distinct, want)
	}
}

// Two OS processes migrate one empty database at the same moment: both
// succeed, and every migration is applied exactly once.
func TestMigrateConcurrentProcesses(t *testing.T) {
	t.Parallel()
	url := pgtest.EmptyURL(t)
	const procs = 2
	var (
		wg   sync.WaitGroup
		outs [procs]string
		errs [procs]error
	)
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envMigrateURL+"="+url)
			out, err := cmd.CombinedOutput()
			outs[i], errs[i] = string(out), err
		}()
	}
	wg.Wait()
	all, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i := range procs {
		if errs[i] != nil {
			t.Fatalf("process %d: %v\n%s", i, errs[i], outs[i])
		}
		switch {
		case strings.Contains(outs[i], "applied=0"):
		case strings.Contains(outs[i], "applied="):
			total++
		default:
			t.Fatalf("process %d printed %q", i, outs[i])
		}
	}
	if total != 1 {
		t.Fatalf("%d processes applied migrations, want exactly 1: %q", total, outs)
	}
	assertMigrationRows(t, openPool(t, url), len(all))
}

func TestMigrateRefusesModifiedAndUnknown(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := openPool(t, pgtest.EmptyURL(t))
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}

	if _, err := pool.Exec(ctx, `UPDATE tasker.schema_migrations SET checksum = 'x' WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	_, err := store.NewMigrator(pool).Up(ctx)
	if err == nil || !strings.Contains(err.Error(), "0001_initial was changed after it was applied") {
		t.Fatalf("Up with a modified migration: err = %v", err)
	}
	status, err := store.NewMigrator(pool).Status(ctx)
	if err != nil || !status[0].Modified {
		t.Fatalf("Status: modified=%v err=%v", status[0].Modified, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE tasker.schema_migrations SET checksum = $1 WHERE version = 1`, status[0].Checksum); err != nil {
		t.Fatal(err)
	}

	if _, err := pool.Exec(ctx, `INSERT INTO tasker.schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')`); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(context.Context) error{
		"Up":     func(ctx context.Context) error { _, err := store.NewMigrator(pool).Up(ctx); return err },
		"Status": func(ctx context.Context) error { _, err := store.NewMigrator(pool).Status(ctx); return err },
	} {
		if err := f(ctx); !errors.Is(err, store.ErrUnknownMigrations) || !strings.Contains(err.Error(), "[9999]") {
			t.Fatalf("%s with an unknown applied migration: err = %v", name, err)
		}
	}
}

// A database that applied a migration file as it was before a comment in
// it was reworded (its checksum is among the migration's Superseded) has
// that migration: Up goes on and Status does not call it modified.
func TestMigrateAcceptsSupersededChecksums(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := openPool(t, pgtest.EmptyURL(t))
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	all, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var reworded []store.Migration
	for _, m := range all {
		if len(m.Superseded) > 0 {
			reworded = append(reworded, m)
		}
	}
	if len(reworded) == 0 {
		t.Fatal("no migration has a superseded checksum: nothing to test")
	}
	for _, m := range reworded {
		if slices.Contains(m.Superseded, m.Checksum) {
			t.Errorf("%s: its own checksum is listed as superseded", m.ID())
		}
		if _, err := pool.Exec(ctx, `UPDATE tasker.schema_migrations SET checksum = $1 WHERE version = $2`, m.Superseded[0], m.Version); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.NewMigrator(pool).Up(ctx); err != nil {
		t.Fatalf("Up with superseded checksums applied: %v", err)
	}
	status, err := store.NewMigrator(pool).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range status {
		if s.Modified || s.AppliedAt == nil {
			t.Errorf("%s: modified %v, applied %v", s.ID(), s.Modified, s.AppliedAt)
		}
	}
}

// The check constraints reject state names outside the step and task states the README lists.
func TestSchemaRejectsUnknownStates(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	mustExec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	mustExec(`INSERT INTO tasker.namespaces (name) VALUES ('default')`)
	mustExec(`INSERT INTO tasker.templates (namespace, name, version, definition) VALUES ('default', 't', '1.0.0', '{}')`)
	mustExec(`INSERT INTO tasker.tasks (task_uuid, template_id, namespace, template_name, template_version, correlation_id, created_state)
	          SELECT '00000000-0000-7000-8000-000000000001', template_id, 'default', 't', '1.0.0', gen_random_uuid(), 'pending' FROM tasker.templates`)
	mustExec(`INSERT INTO tasker.steps (step_uuid, task_uuid, namespace, name, template_step_name, handler, created_state)
	          VALUES ('00000000-0000-7000-8000-000000000002', '00000000-0000-7000-8000-000000000001', 'default', 'a', 'a', 'h', 'pending')`)

	for _, tc := range []struct{ sql, constraint string }{
		{`UPDATE tasker.tasks SET state = 'running'`, "tasks_state_valid"},
		{`UPDATE tasker.steps SET state = 'done'`, "steps_state_valid"},
		{`UPDATE tasker.steps SET type = 'magic'`, "steps_type_valid"},
		{`UPDATE tasker.steps SET state = 'in_progress'`, "steps_lease_consistent"},
		{`INSERT INTO tasker.step_transitions (step_uuid, task_uuid, to_state) VALUES ('00000000-0000-7000-8000-000000000002', '00000000-0000-7000-8000-000000000001', 'finished')`, "step_transitions_to_valid"},
		{`INSERT INTO tasker.handler_endpoints (pattern, protocol) VALUES ('x', 'smtp')`, "handler_endpoints_protocol_valid"},
		{`INSERT INTO tasker.namespaces (name) VALUES ('Bad Name')`, "namespaces_name_format"},
	} {
		_, err := pool.Exec(ctx, tc.sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23514" || pgErr.ConstraintName != tc.constraint {
			t.Errorf("%s: err = %v, want check violation of %s", tc.sql, err, tc.constraint)
		}
	}
}
