package store_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// migrateTo applies the embedded migrations before the one named stop, as
// Up would, to an empty database, and returns the rest.
func migrateTo(t *testing.T, pool *pgxpool.Pool, stop string) []store.Migration {
	t.Helper()
	all, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	at := slices.IndexFunc(all, func(m store.Migration) bool { return m.Name == stop })
	if at < 0 {
		t.Fatalf("no migration %s", stop)
	}
	if _, err := pool.Exec(t.Context(), `CREATE SCHEMA tasker; CREATE TABLE tasker.schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
		duration_ms bigint NOT NULL DEFAULT 0, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for _, m := range all[:at] {
		if _, err := pool.Exec(t.Context(), m.SQL); err != nil {
			t.Fatalf("%s: %v", m.ID(), err)
		}
		if _, err := pool.Exec(t.Context(), `INSERT INTO tasker.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`, m.Version, m.Name, m.Checksum); err != nil {
			t.Fatal(err)
		}
	}
	return all[at:]
}

// legacyDiamond creates A -> (B, C) -> D in namespace ns as the schema
// before migration 0011 stored it (transitive ancestors on each step, the
// creation moves written by triggers), in SQL of that schema, and returns
// the task and its step uuids in order A, B, C, D.
func legacyDiamond(t *testing.T, pool *pgxpool.Pool, ns string, now time.Time) (uuid.UUID, []uuid.UUID) {
	t.Helper()
	task := uuid.Must(uuid.NewV7())
	s := []uuid.UUID{uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO tasker.namespaces (name) VALUES ($1) ON CONFLICT DO NOTHING`, []any{ns}},
		{`INSERT INTO tasker.templates (namespace, name, version, definition) VALUES ($1, 'diamond', '1.0.0', '{}') ON CONFLICT DO NOTHING`, []any{ns}},
		{`INSERT INTO tasker.tasks (task_uuid, template_id, namespace, template_name, template_version, correlation_id, state, steps_total, created_at, updated_at)
		  SELECT $1, template_id, $2, 'diamond', '1.0.0', gen_random_uuid(), 'steps_in_process', 4, $3, $3
		  FROM tasker.templates WHERE namespace = $2 AND name = 'diamond'`, []any{task, ns, now}},
		{`INSERT INTO tasker.steps (step_uuid, task_uuid, namespace, name, template_step_name, handler, state, pending_parents, ancestors, max_attempts, run_at, created_at, updated_at)
		  VALUES ($1, $5, $6, 'a', 'a', 'h.a', 'enqueued', 0, '{}', 2, $7, $7, $7),
		         ($2, $5, $6, 'b', 'b', 'h.b', 'pending', 1, ARRAY[$1]::uuid[], 2, $7, $7, $7),
		         ($3, $5, $6, 'c', 'c', 'h.c', 'pending', 1, ARRAY[$1]::uuid[], 2, $7, $7, $7),
		         ($4, $5, $6, 'd', 'd', 'h.d', 'pending', 2, ARRAY[$1, $2, $3]::uuid[], 2, $7, $7, $7)`,
			[]any{s[0], s[1], s[2], s[3], task, ns, now}},
		{`INSERT INTO tasker.step_edges (task_uuid, from_step, to_step) VALUES ($1, $2, $3), ($1, $2, $4), ($1, $3, $5), ($1, $4, $5)`,
			[]any{task, s[0], s[1], s[2], s[3]}},
	} {
		if _, err := pool.Exec(t.Context(), q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	return task, s
}

// TestMigrateHistoryColumnsWithData upgrades a database holding tasks in
// every state, a step mid-flight included, across migration 0011 (history
// in columns, ancestors from edges), and checks that every task's history
// is what it was, and that work in flight finishes with a whole history.
func TestMigrateHistoryColumnsWithData(t *testing.T) {
	ctx := t.Context()
	pool := openPool(t, pgtest.EmptyURL(t))
	migrateTo(t, pool, "history_columns")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return now.Add(time.Duration(m) * time.Minute) }
	claim := func(w string, m int) store.ClaimedStep {
		t.Helper()
		cs, err := store.Claim(ctx, pool, store.ClaimParams{WorkerID: w, Namespaces: []string{"old"}, Limit: 1, Now: at(m), LeaseFor: time.Minute})
		if err != nil || len(cs) != 1 {
			t.Fatalf("claim at +%dm: %v, %v", m, cs, err)
		}
		return cs[0]
	}
	complete := func(w string, m int, c store.ClaimedStep, state contracts.StepState) {
		t.Helper()
		comp := completionOf(c, state)
		comp.RunAt = at(m)
		if r, err := store.Complete(ctx, pool, w, at(m), []store.Completion{comp}); err != nil || r.Applied[c.StepUUID] != state {
			t.Fatalf("completing %s as %s: %+v, %v", c.Name, state, r, err)
		}
	}

	// Before the upgrade, with the old schema and the old statements' SQL:
	// done is finished, failing is blocked by a dead letter, cancelled is
	// cancelled, flight has a running and b waiting for its retry.
	done, _ := legacyDiamond(t, pool, "old", now)
	failing, fs := legacyDiamond(t, pool, "old", now)
	cancelled, _ := legacyDiamond(t, pool, "old", now)
	flight, ls := legacyDiamond(t, pool, "old", now)
	legacy := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	finish := func(step uuid.UUID, state string) {
		legacy(`UPDATE tasker.steps SET state = 'in_progress', attempts = attempts + 1, lease_owner = 'old', lease_expires_at = $2 WHERE step_uuid = $1`, step, at(1))
		legacy(`UPDATE tasker.steps SET state = $2, lease_owner = NULL, lease_expires_at = NULL, completed_at = $3 WHERE step_uuid = $1`, step, state, at(1))
	}
	legacy(`UPDATE tasker.steps SET state = 'enqueued', pending_parents = 0 WHERE task_uuid = $1 AND state = 'pending'`, done)
	legacy(`UPDATE tasker.steps SET state = 'in_progress', attempts = 1, lease_owner = 'old', lease_expires_at = $2 WHERE task_uuid = $1`, done, at(1))
	legacy(`UPDATE tasker.steps SET state = 'complete', lease_owner = NULL, lease_expires_at = NULL, completed_at = $2, results = '{"ok":true}' WHERE task_uuid = $1`, done, at(1))
	legacy(`UPDATE tasker.tasks SET state = 'complete', steps_done = 4, completed_at = $2 WHERE task_uuid = $1`, done, at(1))
	finish(fs[0], "error")
	legacy(`UPDATE tasker.tasks SET state = 'blocked_by_failures' WHERE task_uuid = $1`, failing)
	legacy(`UPDATE tasker.steps SET state = 'cancelled' WHERE task_uuid = $1`, cancelled)
	legacy(`UPDATE tasker.tasks SET state = 'cancelled' WHERE task_uuid = $1`, cancelled)
	finish(ls[0], "complete")
	legacy(`UPDATE tasker.tasks SET steps_done = 1 WHERE task_uuid = $1`, flight)
	legacy(`UPDATE tasker.steps SET state = 'enqueued', pending_parents = 0 WHERE step_uuid IN ($1, $2)`, ls[1], ls[2])
	legacy(`UPDATE tasker.steps SET state = 'in_progress', attempts = 1, lease_owner = 'old', lease_expires_at = $2 WHERE step_uuid = $1`, ls[1], at(10))
	legacy(`UPDATE tasker.steps SET state = 'in_progress', attempts = 1, lease_owner = 'old', lease_expires_at = $2 WHERE step_uuid = $1`, ls[2], at(10))
	legacy(`UPDATE tasker.steps SET state = 'waiting_for_retry', lease_owner = NULL, lease_expires_at = NULL, run_at = $2 WHERE step_uuid = $1`, ls[2], at(3))
	legacy(`UPDATE tasker.steps SET pending_parents = 2 WHERE step_uuid = $1`, ls[3])

	before := map[uuid.UUID][]string{}
	for _, id := range []uuid.UUID{done, failing, cancelled, flight} {
		before[id] = legacyHistoryOf(t, pool, id)
	}
	if _, err := store.NewMigrator(pool).Up(ctx); err != nil {
		t.Fatal(err)
	}
	for id, want := range before {
		if got := historyOf(t, pool, id); !slices.Equal(got, want) {
			t.Errorf("history of %s after the upgrade:\n got %q\nwant %q", id, got, want)
		}
	}

	// The flight finishes under the new schema: b (its old claim lost:
	// rescued), c (its retry due), then d, which gets every ancestor's
	// result through the edges.
	b := claim("w1", 12)
	if b.StepUUID != ls[1] || !b.Rescued {
		t.Fatalf("first claim after the upgrade = %s rescued %v, want b rescued", b.Name, b.Rescued)
	}
	complete("w1", 12, b, contracts.StepStateComplete)
	c := claim("w1", 13)
	if c.StepUUID != ls[2] || c.Attempt != 2 {
		t.Fatalf("second claim = %s attempt %d, want c attempt 2", c.Name, c.Attempt)
	}
	complete("w1", 13, c, contracts.StepStateComplete)
	d := claim("w1", 14)
	if d.StepUUID != ls[3] || len(d.DependencyResults) != 3 {
		t.Fatalf("third claim = %s with results of %v, want d with a, b and c's", d.Name, d.DependencyResults)
	}
	complete("w1", 14, d, contracts.StepStateComplete)
	got := historyOf(t, pool, flight)
	want := append(slices.Clone(before[flight]),
		"b in_progress>in_progress@2:w1", "b in_progress>complete@2:w1",
		"c waiting_for_retry>enqueued@1:w1", "c enqueued>in_progress@2:w1", "c in_progress>complete@2:w1",
		"d pending>enqueued@0:", "d enqueued>in_progress@1:w1", "d in_progress>complete@1:w1",
		"task steps_in_process>complete@0:")
	slices.SortStableFunc(want, byEntity)
	if !slices.Equal(got, want) {
		t.Errorf("history of the flight after it finished:\n got %q\nwant %q", got, want)
	}
}

