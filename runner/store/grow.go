package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// Tasks whose templates have decision or batchable steps grow while they
// run: an outcome adds steps and edges in the transaction that completes the
// step. A completion of a parent elsewhere must then either commit before
// the growth reads the parent's state, or start its statement after the
// growth committed, or it would miss the new edges and leave a child
// pending forever. Both sides therefore lock the task rows first, in a
// statement of their own ([LockTasks]), before they read or write steps.

// LockTasks locks the rows of tasks, in key order, until the transaction
// ends. Run it as its own statement before reading or completing steps of
// tasks that may grow, so that what follows sees every growth committed
// before.
func LockTasks(ctx context.Context, tx pgx.Tx, tasks []uuid.UUID) error {
	ids := slices.Clone(tasks)
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	ids = slices.Compact(ids)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM tasker.tasks WHERE task_uuid = ANY($1) ORDER BY task_uuid FOR UPDATE`, ids); err != nil {
		return fmt.Errorf("store: locking %d tasks: %w", len(ids), err)
	}
	return nil
}

// TaskStep is a step of a growing task, as [TaskSteps] reads it.
type TaskStep struct {
	StepUUID         uuid.UUID
	TaskUUID         uuid.UUID
	Name             string
	TemplateStepName string
	Type             string
	State            contracts.StepState
	Attempts         int
	LeaseOwner       string
	// LeaseEpoch is the epoch of the step's latest claim.
	LeaseEpoch int64
}

// TaskSteps reads every step of tasks, locking them (in key order) so that
// none is claimed or changes state until the transaction ends. Call it
// after [LockTasks].
func TaskSteps(ctx context.Context, tx pgx.Tx, tasks []uuid.UUID) ([]TaskStep, error) {
	rows, err := tx.Query(ctx, `
		SELECT step_uuid, task_uuid, name, template_step_name, type, state, attempts, coalesce(lease_owner, ''), lease_epoch
		FROM tasker.steps WHERE task_uuid = ANY($1)
		ORDER BY step_uuid FOR UPDATE`, tasks)
	if err != nil {
		return nil, fmt.Errorf("store: reading steps of %d tasks: %w", len(tasks), err)
	}
	var (
		out []TaskStep
		s   TaskStep
	)
	_, err = pgx.ForEachRow(rows, []any{&s.StepUUID, &s.TaskUUID, &s.Name, &s.TemplateStepName, &s.Type, &s.State, &s.Attempts, &s.LeaseOwner, &s.LeaseEpoch}, func() error {
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: reading steps of %d tasks: %w", len(tasks), err)
	}
	return out, nil
}

// GrowStep is a step an outcome adds to a running task. Parents are step
// uuids, of steps that exist or are added with it.
type GrowStep struct {
	NewStep
	TaskUUID  uuid.UUID
	Namespace string
	Priority  int
	Parents   []uuid.UUID
	// PendingParents counts the parents not done yet (the step whose
	// completion adds this one included); zero creates the step enqueued.
	PendingParents int
}

// AddSteps creates steps and their edges in running tasks and raises the
// tasks' step totals, in one round trip; namespaces that get ready steps
// are notified at commit. Call it after [LockTasks].
func AddSteps(ctx context.Context, tx pgx.Tx, now time.Time, steps []GrowStep) error {
	if len(steps) == 0 {
		return nil
	}
	var sr stepRows
	var ready bool
	for _, s := range steps {
		for _, p := range s.Parents {
			sr.edge(s.TaskUUID, p, s.StepUUID)
		}
		sr.step(s.TaskUUID, s.Namespace, s.Priority, s.NewStep, len(s.Parents), s.PendingParents)
		ready = ready || s.PendingParents == 0
	}
	var b pgx.Batch
	sr.queue(&b, now)
	b.Queue(`
		UPDATE tasker.tasks t SET steps_total = t.steps_total + n.added, updated_at = $2
		FROM (SELECT task, count(*)::int AS added FROM unnest($1::uuid[]) AS task GROUP BY task) n
		WHERE t.task_uuid = n.task`, sr.sTask, now)
	if ready {
		b.Queue(`SELECT pg_notify($2 || ns, '') FROM (SELECT DISTINCT unnest($1::text[]) AS ns) n`, sr.sNS, ChannelPrefix)
	}
	return sendBatch(ctx, tx, &b, "adding steps", func(br pgx.BatchResults) error {
		return addStepsResults(br, &sr, ready)
	})
}

func addStepsResults(br pgx.BatchResults, sr *stepRows, ready bool) error {
	if err := sr.results(br); err != nil {
		return err
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("store: counting added steps: %w", err)
	}
	if ready {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("store: notifying: %w", err)
		}
	}
	return nil
}

// Batch names the instances of one batch_worker template step in a task.
type Batch struct {
	TaskUUID         uuid.UUID
	TemplateStepName string
}

// CancelSiblings cancels, in one statement, the steps of the batches that
// have not started (pending, enqueued or waiting for a retry): a fail_fast
// batch stops its other workers. In-flight ones finish. It returns how
// many were cancelled.
func CancelSiblings(ctx context.Context, tx pgx.Tx, batches []Batch, now time.Time) (int, error) {
	if len(batches) == 0 {
		return 0, nil
	}
	tasks := make([]uuid.UUID, len(batches))
	names := make([]string, len(batches))
	for i, b := range batches {
		tasks[i], names[i] = b.TaskUUID, b.TemplateStepName
	}
	tag, err := tx.Exec(ctx, `
		UPDATE tasker.steps s SET state = 'cancelled', updated_at = $3
		FROM unnest($1::uuid[], $2::text[]) AS b(task, name)
		WHERE s.task_uuid = b.task AND s.template_step_name = b.name AND s.state IN ('pending', 'enqueued', 'waiting_for_retry')`,
		tasks, names, now)
	if err != nil {
		return 0, fmt.Errorf("store: cancelling the rest of %d fail_fast batches: %w", len(batches), err)
	}
	return int(tag.RowsAffected()), nil
}
