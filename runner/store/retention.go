package store

import (
	"github.com/tasker-runner/tasker-runner/contracts"

	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RetentionLockKey is the session advisory lock (pg_try_advisory_lock, one
// bigint key) that a runner holds while it deletes expired tasks, so that
// one runner at a time does it. The value is arbitrary but fixed forever:
// every version of the runner must agree on it. It is ASCII "taskret";
// the migrations use "tasker" (0x7461736b6572).
const RetentionLockKey int64 = 0x7461736b726574

// RetentionLock is the retention advisory lock, held on one pooled
// connection. Run the deletes on it ([RetentionLock.Conn]) and release it
// when done.
type RetentionLock struct {
	conn *pgxpool.Conn
}

// TryRetentionLock takes the retention lock without waiting. It returns
// nil and no error when another session holds it.
func TryRetentionLock(ctx context.Context, pool *pgxpool.Pool) (*RetentionLock, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: retention lock: acquiring a connection: %w", err)
	}
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, RetentionLockKey).Scan(&got); err != nil {
		// Whether the lock was taken is unknown: closing the connection
		// releases it for sure.
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
		conn.Release()
		return nil, fmt.Errorf("store: retention lock: %w", err)
	}
	if !got {
		conn.Release()
		return nil, nil
	}
	return &RetentionLock{conn: conn}, nil
}

// Conn returns the connection that holds the lock.
func (l *RetentionLock) Conn() DB { return l.conn }

// Release gives the lock and its connection back. When the unlock fails the
// connection is closed, which releases the lock too: it never stays held on
// a pooled connection.
func (l *RetentionLock) Release(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var released bool
	if err := l.conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, RetentionLockKey).Scan(&released); err != nil || !released {
		_ = l.conn.Conn().Close(ctx)
	}
	l.conn.Release()
}

// RetentionParams selects the tasks [DeleteExpiredTasks] deletes.
type RetentionParams struct {
	// Now is the current time; the cutoffs are Now minus the ages.
	Now time.Time
	// CompleteAfter is how long complete and resolved_manually tasks are
	// kept after they finished (completed_at; updated_at when it is not
	// set). 0 keeps them.
	CompleteAfter time.Duration
	// FailedAfter is how long blocked_by_failures tasks are kept after
	// their last change (updated_at). 0 keeps them. Such a task is kept
	// anyway while any of its steps is enqueued, in_progress or
	// waiting_for_retry.
	FailedAfter time.Duration
	// CancelledAfter is how long cancelled tasks are kept after they were
	// cancelled (updated_at). 0 keeps them.
	CancelledAfter time.Duration
	// Limit is the most tasks one call examines, and so deletes. Required.
	Limit int
	// MaxSteps, when positive, also bounds the work of one call by the
	// steps of the tasks it deletes: it stops examining before the expired
	// tasks' steps (steps_total) would add up to more. A first expired task
	// is deleted however many steps it has.
	MaxSteps int
	// After continues a walk: give the previous call's
	// [RetentionResult.Next]. The zero uuid starts at the oldest task.
	After uuid.UUID
}

// RetentionResult reports one call of [DeleteExpiredTasks].
type RetentionResult struct {
	// Deleted counts the tasks deleted by their state: complete,
	// resolved_manually, blocked_by_failures, cancelled.
	Deleted map[contracts.TaskState]int
	// Examined is how many tasks the call looked at (at most Limit): the
	// walk has gone past them.
	Examined int
	// Next is where the next call continues (its After).
	Next uuid.UUID
	// Done reports that the walk reached its end: no task created before
	// the latest cutoff is left after Next. Start again from the zero uuid.
	Done bool
}

// Total returns the number of tasks deleted.
func (r RetentionResult) Total() int {
	n := 0
	for _, c := range r.Deleted {
		n += c
	}
	return n
}

// expiredSQL is true for a task (alias t) in a final state whose age is
// past its state's cutoff. The cutoffs are parameters, NULL for a state
// kept forever (the comparison is then NULL: not expired). A
// blocked_by_failures task also needs no step still running or due to run;
// that is checked under lock (see DeleteExpiredTasks).
func expiredSQL(complete, failed, cancelled string) string {
	return `CASE t.state
		WHEN 'complete' THEN coalesce(t.completed_at, t.updated_at) < ` + complete + `
		WHEN 'resolved_manually' THEN coalesce(t.completed_at, t.updated_at) < ` + complete + `
		WHEN 'blocked_by_failures' THEN t.updated_at < ` + failed + `
		WHEN 'cancelled' THEN t.updated_at < ` + cancelled + `
		ELSE false END`
}

