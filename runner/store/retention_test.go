package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// retentionTask creates a task at created, with a uuid of that time and
// three steps: a and b ready, c waiting for both (two edges). It returns
// the task and its steps a, b, c.
func retentionTask(t *testing.T, pool *pgxpool.Pool, tpl int64, created time.Time) (uuid.UUID, []uuid.UUID) {
	t.Helper()
	task := pgtest.UUIDv7At(created)
	steps := []uuid.UUID{pgtest.UUIDv7At(created), pgtest.UUIDv7At(created), pgtest.UUIDv7At(created)}
	mk := func(i int, name string, parents []int) store.NewStep {
		return store.NewStep{StepUUID: steps[i], Name: name, TemplateStepName: name, Handler: "h." + name,
			Parents: parents, MaxAttempts: 1}
	}
	if _, err := store.CreateTasks(t.Context(), pool, created, []store.NewTask{{
		TaskUUID: task, TemplateID: tpl, Namespace: "keep", TemplateName: "pair", TemplateVersion: "1",
		CorrelationID: uuid.New(), Steps: []store.NewStep{mk(0, "a", nil), mk(1, "b", nil), mk(2, "c", []int{0, 1})},
	}}); err != nil {
		t.Fatal(err)
	}
	return task, steps
}

func retentionTemplate(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	id, _, err := store.RegisterTemplate(t.Context(), pool, store.Template{Namespace: "keep", Name: "pair", Version: "1", Definition: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// settle moves a task made by retentionTask to state at time at, through
// legal moves only (the transition triggers check them and write history):
//
//   - complete: every step complete, completed_at = at;
//   - resolved_manually: every step and the task resolved by hand, with no
//     completed_at (so its age is measured from updated_at);
//   - blocked_by_failures: a in error, b complete;
//   - blocked_busy: blocked_by_failures too, but b still in_progress;
//   - cancelled: through store.CancelTask;
//   - steps_in_process: left as created.
func settle(t *testing.T, pool *pgxpool.Pool, task uuid.UUID, steps []uuid.UUID, state string, at time.Time) {
	t.Helper()
	ctx := t.Context()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	run := func(step uuid.UUID, to string) { // enqueued -> in_progress -> to
		t.Helper()
		exec(`UPDATE tasker.steps SET state = 'in_progress', attempts = attempts + 1, lease_owner = 'w', lease_expires_at = $2, updated_at = $2
			WHERE step_uuid = $1`, step, at)
		if to != "in_progress" {
			exec(`UPDATE tasker.steps SET state = $2, lease_owner = NULL, lease_expires_at = NULL, updated_at = $3,
				completed_at = CASE WHEN $2 = 'complete' THEN $3::timestamptz END WHERE step_uuid = $1`, step, to, at)
		}
	}
	switch state {
	case "complete":
		run(steps[0], "complete")
		run(steps[1], "complete")
		exec(`UPDATE tasker.steps SET state = 'enqueued', pending_parents = 0 WHERE step_uuid = $1`, steps[2])
		run(steps[2], "complete")
		exec(`UPDATE tasker.tasks SET state = 'complete', steps_done = steps_total, completed_at = $2, updated_at = $2 WHERE task_uuid = $1`, task, at)
	case "resolved_manually":
		exec(`UPDATE tasker.steps SET state = 'resolved_manually', updated_at = $2 WHERE task_uuid = $1`, task, at)
		exec(`UPDATE tasker.tasks SET state = 'resolved_manually', updated_at = $2 WHERE task_uuid = $1`, task, at)
	case "blocked_by_failures", "blocked_busy":
		run(steps[0], "error")
		if state == "blocked_busy" {
			run(steps[1], "in_progress")
		} else {
			run(steps[1], "complete")
		}
		exec(`UPDATE tasker.tasks SET state = 'blocked_by_failures', updated_at = $2 WHERE task_uuid = $1`, task, at)
	case "cancelled":
		if _, err := store.CancelTask(ctx, pool, task, store.Manual{Now: at}); err != nil {
			t.Fatal(err)
		}
	case "steps_in_process":
	default:
		t.Fatalf("settle: unknown state %q", state)
	}
}

// rowsOf counts the rows a task owns in each table.
func rowsOf(t *testing.T, pool *pgxpool.Pool, task uuid.UUID, steps []uuid.UUID) map[string]int {
	t.Helper()
	out := map[string]int{}
	for table, q := range map[string]struct {
		where string
		arg   any
	}{
		"tasks":            {`task_uuid = $1`, task},
		"steps":            {`task_uuid = $1`, task},
		"step_edges":       {`from_step = ANY($1) OR to_step = ANY($1)`, steps},
		"step_transitions": {`step_uuid = ANY($1)`, steps},
		"task_transitions": {`task_uuid = $1`, task},
		// The moves kept in columns (a task's creation and completion) and
		// the rows together: a task that only made happy moves has no
		// task_transitions rows.
		"task_history": {`task_uuid = $1`, task},
	} {
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM tasker.`+table+` WHERE `+q.where, q.arg).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

var (
	retentionNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	day          = 24 * time.Hour
	// The defaults of [worker.retention].
	defaultAges = store.RetentionParams{CompleteAfter: 7 * day, FailedAfter: 30 * day, CancelledAfter: 30 * day}
)

func ago(d time.Duration) time.Time { return retentionNow.Add(-d) }

// deleteAll walks the whole range with p and returns the tasks deleted by
// state, and the number of calls it took.
func deleteAll(t *testing.T, db store.DB, p store.RetentionParams) (map[contracts.TaskState]int, int) {
	t.Helper()
	total := map[contracts.TaskState]int{}
	for calls := 1; ; calls++ {
		res, err := store.DeleteExpiredTasks(t.Context(), db, p)
		if err != nil {
			t.Fatal(err)
		}
		if res.Examined > p.Limit || res.Total() > res.Examined {
			t.Fatalf("call %d examined %d and deleted %d with limit %d", calls, res.Examined, res.Total(), p.Limit)
		}
		for s, n := range res.Deleted {
			total[s] += n
		}
		if res.Done {
			return total, calls
		}
		if res.Next == p.After {
			t.Fatalf("call %d did not move on from %s", calls, p.After)
		}
		p.After = res.Next
		if calls > 1000 {
			t.Fatal("the walk does not end")
		}
	}
}

// Only finished tasks past their state's cutoff go, with their steps, edges
// and history; everything else keeps every row.
func TestRetentionDeletesExpiredTasksOnly(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	tpl := retentionTemplate(t, pool)
	type tc struct {
		name     string
		created  time.Time
		state    string
		at       time.Time
		deleted  bool
		task     uuid.UUID
		steps    []uuid.UUID
		rowsThen map[string]int
	}
	cases := []*tc{
		{name: "complete 8 days ago", created: ago(9 * day), state: "complete", at: ago(8 * day), deleted: true},
		{name: "complete just past 7 days", created: ago(8 * day), state: "complete", at: ago(7*day + time.Second), deleted: true},
		{name: "complete 6 days ago", created: ago(9 * day), state: "complete", at: ago(6 * day)},
		{name: "created 100 days ago, complete yesterday", created: ago(100 * day), state: "complete", at: ago(day)},
		{name: "resolved by hand 8 days ago", created: ago(9 * day), state: "resolved_manually", at: ago(8 * day), deleted: true},
		{name: "resolved by hand 6 days ago", created: ago(9 * day), state: "resolved_manually", at: ago(6 * day)},
		{name: "blocked since 31 days", created: ago(40 * day), state: "blocked_by_failures", at: ago(31 * day), deleted: true},
		{name: "blocked since 29 days", created: ago(40 * day), state: "blocked_by_failures", at: ago(29 * day)},
		{name: "blocked since 31 days, a step still running", created: ago(40 * day), state: "blocked_busy", at: ago(31 * day)},
		{name: "cancelled 31 days ago", created: ago(40 * day), state: "cancelled", at: ago(31 * day), deleted: true},
		{name: "cancelled 29 days ago", created: ago(40 * day), state: "cancelled", at: ago(29 * day)},
		{name: "in process for 100 days", created: ago(100 * day), state: "steps_in_process", at: ago(100 * day)},
	}
	// Every table has rows of some task that must go: the test checks each.
	// (History rows are only written for moves off the happy path, so not
	// every task has some.)
	doomed := map[string]int{}
	for _, c := range cases {
		c.task, c.steps = retentionTask(t, pool, tpl, c.created)
		settle(t, pool, c.task, c.steps, c.state, c.at)
		c.rowsThen = rowsOf(t, pool, c.task, c.steps)
		for table, n := range c.rowsThen {
			if c.deleted {
				doomed[table] += n
			}
		}
	}
	for _, table := range []string{"tasks", "steps", "step_edges", "step_transitions", "task_transitions", "task_history"} {
		if doomed[table] == 0 {
			t.Fatalf("no rows in %s of the tasks retention must delete: the test checks nothing", table)
		}
	}

	p := defaultAges
	p.Now, p.Limit = retentionNow, 5
	deleted, _ := deleteAll(t, pool, p)
	want := map[contracts.TaskState]int{"complete": 2, "resolved_manually": 1, "blocked_by_failures": 1, "cancelled": 1}
	if !maps.Equal(deleted, want) {
		t.Errorf("deleted %v, want %v", deleted, want)
	}
	for _, c := range cases {
		got := rowsOf(t, pool, c.task, c.steps)
		switch {
		case c.deleted:
			for table, n := range got {
				if n != 0 {
					t.Errorf("%s: %d rows left in %s", c.name, n, table)
				}
			}
		case !maps.Equal(got, c.rowsThen):
			t.Errorf("%s: kept, but its rows went from %v to %v", c.name, c.rowsThen, got)
		}
	}

	// Nothing is left to do: a second walk deletes nothing.
	if again, _ := deleteAll(t, pool, p); len(again) != 0 {
		t.Errorf("a second walk deleted %v", again)
	}
}

// An age of 0 keeps the tasks of its state; all three 0 keep everything
// without a query.
func TestRetentionZeroKeeps(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	tpl := retentionTemplate(t, pool)
	states := []string{"complete", "resolved_manually", "blocked_by_failures", "cancelled"}
	for _, s := range states {
		task, steps := retentionTask(t, pool, tpl, ago(400*day))
		settle(t, pool, task, steps, s, ago(365*day))
	}
	count := func() int {
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM tasker.tasks`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	res, err := store.DeleteExpiredTasks(t.Context(), pool, store.RetentionParams{Now: retentionNow, Limit: 10})
	if err != nil || !res.Done || res.Examined != 0 || res.Total() != 0 {
		t.Fatalf("every age 0: %+v, %v; want done at once, nothing examined", res, err)
	}
	if n := count(); n != len(states) {
		t.Fatalf("%d tasks left, want %d", n, len(states))
	}

	for _, step := range []struct {
		p    store.RetentionParams
		want map[contracts.TaskState]int
	}{
		{store.RetentionParams{FailedAfter: day}, map[contracts.TaskState]int{"blocked_by_failures": 1}},
		{store.RetentionParams{CancelledAfter: day}, map[contracts.TaskState]int{"cancelled": 1}},
		{store.RetentionParams{CompleteAfter: day}, map[contracts.TaskState]int{"complete": 1, "resolved_manually": 1}},
	} {
		p := step.p
		p.Now, p.Limit = retentionNow, 10
		if got, _ := deleteAll(t, pool, p); !maps.Equal(got, step.want) {
			t.Errorf("with %+v deleted %v, want %v", step.p, got, step.want)
		}
	}
	if n := count(); n != 0 {
		t.Fatalf("%d tasks left", n)
	}
}

// Each call examines at most Limit tasks, whatever they are, and the walk
// goes on from Next until Done.
func TestRetentionBatchesAreBounded(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	tpl := retentionTemplate(t, pool)
	var running []uuid.UUID
	for i := range 30 {
		created := ago(60*day - time.Duration(i)*time.Minute)
		task, steps := retentionTask(t, pool, tpl, created)
		if i%6 == 5 { // 5 stay in process, between the expired ones
			running = append(running, task)
			continue
		}
		settle(t, pool, task, steps, "complete", created.Add(time.Minute))
	}
	p := defaultAges
	p.Now, p.Limit = retentionNow, 10

	first, err := store.DeleteExpiredTasks(t.Context(), pool, p)
	if err != nil {
		t.Fatal(err)
	}
	if first.Examined != 10 || first.Total() != 9 || first.Done {
		t.Fatalf("first call = %+v; want 10 examined, 9 deleted (one in process), not done", first)
	}
	deleted, calls := deleteAll(t, pool, p)
	if deleted["complete"] != 25-9 || calls != 3 {
		t.Fatalf("the rest of the walk deleted %v in %d calls; want 16 in 3 (10 examined, 10, then the end)", deleted, calls)
	}
	var left []uuid.UUID
	rows, err := pool.Query(t.Context(), `SELECT task_uuid FROM tasker.tasks ORDER BY task_uuid`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var u uuid.UUID
		if err := rows.Scan(&u); err != nil {
			t.Fatal(err)
		}
		left = append(left, u)
	}
	if rows.Err() != nil || fmt.Sprint(left) != fmt.Sprint(running) {
		t.Fatalf("left %v (%v), want the tasks in process %v", left, rows.Err(), running)
	}
}

// MaxSteps bounds a call by the steps of the tasks it deletes: kept tasks
// do not count, and a first task bigger than the bound still goes.
func TestRetentionBatchesAreBoundedBySteps(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	tpl := retentionTemplate(t, pool)
	for i := range 8 { // 3 steps each; every other one stays in process
		created := ago(60*day - time.Duration(i)*time.Minute)
		task, steps := retentionTask(t, pool, tpl, created)
		if i%2 == 0 {
			settle(t, pool, task, steps, "complete", created.Add(time.Minute))
		}
	}
	p := defaultAges
	p.Now, p.Limit, p.MaxSteps = retentionNow, 100, 7

	res, err := store.DeleteExpiredTasks(t.Context(), pool, p)
	if err != nil {
		t.Fatal(err)
	}
	// expired, kept, expired, kept | expired (9 steps > 7) ...
	if res.Total() != 2 || res.Examined != 4 || res.Done {
		t.Fatalf("first call = %+v; want 2 deleted (6 steps) of 4 examined, not done", res)
	}
	p.After = res.Next
	if deleted, calls := deleteAll(t, pool, p); deleted["complete"] != 2 || calls != 1 {
		t.Fatalf("then deleted %v in %d calls; want the other 2 in 1", deleted, calls)
	}

	for range 2 {
		task, steps := retentionTask(t, pool, tpl, ago(50*day))
		settle(t, pool, task, steps, "complete", ago(49*day))
	}
	p.After, p.MaxSteps = uuid.Nil, 2
	if deleted, calls := deleteAll(t, pool, p); deleted["complete"] != 2 || calls != 2 {
		t.Fatalf("with 2 steps at most: deleted %v in %d calls; want 2 tasks of 3 steps, one per call", deleted, calls)
	}
}

// Tasks whose uuid says they were created after the latest cutoff are not
// examined at all, even when their times say they are expired: the walk
// covers the primary key range before the cutoff only.
func TestRetentionWalksOnlyTasksCreatedBeforeTheCutoff(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	tpl := retentionTemplate(t, pool)
	old, oldSteps := retentionTask(t, pool, tpl, ago(10*day))
	settle(t, pool, old, oldSteps, "complete", ago(9*day))
	young, youngSteps := retentionTask(t, pool, tpl, ago(6*day))
	// Finished "before" it was created: only a clock could say so, and the
	// range does not reach it.
	settle(t, pool, young, youngSteps, "complete", ago(9*day))
	p := defaultAges
	p.Now, p.Limit = retentionNow, 10
	res, err := store.DeleteExpiredTasks(t.Context(), pool, p)
	if err != nil {
		t.Fatal(err)
	}
	if res.Examined != 1 || res.Total() != 1 || res.Next != old || !res.Done {
		t.Fatalf("result %+v; want the old task alone examined and deleted", res)
	}
	if n := rowsOf(t, pool, young, youngSteps)["tasks"]; n != 1 {
		t.Fatal("the task created after the cutoff was deleted")
	}
}

// The scan is an index range scan of the primary key under a LIMIT, and the
// delete finds its tasks by key: no sequential scan and no sort of the
// table, whatever its size. Planned as DeleteExpiredTasks has them planned
// (custom plans), on a table whose tasks all lie in the walked range.
func TestRetentionPlansAreBounded(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	tpl := retentionTemplate(t, pool)
	// Version 7 uuids spread over the 60 days before the cutoff.
	if _, err := pool.Exec(ctx, `
		INSERT INTO tasker.tasks (task_uuid, template_id, namespace, template_name, template_version, correlation_id, state,
		                          created_state, steps_total, created_at, updated_at)
		SELECT (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7' || substr(md5(i::text), 1, 19))::uuid,
		       $1, 'keep', 'pair', '1', gen_random_uuid(), 'steps_in_process', 'steps_in_process', 1, ts, ts
		FROM generate_series(1, 20000) i, LATERAL (SELECT $2::timestamptz - i * interval '259 seconds' AS ts) x`, tpl, ago(8*day)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE tasker.tasks`); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read only
	if _, err := tx.Exec(ctx, store.RetentionPlanSettingSQL); err != nil {
		t.Fatal(err)
	}
	cutoff := ago(7 * day)
	for name, q := range map[string]struct {
		sql  string
		args []any
	}{
		"scan":   {store.RetentionScanSQL, []any{uuid.Nil, store.UUIDv7Floor(cutoff), 1000, cutoff, cutoff, cutoff, int64(10000)}},
		"delete": {store.RetentionDeleteSQL, []any{[]uuid.UUID{uuid.New(), uuid.New()}, cutoff, cutoff, cutoff}},
	} {
		var plan []byte
		if err := tx.QueryRow(ctx, `EXPLAIN (FORMAT JSON) `+q.sql, q.args...).Scan(&plan); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var doc []struct{ Plan map[string]any }
		if err := json.Unmarshal(plan, &doc); err != nil || len(doc) != 1 {
			t.Fatalf("%s: plan %s: %v", name, plan, err)
		}
		var pkeyScan, limit bool
		// walk visits every node; sorted is set below a Sort.
		var walk func(n map[string]any, sorted bool)
		walk = func(n map[string]any, sorted bool) {
			typ, _ := n["Node Type"].(string)
			rel, _ := n["Relation Name"].(string)
			idx, _ := n["Index Name"].(string)
			switch {
			case typ == "Seq Scan":
				t.Errorf("%s: sequential scan of %s:\n%s", name, rel, plan)
			case rel == "tasks" && sorted:
				t.Errorf("%s: sorts tasks instead of walking the key in order:\n%s", name, plan)
			case rel == "tasks" && typ == "Index Scan" && idx == "tasks_pkey":
				pkeyScan = true
			case rel == "tasks" && typ == "Bitmap Heap Scan" && name == "delete": // by key, below
			case typ == "Bitmap Index Scan" && idx == "tasks_pkey" && name == "delete":
				pkeyScan = true
			case rel == "tasks" && typ != "ModifyTable":
				t.Errorf("%s: %s of tasks:\n%s", name, typ, plan)
			case typ == "Limit":
				limit = true
			}
			kids, _ := n["Plans"].([]any)
			for _, k := range kids {
				walk(k.(map[string]any), sorted || typ == "Sort")
			}
		}
		walk(doc[0].Plan, false)
		if !pkeyScan || (name == "scan" && !limit) {
			t.Errorf("%s: want a limited index scan of tasks_pkey:\n%s", name, plan)
		}
	}
}

// DeleteExpiredTasks keeps using custom plans on a connection that runs it
// again and again, as the runner's does: the generic plan of its prepared
// scan knows neither the range nor the limit.
func TestRetentionNeverUsesGenericPlans(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	tpl := retentionTemplate(t, pool)
	for i := range 3 {
		task, steps := retentionTask(t, pool, tpl, ago(time.Duration(20+i)*day))
		settle(t, pool, task, steps, "complete", ago(time.Duration(10+i)*day))
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	p := defaultAges
	p.Now, p.Limit = retentionNow, 1
	const runs = 12 // PostgreSQL considers a generic plan from the sixth execution on
	deleted := 0
	for range runs {
		res, err := store.DeleteExpiredTasks(ctx, conn, p)
		if err != nil {
			t.Fatal(err)
		}
		deleted += res.Total()
		p.After = res.Next
		if res.Done {
			p.After = uuid.Nil
		}
	}
	if deleted != 3 {
		t.Fatalf("deleted %d, want 3", deleted)
	}
	var generic, custom int64
	if err := conn.QueryRow(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements
		WHERE statement LIKE '%WITH scanned AS MATERIALIZED%' AND statement NOT LIKE '%pg_prepared_statements%'`).Scan(&generic, &custom); err != nil {
		t.Fatalf("the prepared scan: %v", err)
	}
	if generic != 0 || custom != runs {
		t.Errorf("scan: %d generic and %d custom plans in %d runs; want only custom ones", generic, custom, runs)
	}
	var mode string
	if err := conn.QueryRow(ctx, `SHOW plan_cache_mode`).Scan(&mode); err != nil || mode != "auto" {
		t.Errorf("plan_cache_mode after the runs = %q, %v; want the session's auto back", mode, err)
	}
}

// Two runners trying at once: one gets the lock, the other is told no
// without waiting; once released it can be taken again.
func TestRetentionLockOneAtATime(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		held  []*store.RetentionLock
		start = make(chan struct{})
	)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			l, err := store.TryRetentionLock(ctx, pool)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			held = append(held, l)
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	var got *store.RetentionLock
	for _, l := range held {
		if l != nil {
			if got != nil {
				t.Fatal("both took the retention lock")
			}
			got = l
		}
	}
	if len(held) != 2 || got == nil {
		t.Fatalf("lock results %v: want one lock and one refusal", held)
	}
	// The lock is PostgreSQL's: another session sees it held.
	var holders int
	// Advisory locks are per database: the tests of other databases on the
	// same server do not count.
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND (classid::bigint << 32 | objid::bigint) = $1`, store.RetentionLockKey).Scan(&holders); err != nil || holders != 1 {
		t.Fatalf("advisory lock holders = %d, %v; want 1", holders, err)
	}
	if again, err := store.TryRetentionLock(ctx, pool); err != nil || again != nil {
		t.Fatalf("taken while held: %v, %v", again, err)
	}
	got.Release(ctx)
	again, err := store.TryRetentionLock(ctx, pool)
	if err != nil || again == nil {
		t.Fatalf("not taken after release: %v", err)
	}
	again.Release(ctx)
}

// A blocked task whose failed step is redriven around a retention run is
// either seen with the step enqueued again (kept), or deleted before the
// redrive, which then finds nothing: never deleted with its step running.
func TestRetentionOrdersWithRedrive(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	tpl := retentionTemplate(t, pool)
	task, steps := retentionTask(t, pool, tpl, ago(40*day))
	settle(t, pool, task, steps, "blocked_by_failures", ago(31*day))
	// A second failed step, so that redriving the first leaves the task
	// blocked_by_failures and its row untouched: only the steps tell.
	if _, err := pool.Exec(ctx, `UPDATE tasker.steps SET state = 'enqueued', pending_parents = 0 WHERE step_uuid = $1`, steps[2]); err != nil {
		t.Fatal(err)
	}
	settleStep(t, pool, steps[2], "error")
	ageTask(t, pool, task)

	// The redrive commits first: the task has a step enqueued again and is kept.
	if res, err := store.RedriveSteps(ctx, pool, store.RedriveRequest{StepUUIDs: steps[:1], AdditionalAttempts: 1, Manual: store.Manual{Now: retentionNow}}); err != nil || len(res.TasksResumed) != 0 {
		t.Fatalf("redrive = %+v, %v; want the task still blocked (c is in error)", res, err)
	}
	ageTask(t, pool, task)
	p := defaultAges
	p.Now, p.Limit = retentionNow, 10
	if got, _ := deleteAll(t, pool, p); len(got) != 0 {
		t.Fatalf("deleted %v: the blocked task has a step enqueued", got)
	}

	retentionDuringRedrive(t, pool, task, steps, p)
	redriveDuringRetention(t, pool, task, steps, p)
}

// retentionDuringRedrive runs retention while a redrive is in flight (its
// transaction holds the step, enqueued again, and has not committed):
// retention waits for the step it would check, sees it enqueued, and keeps
// the task.
func retentionDuringRedrive(t *testing.T, pool *pgxpool.Pool, task uuid.UUID, steps []uuid.UUID, p store.RetentionParams) {
	t.Helper()
	ctx := t.Context()
	settleStep(t, pool, steps[0], "error")
	ageTask(t, pool, task)
	redriveTx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer redriveTx.Rollback(ctx) //nolint:errcheck // committed below
	if _, err := store.RedriveSteps(ctx, redriveTx, store.RedriveRequest{StepUUIDs: steps[:1], AdditionalAttempts: 1, Manual: store.Manual{Now: retentionNow}}); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		res store.RetentionResult
		err error
	}
	retained := make(chan outcome, 1)
	go func() {
		res, err := store.DeleteExpiredTasks(ctx, pool, p)
		retained <- outcome{res, err}
	}()
	waitLocked(t, pool)
	if err := redriveTx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if o := <-retained; o.err != nil || o.res.Total() != 0 {
		t.Fatalf("retention during a redrive = %+v, %v; want the task kept", o.res, o.err)
	}
	if n := rowsOf(t, pool, task, steps)["steps"]; n != 3 {
		t.Fatalf("%d steps left, want 3", n)
	}
}

// redriveDuringRetention redrives while retention's transaction is still
// open: the redrive waits for it and then finds the step gone.
func redriveDuringRetention(t *testing.T, pool *pgxpool.Pool, task uuid.UUID, steps []uuid.UUID, p store.RetentionParams) {
	t.Helper()
	ctx := t.Context()
	settleStep(t, pool, steps[0], "error")
	ageTask(t, pool, task)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // committed below
	res, err := store.DeleteExpiredTasks(ctx, tx, p)
	if err != nil || res.Deleted["blocked_by_failures"] != 1 {
		t.Fatalf("retention = %+v, %v", res, err)
	}
	redrive := make(chan error, 1)
	go func() {
		_, err := store.RedriveSteps(ctx, pool, store.RedriveRequest{StepUUIDs: steps[:1], AdditionalAttempts: 1, Manual: store.Manual{Now: retentionNow}})
		redrive <- err
	}()
	waitLocked(t, pool)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-redrive; !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("redrive of a deleted step: %v; want it not found", err)
	}
	if n := rowsOf(t, pool, task, steps); n["tasks"]+n["steps"]+n["step_transitions"]+n["task_transitions"]+n["step_edges"] != 0 {
		t.Fatalf("rows left: %v", n)
	}
}

// settleStep moves step through in_progress to the final state to, as a
// runner's claim and result would.
func settleStep(t *testing.T, pool *pgxpool.Pool, step uuid.UUID, to string) {
	t.Helper()
	for _, q := range []string{
		`UPDATE tasker.steps SET state = 'in_progress', lease_owner = 'w', lease_expires_at = now() WHERE step_uuid = $1`,
		`UPDATE tasker.steps SET state = '` + to + `', lease_owner = NULL, lease_expires_at = NULL WHERE step_uuid = $1`,
	} {
		if _, err := pool.Exec(t.Context(), q, step); err != nil {
			t.Fatal(err)
		}
	}
}

// ageTask makes task last updated 31 days ago, past the failed tasks'
// retention age.
func ageTask(t *testing.T, pool *pgxpool.Pool, task uuid.UUID) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), `UPDATE tasker.tasks SET updated_at = $2 WHERE task_uuid = $1`, task, ago(31*day)); err != nil {
		t.Fatal(err)
	}
}

// waitLocked waits until a session of the test's database waits for a lock.
func waitLocked(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for a session to wait for a lock")
		}
		<-tick.C
	}
}
