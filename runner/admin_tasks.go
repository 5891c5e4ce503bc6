package runner

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// The read operations on tasks and steps, for an operator or the
// management API (River puts JobGet and JobList on its client the same
// way). Errors name missing rows with [ErrNotFound] and an unreachable
// database with [IsUnavailable].

// TaskFilter selects tasks for [Client.ListTasks]. Zero fields do not filter.
type TaskFilter struct {
	States       []TaskState
	Namespace    string
	TemplateName string
	// CorrelationID selects the tasks of one correlation id; uuid.Nil does
	// not filter.
	CorrelationID uuid.UUID
	// CreatedAfter (inclusive) and CreatedBefore (exclusive) bound created_at.
	CreatedAfter  time.Time
	CreatedBefore time.Time
	// Before continues a listing: only tasks whose uuid sorts before it
	// (older tasks: uuids are version 7).
	Before uuid.UUID
	// Limit is the page size (at least 1).
	Limit int
}

// GetTask returns one task.
func (c *Client) GetTask(ctx context.Context, id uuid.UUID) (Task, error) {
	t, err := store.GetTask(ctx, c.db, id)
	return taskFromRow(t), adminError(err)
}

// ListTasks returns a page of tasks, newest first, and whether more follow
// (continue with [TaskFilter.Before] set to the last task's uuid).
func (c *Client) ListTasks(ctx context.Context, f TaskFilter) ([]Task, bool, error) {
	sf := store.TaskFilter{
		Namespace: f.Namespace, TemplateName: f.TemplateName, CorrelationID: f.CorrelationID,
		CreatedAfter: f.CreatedAfter, CreatedBefore: f.CreatedBefore, Before: f.Before, Limit: f.Limit,
	}
	for _, s := range f.States {
		sf.States = append(sf.States, string(s))
	}
	rows, more, err := store.ListTasks(ctx, c.db, sf)
	return convertAll(rows, taskFromRow), more, adminError(err)
}

// ListTaskSteps returns a task's steps in creation order.
func (c *Client) ListTaskSteps(ctx context.Context, task uuid.UUID) ([]Step, error) {
	rows, err := store.ListTaskSteps(ctx, c.db, task)
	return convertAll(rows, stepFromRow), adminError(err)
}

// GetStep returns one step.
func (c *Client) GetStep(ctx context.Context, id uuid.UUID) (Step, error) {
	s, err := store.GetStep(ctx, c.db, id)
	return stepFromRow(s), adminError(err)
}

// ListTaskTransitions returns the audit trail of a task and its steps,
// oldest first.
func (c *Client) ListTaskTransitions(ctx context.Context, task uuid.UUID) ([]Transition, error) {
	rows, err := store.ListTaskTransitions(ctx, c.db, task)
	return convertAll(rows, transitionFromRow), adminError(err)
}

// ListStepTransitions returns the audit trail of one step, oldest first.
func (c *Client) ListStepTransitions(ctx context.Context, step uuid.UUID) ([]Transition, error) {
	rows, err := store.ListStepTransitions(ctx, c.db, step)
	return convertAll(rows, transitionFromRow), adminError(err)
}

// CountTasksByState counts tasks per state: every unfinished task, and the
// finished ones (complete, cancelled, resolved_manually) created since
// since. Every state is present in the map.
func (c *Client) CountTasksByState(ctx context.Context, since time.Time) (map[TaskState]int, error) {
	counts, err := store.CountTasksByState(ctx, c.db, since)
	if err != nil {
		return nil, adminError(err)
	}
	out := make(map[TaskState]int, len(counts))
	for s, n := range counts {
		out[TaskState(s)] = n
	}
	return out, nil
}
