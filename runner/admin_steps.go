package runner

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// The manual changes (cancel, retry, redrive, resolve) and the dead-letter
// listing, as River puts JobCancel and JobRetry on its client. Each change
// is one transaction whose audit rows name the actor, the action and the
// reason; one refused for the state of what it would change returns a
// [*StateConflictError], one naming unknown ids a [*MissingError], and
// nothing is written.

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

// CancelResult reports what [Client.CancelTask] changed.
type CancelResult struct {
	// StepsCancelled counts the steps moved to cancelled.
	StepsCancelled int
}

// CancelTask cancels a task and every step of it that has not finished (a
// running step's result will be refused as stale). Only a pending,
// steps_in_process or blocked_by_failures task can be cancelled.
func (c *Client) CancelTask(ctx context.Context, id uuid.UUID, m Manual) (CancelResult, error) {
	res, err := store.CancelTask(ctx, c.db, id, store.Manual(m))
	return CancelResult(res), adminError(err)
}

// ResolveResult reports what [Client.ResolveStep] changed.
type ResolveResult struct {
	// TaskState is the task's state afterwards.
	TaskState string
	// Enqueued counts children that became ready.
	Enqueued int
}

// ResolveStep settles an unfinished step by hand as a completion would:
// it becomes resolved_manually with result (a [contracts.StepResult]
// document) and its children become ready.
func (c *Client) ResolveStep(ctx context.Context, id uuid.UUID, result []byte, m Manual) (ResolveResult, error) {
	res, err := store.ResolveStep(ctx, c.db, id, result, store.Manual(m))
	return ResolveResult(res), adminError(err)
}

// DeadLetterFilter selects dead letters (steps in state error). Zero
// fields do not filter.
type DeadLetterFilter struct {
	Namespace    string
	Handler      string
	TaskUUID     uuid.UUID
	TemplateName string
	// FailedAfter (inclusive) and FailedBefore (exclusive) bound the time
	// the step failed.
	FailedAfter  time.Time
	FailedBefore time.Time
}

// DeadLetterCursor is the position after the last dead letter of a page:
// dead letters are listed by the time they failed, newest first, with the
// step uuid breaking ties. [DeadLetter.Cursor] makes one.
type DeadLetterCursor struct {
	FailedAt time.Time
	StepUUID uuid.UUID
}

// Cursor is the position of this dead letter, to continue a listing after it.
func (d DeadLetter) Cursor() DeadLetterCursor {
	return DeadLetterCursor{FailedAt: d.UpdatedAt, StepUUID: d.StepUUID}
}

// ListDeadLetters returns a page of at most limit dead letters after
// after (nil: from the newest), and whether more follow.
func (c *Client) ListDeadLetters(ctx context.Context, f DeadLetterFilter, after *DeadLetterCursor, limit int) ([]DeadLetter, bool, error) {
	rows, more, err := store.ListDeadLetters(ctx, c.db, store.DeadLetterFilter(f), (*store.DeadLetterCursor)(after), limit)
	return convertAll(rows, deadLetterFromRow), more, adminError(err)
}

// RedriveRequest asks [Client.RedriveSteps] to run dead letters again.
type RedriveRequest struct {
	// StepUUIDs names the steps. Either all exist and are in state error
	// and all are redriven, or nothing changes.
	StepUUIDs []uuid.UUID
	// Filter selects the steps when StepUUIDs is empty: at most Limit dead
	// letters, most recently failed first.
	Filter DeadLetterFilter
	Limit  int
	// AdditionalAttempts (at least 1) is how many more attempts each step
	// gets at least: max_attempts becomes
	// max(max_attempts, attempts + AdditionalAttempts).
	AdditionalAttempts int
	// Action names the change in the audit rows: "redrive" (default) or
	// "retry".
	Action string
	Manual
}

// RedriveResult reports what [Client.RedriveSteps] changed.
type RedriveResult struct {
	// Steps are the steps moved back to enqueued.
	Steps []uuid.UUID
	// TasksResumed are tasks that left blocked_by_failures for
	// steps_in_process (they had no other dead letter).
	TasksResumed []uuid.UUID
	// More is set when a filter matched more dead letters than Limit.
	More bool
}

// RedriveSteps moves dead letters back to enqueued, ready now, and resumes
// their tasks when no other step of theirs is in error.
func (c *Client) RedriveSteps(ctx context.Context, req RedriveRequest) (RedriveResult, error) {
	res, err := store.RedriveSteps(ctx, c.db, store.RedriveRequest{
		StepUUIDs: req.StepUUIDs, Filter: store.DeadLetterFilter(req.Filter), Limit: req.Limit,
		AdditionalAttempts: req.AdditionalAttempts, Action: req.Action, Manual: store.Manual(req.Manual),
	})
	return RedriveResult(res), adminError(err)
}

// RetryStep runs one dead letter again with additionalAttempts more
// attempts at least (see [Client.RedriveSteps]); the audit rows name the
// action "retry".
func (c *Client) RetryStep(ctx context.Context, id uuid.UUID, additionalAttempts int, m Manual) (RedriveResult, error) {
	return c.RedriveSteps(ctx, RedriveRequest{StepUUIDs: []uuid.UUID{id}, AdditionalAttempts: additionalAttempts, Action: "retry", Manual: m})
}
