package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// Manual changes of the management API: cancel a task, redrive (retry)
// failed steps, resolve a step by hand. Each is one transaction whose audit
// rows (written by the state triggers) name the actor, the action and the
// reason.

// Manual says who makes a manual change, why, and when.
type Manual struct {
	// Actor is recorded as the worker_id of the audit rows (unless a
	// runner held the step's lease) and in their metadata. Default "api".
	Actor string
	// Principal, when set, names the authenticated caller in the audit
	// rows' metadata.
	Principal string
	// Reason is recorded in the audit rows' metadata.
	Reason string
	// Now is the time of the change. Default time.Now().
	Now time.Time
}

// StateConflictError reports a manual change refused because of the
// current state of what it would change. Nothing was written.
type StateConflictError struct {
	// Action is what was asked: cancel, retry, resolve or redrive.
	Action string
	// Kind is "task" or "step".
	Kind string
	// Items are the tasks or steps in the way, with their states.
	Items []StateConflict
	// Allowed are the states the action applies to.
	Allowed []string
}

// StateConflict is one task or step whose state refused a change.
type StateConflict struct {
	ID    uuid.UUID
	State string
}

func (e *StateConflictError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "store: cannot %s ", e.Action)
	for i, it := range e.Items {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s (%s)", e.Kind, it.ID, it.State)
	}
	fmt.Fprintf(&b, ": only a %s in state %s can be", e.Kind, orList(e.Allowed))
	return b.String()
}

func orList(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// MissingError reports ids that name no task or step. It matches
// [ErrNotFound] with errors.Is. Nothing was written.
type MissingError struct {
	Kind string
	IDs  []uuid.UUID
}

func (e *MissingError) Error() string {
	ids := make([]string, len(e.IDs))
	for i, id := range e.IDs {
		ids[i] = id.String()
	}
	return fmt.Sprintf("store: no %s %s: %v", e.Kind, strings.Join(ids, ", "), ErrNotFound)
}

// Is makes errors.Is(err, ErrNotFound) hold.
func (e *MissingError) Is(target error) bool { return target == ErrNotFound }

// TransitionError is a state change refused by the database's state
// machine (the step_state_transition or task_state_transition check), for
// instance because a concurrent change got there first. Nothing was written.
type TransitionError struct {
	// Constraint is step_state_transition or task_state_transition.
	Constraint string
	// Message is the database's, e.g. "illegal step transition: step ...
	// cannot move from complete to enqueued".
	Message string
	err     error
}

func (e *TransitionError) Error() string { return "store: " + e.Message }
func (e *TransitionError) Unwrap() error { return e.err }

// Constraints raised by the state triggers (migration 0002).
const (
	ConstraintStepTransition = "step_state_transition"
	ConstraintTaskTransition = "task_state_transition"
)

// asTransitionError turns the state triggers' check_violation into a
// [*TransitionError]; other errors pass unchanged.
func asTransitionError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23514" &&
		(pe.ConstraintName == ConstraintStepTransition || pe.ConstraintName == ConstraintTaskTransition) {
		return &TransitionError{Constraint: pe.ConstraintName, Message: pe.Message, err: err}
	}
	return err
}

