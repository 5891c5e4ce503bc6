package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// A step's or task's history is its transition rows merged with the moves
// its columns record (migration 0011): creation, the ready move, and the
// latest claim and completion of a step; creation and completion of a task.
// The views tasker.step_history and tasker.task_history put them together.

// ListTaskTransitions returns the history of a task and all of its steps,
// oldest first.
func ListTaskTransitions(ctx context.Context, db DB, task uuid.UUID) ([]Transition, error) {
	taskRows, err := queryTransitions(ctx, db, task, `
		SELECT NULL::uuid, coalesce(id, 0), coalesce(from_state, ''), to_state, 0, coalesce(worker_id, ''), metadata, created_at
		FROM tasker.task_history WHERE task_uuid = $1
		ORDER BY seq, id`)
	if err != nil {
		return nil, err
	}
	// Through the task's steps (by step_uuid), so the step_transitions_step
	// index serves it: the history table has no index on task_uuid, one
	// fewer to maintain.
	stepRows, err := queryTransitions(ctx, db, task, stepHistorySQL+`
		WHERE step_uuid IN (SELECT step_uuid FROM tasker.steps WHERE task_uuid = $1)
		ORDER BY step_uuid, seq, id`)
	if err != nil {
		return nil, err
	}
	seqs := [][]Transition{taskRows}
	for i := 0; i < len(stepRows); {
		j := i
		for j < len(stepRows) && stepRows[j].StepUUID == stepRows[i].StepUUID {
			j++
		}
		seqs = append(seqs, stepRows[i:j])
		i = j
	}
	return mergeHistories(seqs), nil
}

// ListStepTransitions returns the history of one step, oldest first.
func ListStepTransitions(ctx context.Context, db DB, step uuid.UUID) ([]Transition, error) {
	return queryTransitions(ctx, db, step, stepHistorySQL+` WHERE step_uuid = $1 ORDER BY seq, id`)
}

// stepHistorySQL selects a [Transition] from tasker.step_history; the
// callers add the WHERE and ORDER BY clauses.
const stepHistorySQL = `
		SELECT step_uuid, coalesce(id, 0), coalesce(from_state, ''), to_state, attempt, coalesce(worker_id, ''), metadata, created_at
		FROM tasker.step_history`

// queryTransitions runs query, whose $1 is id, and collects its rows as
// transitions of id (a task's or a step's).
func queryTransitions(ctx context.Context, db DB, id uuid.UUID, query string) ([]Transition, error) {
	rows, err := db.Query(ctx, query, id)
	if err != nil {
		return nil, fmt.Errorf("store: listing transitions of %s: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Transition, error) {
		var tr Transition
		err := r.Scan(&tr.StepUUID, &tr.ID, &tr.FromState, &tr.ToState, &tr.Attempt, &tr.WorkerID, &tr.Metadata, &tr.CreatedAt)
		return tr, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: listing transitions of %s: %w", id, err)
	}
	return out, nil
}

// mergeHistories merges histories, each in order, into one ordered by time;
// each keeps its own order (their times come from the clocks of several
// runners and need not be monotonic across them). A heap would do better
// than this scan of every head, but a task's steps number in the
// thousands at most and its history is read by an operator, not the hot
// path.
func mergeHistories(seqs [][]Transition) []Transition {
	n := 0
	for _, s := range seqs {
		n += len(s)
	}
	out := make([]Transition, 0, n)
	for len(out) < n {
		best := -1
		for i, s := range seqs {
			if len(s) > 0 && (best < 0 || s[0].CreatedAt.Before(seqs[best][0].CreatedAt)) {
				best = i
			}
		}
		out = append(out, seqs[best][0])
		seqs[best] = seqs[best][1:]
	}
	return out
}