// retentionScanSQL walks the primary key of tasks from $1 (exclusive) to
// $2 (exclusive), $3 rows at most, and takes them in order while the steps
// of the expired ones add up to at most $7 (the first expired task is
// always taken, however big). It returns how many it took, the last one
// taken, whether it stopped early for the steps, and the expired ones among
// them ($4 complete, $5 failed, $6 cancelled), the blocked_by_failures ones
// also apart. Task uuids are version 7: their order is their creation
// order, so the range is the tasks created before the latest cutoff, and
// the walk an index range scan of tasks_pkey bounded by $3, whatever the
// size of the table.
var retentionScanSQL = `
WITH scanned AS MATERIALIZED (
	SELECT w.*, sum(w.expired_steps) OVER (ORDER BY w.task_uuid ROWS UNBOUNDED PRECEDING) AS upto
	FROM (
		SELECT t.task_uuid, t.state, e.expired, CASE WHEN e.expired THEN t.steps_total ELSE 0 END AS expired_steps
		FROM tasker.tasks t
		CROSS JOIN LATERAL (SELECT (` + expiredSQL("$4::timestamptz", "$5::timestamptz", "$6::timestamptz") + `) IS TRUE AS expired) e
		WHERE t.task_uuid > $1 AND t.task_uuid < $2
		ORDER BY t.task_uuid
		LIMIT $3
	) w
),
taken AS MATERIALIZED (
	SELECT * FROM scanned WHERE upto <= $7 OR upto = expired_steps
)
SELECT (SELECT count(*)::int FROM taken),
       (SELECT task_uuid FROM taken ORDER BY task_uuid DESC LIMIT 1),
       (SELECT count(*) FROM taken) < (SELECT count(*) FROM scanned),
       ARRAY(SELECT task_uuid FROM taken WHERE expired),
       ARRAY(SELECT task_uuid FROM taken WHERE expired AND state = 'blocked_by_failures')`

// retentionBusySQL locks, in key order, the steps of blocked_by_failures
// tasks ($1) that are in error or may still run, and returns the tasks
// with a step that may still run. Locking the steps in error orders this
// transaction with a concurrent redrive of one (which moves it to enqueued
// and locks the task only when it was the task's last error): it sees the
// redriven step, or the redrive finds the step gone.
//
// The locked rows are materialized first: in a subquery, PostgreSQL pushes
// the outer "state <> 'error'" below the lock, so the steps in error were
// neither locked nor seen redriven.
const retentionBusySQL = `
WITH locked AS MATERIALIZED (
	SELECT task_uuid, state FROM tasker.steps
	WHERE task_uuid = ANY($1) AND state IN ('error', 'enqueued', 'in_progress', 'waiting_for_retry')
	ORDER BY step_uuid
	FOR UPDATE
)
SELECT DISTINCT task_uuid FROM locked WHERE state <> 'error'`

// deleteTasksSQL continues a WITH clause whose CTE "doomed" lists the
// task_uuid of tasks to delete. It deletes their steps' and their own
// transition rows (the audit tables have no foreign keys, migration 0004;
// step_transitions is indexed by step, task_transitions by task) and the
// tasks, whose steps and edges cascade. The CTE "gone" returns the
// task_uuid and state of each task deleted.
const deleteTasksSQL = `
doomed_steps AS MATERIALIZED (
	SELECT s.step_uuid FROM tasker.steps s WHERE s.task_uuid IN (SELECT task_uuid FROM doomed)
),
st AS (
	DELETE FROM tasker.step_transitions WHERE step_uuid IN (SELECT step_uuid FROM doomed_steps)
),
tt AS (
	DELETE FROM tasker.task_transitions WHERE task_uuid IN (SELECT task_uuid FROM doomed)
),
gone AS (
	DELETE FROM tasker.tasks WHERE task_uuid IN (SELECT task_uuid FROM doomed)
	RETURNING task_uuid, state
)`

// retentionDeleteSQL deletes the candidates ($1) that are still past their
// cutoff ($2 complete, $3 failed, $4 cancelled) with their steps, edges and
// history. The lock rechecks each on its latest version, so a task that
// changed since the scan (a resumed one) is left alone; a task locked by
// someone else is skipped, and its turn comes on a later walk.
var retentionDeleteSQL = `
WITH doomed AS MATERIALIZED (
	SELECT t.task_uuid FROM tasker.tasks t
	WHERE t.task_uuid = ANY($1) AND ` + expiredSQL("$2::timestamptz", "$3::timestamptz", "$4::timestamptz") + `
	ORDER BY t.task_uuid
	FOR UPDATE SKIP LOCKED
),` + deleteTasksSQL + `
SELECT state, count(*)::int FROM gone GROUP BY state`