// historyOf renders a task's history (store.ListTaskTransitions) as
// "name from>to@attempt:worker", steps named by their name, grouped by step
// (the task first), each in its order.
func historyOf(t *testing.T, pool *pgxpool.Pool, task uuid.UUID) []string {
	t.Helper()
	steps, err := store.ListTaskSteps(t.Context(), pool, task)
	if err != nil {
		t.Fatal(err)
	}
	names := map[uuid.UUID]string{}
	for _, s := range steps {
		names[s.StepUUID] = s.Name
	}
	trs, err := store.ListTaskTransitions(t.Context(), pool, task)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(trs))
	for i, tr := range trs {
		who := "task"
		if tr.StepUUID.Valid {
			who = names[tr.StepUUID.UUID]
		}
		out[i] = fmt.Sprintf("%s %s>%s@%d:%s", who, tr.FromState, tr.ToState, tr.Attempt, tr.WorkerID)
	}
	slices.SortStableFunc(out, byEntity)
	return out
}

// legacyHistoryOf is historyOf for the schema before migration 0011, read
// from the transition tables.
func legacyHistoryOf(t *testing.T, pool *pgxpool.Pool, task uuid.UUID) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
		SELECT m FROM (
			SELECT '' AS who, id, 'task ' || coalesce(from_state, '') || '>' || to_state || '@0:' || coalesce(worker_id, '') AS m
			FROM tasker.task_transitions WHERE task_uuid = $1
			UNION ALL
			SELECT s.name, r.id, s.name || ' ' || coalesce(r.from_state, '') || '>' || r.to_state || '@' || r.attempt || ':' || coalesce(r.worker_id, '')
			FROM tasker.step_transitions r JOIN tasker.steps s USING (step_uuid) WHERE s.task_uuid = $1
		) h ORDER BY who, id`, task)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// byEntity orders rendered moves by what moved: the task first, then steps
// by name.
func byEntity(a, b string) int {
	ea, _, _ := strings.Cut(a, " ")
	eb, _, _ := strings.Cut(b, " ")
	if ea == eb {
		return 0
	}
	if ea == "task" {
		return -1
	}
	if eb == "task" {
		return 1
	}
	return strings.Compare(ea, eb)
}