// retryableTxError reports a transaction failure that running it again may
// cure: a deadlock with the runners' own writes, or a serialization failure.
func retryableTxError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// manualTx runs fn in a transaction annotated for the audit rows, retrying
// a few times on deadlocks (a manual change may meet a runner's completion
// on the same rows).
func manualTx(ctx context.Context, db DB, m *Manual, action string, fn func(tx pgx.Tx) error) error {
	if m.Actor == "" {
		m.Actor = "api"
	}
	if m.Now.IsZero() {
		m.Now = time.Now()
	}
	meta := map[string]string{"action": action, "actor": m.Actor}
	if m.Principal != "" {
		meta["principal"] = m.Principal
	}
	if m.Reason != "" {
		meta["reason"] = m.Reason
	}
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT set_config('tasker.transition_metadata', $1, true), set_config('tasker.worker_id', $2, true)`,
				string(metaJSON), m.Actor); err != nil {
				return err
			}
			return fn(tx)
		})
		if err == nil {
			return nil
		}
		if attempt < 3 && retryableTxError(err) && ctx.Err() == nil {
			time.Sleep(time.Duration(attempt) * 10 * time.Millisecond)
			continue
		}
		return asTransitionError(err)
	}
}

// CancelResult reports what [CancelTask] changed.
type CancelResult struct {
	// StepsCancelled counts the steps moved to cancelled.
	StepsCancelled int
}

// cancelSQL cancels a task and every step of it that has not finished
// (in_progress ones lose their lease, so their runner's result will be
// refused as stale), in one statement. Steps are locked in key order, the
// order the runners' own statements lock them in.
const cancelSQL = `
WITH t AS (
	SELECT task_uuid, state FROM tasker.tasks WHERE task_uuid = $1
),
locked AS (
	SELECT s.step_uuid FROM tasker.steps s JOIN t ON s.task_uuid = t.task_uuid
	WHERE t.state IN ` + taskActiveStatesSQL + ` AND s.state IN ` + stepOpenStatesSQL + `
	ORDER BY s.step_uuid
	FOR UPDATE OF s
),
steps_upd AS (
	UPDATE tasker.steps s SET state = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, updated_at = $2
	FROM locked l
	WHERE s.step_uuid = l.step_uuid AND s.state IN ` + stepOpenStatesSQL + `
	RETURNING s.step_uuid
),
task_upd AS (
	UPDATE tasker.tasks x SET state = 'cancelled', updated_at = $2
	FROM t
	WHERE x.task_uuid = t.task_uuid AND x.state IN ` + taskActiveStatesSQL + `
	RETURNING x.task_uuid
)
SELECT t.state, (SELECT count(*)::int FROM steps_upd), EXISTS (SELECT 1 FROM task_upd) FROM t`

// CancelTask cancels a task that has not finished: every step not yet
// finished (including dead letters) becomes cancelled, then the task, in one
// transaction. A finished task gives a [*StateConflictError]; an unknown
// one a [*MissingError].
func CancelTask(ctx context.Context, db DB, id uuid.UUID, m Manual) (CancelResult, error) {
	var res CancelResult
	err := manualTx(ctx, db, &m, "cancel", func(tx pgx.Tx) error {
		var (
			state     string
			cancelled bool
		)
		err := tx.QueryRow(ctx, cancelSQL, id, m.Now).Scan(&state, &res.StepsCancelled, &cancelled)
		if errors.Is(err, pgx.ErrNoRows) {
			return &MissingError{Kind: "task", IDs: []uuid.UUID{id}}
		}
		if err != nil {
			return err
		}
		if !cancelled {
			open := []string{string(contracts.TaskStatePending), string(contracts.TaskStateStepsInProcess), string(contracts.TaskStateBlockedByFailures)}
			if slices.Contains(open, state) {
				// It finished while we looked; report what it is now.
				_ = tx.QueryRow(ctx, `SELECT state FROM tasker.tasks WHERE task_uuid = $1`, id).Scan(&state)
			}
			return &StateConflictError{Action: "cancel", Kind: "task", Items: []StateConflict{{ID: id, State: state}},
				Allowed: open}
		}
		return nil
	})
	if err != nil {
		return CancelResult{}, fmt.Errorf("store: cancelling task %s: %w", id, err)
	}
	return res, nil
}

// RedriveRequest asks [RedriveSteps] to run dead letters (steps in state
// error) again.
type RedriveRequest struct {
	// StepUUIDs names the steps. Either all exist and are in state error
	// and all are redriven, or nothing changes.
	StepUUIDs []uuid.UUID
	// Filter selects the steps when StepUUIDs is empty: at most Limit dead
	// letters, most recently failed first.
	Filter DeadLetterFilter
	Limit  int
	// AdditionalAttempts (at least 1) is how many more attempts each step
	// gets at least: attempts keep counting, and max_attempts becomes
	// greatest(max_attempts, attempts + AdditionalAttempts).
	AdditionalAttempts int
	// Action names the change in the audit rows: "redrive" (default) or
	// "retry".
	Action string
	Manual
}

// RedriveResult reports what [RedriveSteps] changed.
type RedriveResult struct {
	// Steps are the steps moved back to enqueued.
	Steps []uuid.UUID
	// TasksResumed are tasks that left blocked_by_failures for
	// steps_in_process (they had no other dead letter).
	TasksResumed []uuid.UUID
	// More is set when a filter matched more dead letters than Limit.
	More bool
}

// redriveSQL moves dead letters back to enqueued, ready now, with their
// yield count reset (a step failed for yielding too often gets a new
// allowance, from its last checkpoint); resumes their tasks when no other
// step of theirs is in error, and wakes the runners of each namespace once.
const redriveSQL = `
WITH upd AS (
	UPDATE tasker.steps s SET
		state = 'enqueued',
		run_at = $2,
		max_attempts = greatest(s.max_attempts, s.attempts + $3),
		yields = 0,
		updated_at = $2
	WHERE s.step_uuid = ANY($1) AND s.state = 'error'
	RETURNING s.step_uuid, s.task_uuid, s.namespace
),
resumed AS (
	UPDATE tasker.tasks t SET state = 'steps_in_process', updated_at = $2
	WHERE t.task_uuid IN (SELECT task_uuid FROM upd) AND t.state = 'blocked_by_failures'
	  AND NOT EXISTS (SELECT 1 FROM tasker.steps e
	                  WHERE e.task_uuid = t.task_uuid AND e.state = 'error' AND e.step_uuid <> ALL($1))
	RETURNING t.task_uuid
),
notified AS (
	SELECT count(pg_notify($4 || namespace, '')) AS n FROM (SELECT DISTINCT namespace FROM upd) ns
)
SELECT 'step', step_uuid FROM upd
UNION ALL
SELECT 'task', task_uuid FROM resumed
UNION ALL
SELECT 'notified', NULL FROM notified`

// RedriveSteps moves dead letters back to enqueued (ready at once) in one
// transaction and notifies their namespaces. Named steps that do not exist
// give a [*MissingError]; named steps not in state error a
// [*StateConflictError]; either way nothing changes.
func RedriveSteps(ctx context.Context, db DB, req RedriveRequest) (RedriveResult, error) {
	var res RedriveResult
	action := req.Action
	if action == "" {
		action = "redrive"
	}
	extra := max(req.AdditionalAttempts, 1)
	err := manualTx(ctx, db, &req.Manual, action, func(tx pgx.Tx) error {
		res = RedriveResult{}
		ids := req.StepUUIDs
		if len(ids) > 0 {
			if err := checkDeadLetters(ctx, tx, action, ids); err != nil {
				return err
			}
		} else {
			var w where
			req.Filter.where(&w)
			limit := max(req.Limit, 1)
			rows, err := tx.Query(ctx, `
				SELECT s.step_uuid FROM tasker.steps s JOIN tasker.tasks t ON t.task_uuid = s.task_uuid`+w.sql()+`
				ORDER BY s.updated_at DESC, s.step_uuid DESC LIMIT `+w.param(limit+1)+`
				FOR UPDATE OF s SKIP LOCKED`, w.args...)
			if err != nil {
				return err
			}
			if ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err != nil {
				return err
			}
			if len(ids) > limit {
				ids, res.More = ids[:limit], true
			}
			if len(ids) == 0 {
				return nil
			}
		}
		rows, err := tx.Query(ctx, redriveSQL, ids, req.Now, extra, ChannelPrefix)
		if err != nil {
			return err
		}
		var (
			kind string
			id   pgtype.UUID
		)
		_, err = pgx.ForEachRow(rows, []any{&kind, &id}, func() error {
			switch kind {
			case "step":
				res.Steps = append(res.Steps, id.Bytes)
			case "task":
				res.TasksResumed = append(res.TasksResumed, id.Bytes)
			}
			return nil
		})
		return err
	})
	if err != nil {
		return RedriveResult{}, fmt.Errorf("store: %s of %d steps: %w", action, len(req.StepUUIDs), err)
	}
	return res, nil
}

// checkDeadLetters locks the named steps and fails unless every one exists
// and is in state error.
func checkDeadLetters(ctx context.Context, tx pgx.Tx, action string, ids []uuid.UUID) error {
	rows, err := tx.Query(ctx, `
		SELECT step_uuid, state FROM tasker.steps WHERE step_uuid = ANY($1) ORDER BY step_uuid FOR UPDATE`, ids)
	if err != nil {
		return err
	}
	found := make(map[uuid.UUID]string, len(ids))
	var (
		id    uuid.UUID
		state string
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &state}, func() error { found[id] = state; return nil }); err != nil {
		return err
	}
	var (
		missing  []uuid.UUID
		conflict []StateConflict
		seen     = map[uuid.UUID]bool{}
	)
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		switch st, ok := found[id]; {
		case !ok:
			missing = append(missing, id)
		case st != string(contracts.StepStateError):
			conflict = append(conflict, StateConflict{ID: id, State: st})
		}
	}
	if len(missing) > 0 {
		return &MissingError{Kind: "step", IDs: missing}
	}
	if len(conflict) > 0 {
		return &StateConflictError{Action: action, Kind: "step", Items: conflict, Allowed: []string{string(contracts.StepStateError)}}
	}
	return nil
}

// ResolveResult reports what [ResolveStep] changed.
type ResolveResult struct {
	// TaskState is the task's state afterwards.
	TaskState string
	// Enqueued counts children that became ready.
	Enqueued int
}

// resolveSQL settles one step by hand as a completion would: the step
// (leased or not) becomes resolved_manually with the given results, its
// children's pending_parents drop (those reaching zero are enqueued), the
// task counts it as done and completes when it was the last, or leaves
// blocked_by_failures when no other step of it is in error; the namespace
// is notified when children became ready.
const resolveSQL = `
WITH done AS (
	UPDATE tasker.steps s SET
		state = 'resolved_manually',
		results = $2,
		lease_owner = NULL,
		lease_expires_at = NULL,
		completed_at = $3,
		updated_at = $3
	WHERE s.step_uuid = $1 AND s.state IN ` + stepOpenStatesSQL + `
	RETURNING s.step_uuid, s.task_uuid, s.namespace
),
children AS (
	UPDATE tasker.steps c SET
		pending_parents = c.pending_parents - 1,
		state = CASE WHEN c.pending_parents = 1 THEN 'enqueued' ELSE c.state END,
		run_at = CASE WHEN c.pending_parents = 1 THEN $3 ELSE c.run_at END,
		updated_at = $3
	FROM tasker.step_edges e JOIN done d ON d.step_uuid = e.from_step
	WHERE c.step_uuid = e.to_step AND c.state = 'pending'
	RETURNING c.step_uuid, c.namespace, c.state
),
task_upd AS (
	UPDATE tasker.tasks t SET
		steps_done = t.steps_done + 1,
		state = CASE
			WHEN t.steps_done + 1 = t.steps_total THEN 'complete'
			WHEN t.state = 'blocked_by_failures' AND NOT EXISTS (
				SELECT 1 FROM tasker.steps e WHERE e.task_uuid = t.task_uuid AND e.state = 'error' AND e.step_uuid <> $1
			) THEN 'steps_in_process'
			ELSE t.state END,
		completed_at = CASE WHEN t.steps_done + 1 = t.steps_total THEN $3 ELSE t.completed_at END,
		updated_at = $3
	FROM done d
	WHERE t.task_uuid = d.task_uuid
	RETURNING t.state
),
notified AS (
	SELECT count(pg_notify($4 || namespace, '')) AS n
	FROM (SELECT DISTINCT namespace FROM children WHERE state = 'enqueued') ns
)
SELECT (SELECT state FROM task_upd),
       (SELECT count(*)::int FROM children WHERE state = 'enqueued'),
       (SELECT n FROM notified)`

// ResolveStep marks a step resolved_manually with results (a step result
// document, which its descendants receive as the step's dependency result)
// and advances the workflow as a completion would, in one transaction. The
// step must not have finished and its task must be in process or blocked;
// otherwise a [*StateConflictError]. An unknown step gives a [*MissingError].
// A runner still working on the step loses its lease: its result will be
// refused as stale.
func ResolveStep(ctx context.Context, db DB, id uuid.UUID, results []byte, m Manual) (ResolveResult, error) {
	var res ResolveResult
	err := manualTx(ctx, db, &m, "resolve", func(tx pgx.Tx) error {
		var stepState, taskState string
		var task uuid.UUID
		// The task first, as the runner locks a task that may grow before
		// its steps (see LockTasks): the statement below then sees any
		// step added to it before.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM tasker.tasks WHERE task_uuid = (SELECT task_uuid FROM tasker.steps WHERE step_uuid = $1) FOR UPDATE`, id); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `
			SELECT s.state, t.task_uuid, t.state FROM tasker.steps s JOIN tasker.tasks t ON t.task_uuid = s.task_uuid
			WHERE s.step_uuid = $1 FOR UPDATE OF s`, id).Scan(&stepState, &task, &taskState)
		if errors.Is(err, pgx.ErrNoRows) {
			return &MissingError{Kind: "step", IDs: []uuid.UUID{id}}
		}
		if err != nil {
			return err
		}
		open := []string{string(contracts.StepStatePending), string(contracts.StepStateEnqueued), string(contracts.StepStateInProgress),
			string(contracts.StepStateWaitingForRetry), string(contracts.StepStateError)}
		if !slices.Contains(open, stepState) {
			return &StateConflictError{Action: "resolve", Kind: "step", Items: []StateConflict{{ID: id, State: stepState}}, Allowed: open}
		}
		if taskState != string(contracts.TaskStateStepsInProcess) && taskState != string(contracts.TaskStateBlockedByFailures) {
			return &StateConflictError{Action: "resolve a step of", Kind: "task", Items: []StateConflict{{ID: task, State: taskState}},
				Allowed: []string{string(contracts.TaskStateStepsInProcess), string(contracts.TaskStateBlockedByFailures)}}
		}
		var state pgtype.Text
		if err := tx.QueryRow(ctx, resolveSQL, id, nullJSON(results), m.Now, ChannelPrefix).Scan(&state, &res.Enqueued, new(int64)); err != nil {
			return err
		}
		res.TaskState = state.String
		return nil
	})
	if err != nil {
		return ResolveResult{}, fmt.Errorf("store: resolving step %s: %w", id, err)
	}
	return res, nil
}