// DeleteExpiredTasks deletes finished tasks past their state's cutoff (see
// [RetentionParams]) with their steps, edges and history, in one short
// transaction. It examines at most p.Limit tasks, in creation order from
// p.After among those created before the latest cutoff: a caller walks the
// whole range in bounded steps by passing [RetentionResult.Next] back until
// [RetentionResult.Done]. Tasks not in a final state are never deleted,
// nor blocked_by_failures ones with a step still enqueued, in_progress or
// waiting_for_retry.
//
// The walk relies on task uuids being version 7, as the runner's client
// makes them: a task whose uuid encodes a time after the latest cutoff is
// not examined.
func DeleteExpiredTasks(ctx context.Context, db DB, p RetentionParams) (RetentionResult, error) {
	res := RetentionResult{Deleted: map[contracts.TaskState]int{}, Next: p.After}
	if p.Limit < 1 {
		return res, fmt.Errorf("store: deleting expired tasks: limit must be at least 1, got %d", p.Limit)
	}
	cutoff := func(age time.Duration) pgtype.Timestamptz {
		if age <= 0 {
			return pgtype.Timestamptz{}
		}
		return pgtype.Timestamptz{Time: p.Now.Add(-age), Valid: true}
	}
	complete, failed, cancelled := cutoff(p.CompleteAfter), cutoff(p.FailedAfter), cutoff(p.CancelledAfter)
	var latest time.Time
	for _, c := range []pgtype.Timestamptz{complete, failed, cancelled} {
		if c.Valid && c.Time.After(latest) {
			latest = c.Time
		}
	}
	if latest.IsZero() {
		res.Done = true // every state is kept
		return res, nil
	}
	// Tasks created in the cutoff's millisecond or later cannot have
	// finished before it.
	end := UUIDv7Floor(latest)
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) (err error) {
		var (
			last             pgtype.UUID
			expired, blocked []uuid.UUID
		)
		// A generic plan knows neither the range nor the limit; on the
		// tasks table it was a bitmap scan of the whole range and a sort
		// (PostgreSQL 15, 20,000 tasks), where the custom plan walks the
		// primary key and stops at the limit.
		if _, err := tx.Exec(ctx, forceCustomPlansSQL); err != nil {
			return err
		}
		defer func() {
			// Within a caller's transaction the setting would outlive
			// this savepoint.
			if err == nil {
				_, err = tx.Exec(ctx, restorePlanCacheModeSQL)
			}
		}()
		maxSteps := int64(math.MaxInt64)
		if p.MaxSteps > 0 {
			maxSteps = int64(p.MaxSteps)
		}
		var cut bool
		if err := tx.QueryRow(ctx, retentionScanSQL, p.After, end, p.Limit, complete, failed, cancelled, maxSteps).
			Scan(&res.Examined, &last, &cut, &expired, &blocked); err != nil {
			return err
		}
		if last.Valid {
			res.Next = last.Bytes
		}
		res.Done = res.Examined < p.Limit && !cut
		if len(expired) == 0 {
			return nil
		}
		if expired, err = dropBusy(ctx, tx, expired, blocked); err != nil || len(expired) == 0 {
			return err
		}
		rows, err := tx.Query(ctx, retentionDeleteSQL, expired, complete, failed, cancelled)
		if err != nil {
			return err
		}
		var (
			state contracts.TaskState
			n     int
		)
		_, err = pgx.ForEachRow(rows, []any{&state, &n}, func() error { res.Deleted[state] = n; return nil })
		return err
	})
	if err != nil {
		return RetentionResult{Deleted: map[contracts.TaskState]int{}, Next: p.After}, fmt.Errorf("store: deleting expired tasks: %w", err)
	}
	return res, nil
}

// dropBusy returns expired without the blocked_by_failures tasks among
// blocked that have a step still running or due to run, locking their steps
// as [retentionBusySQL] says. It reuses expired's array.
func dropBusy(ctx context.Context, tx pgx.Tx, expired, blocked []uuid.UUID) ([]uuid.UUID, error) {
	if len(blocked) == 0 {
		return expired, nil
	}
	rows, err := tx.Query(ctx, retentionBusySQL, blocked)
	if err != nil {
		return nil, err
	}
	busy, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, err
	}
	skip := make(map[uuid.UUID]bool, len(busy))
	for _, b := range busy {
		skip[b] = true
	}
	return slices.DeleteFunc(expired, func(e uuid.UUID) bool { return skip[e] }), nil
}
