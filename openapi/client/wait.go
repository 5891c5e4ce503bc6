package client

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// DefaultWaitInterval is how often [WaitTask] reads the task when
// [WaitOptions.Interval] is not set.
const DefaultWaitInterval = 500 * time.Millisecond

// Final reports whether a task in state s is done moving by itself:
// complete, blocked_by_failures (a step failed for good; a retry or a
// resolution by hand can move it again), cancelled or resolved_manually.
func (s TaskState) Final() bool {
	switch s {
	case TaskStateComplete, TaskStateBlockedByFailures, TaskStateCancelled, TaskStateResolvedManually:
		return true
	}
	return false
}

// WaitOptions tune [WaitTask]; the zero value is fine.
type WaitOptions struct {
	// Interval between two reads of the task; DefaultWaitInterval when 0.
	Interval time.Duration
	// OnPoll, when set, is called with every read of the task, the last
	// (final) one included: to show progress.
	OnPoll func(*Task)
}

// WaitTask reads the task id (GET /v1/tasks/{task_uuid}) every
// opts.Interval until it reaches a final state ([TaskState.Final]) and
// returns it, or until ctx ends. A task that ends blocked_by_failures is
// returned without an error: look at its State. An error answer is returned
// as a [*Problem]; when ctx ends first the error wraps ctx.Err() and names
// the last state seen. Give c [WithRetry] to ride out a restarting API.
//
//	res, err := c.SubmitTaskWithResponse(ctx, nil, body)
//	task, _, err := res.Outcome()
//	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
//	defer cancel()
//	task, err = client.WaitTask(ctx, c, task.TaskUuid, nil)
func WaitTask(ctx context.Context, c ClientWithResponsesInterface, id uuid.UUID, opts *WaitOptions) (*Task, error) {
	var o WaitOptions
	if opts != nil {
		o = *opts
	}
	if o.Interval <= 0 {
		o.Interval = DefaultWaitInterval
	}
	var last TaskState
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	for {
		res, err := c.GetTaskWithResponse(ctx, id, nil)
		if err != nil {
			if ctx.Err() != nil {
				return nil, waitEnded(ctx, id, last)
			}
			return nil, fmt.Errorf("client: waiting for task %s: %w", id, err)
		}
		if err := CheckResponse(res.HTTPResponse, res.Body); err != nil {
			return nil, err
		}
		t := res.JSON200
		if t == nil {
			return nil, fmt.Errorf("client: waiting for task %s: unexpected response %s", id, res.Status())
		}
		last = t.State
		if o.OnPoll != nil {
			o.OnPoll(t)
		}
		if t.State.Final() {
			return t, nil
		}
		select {
		case <-ctx.Done():
			return nil, waitEnded(ctx, id, last)
		case <-tick.C:
		}
	}
}

func waitEnded(ctx context.Context, id uuid.UUID, last TaskState) error {
	if last == "" {
		return fmt.Errorf("client: waiting for task %s: %w", id, ctx.Err())
	}
	return fmt.Errorf("client: task %s still %s: %w", id, last, ctx.Err())
}

// SubmitOutcome tells a new task from one submitted before under the same
// idempotency key.
type SubmitOutcome int

const (
	// SubmitCreated: the submission created the task (201 Created).
	SubmitCreated SubmitOutcome = iota + 1
	// SubmitExisting: a task was submitted earlier under the same
	// Idempotency-Key; that task is returned and nothing new was created
	// (200 OK).
	SubmitExisting
)

func (o SubmitOutcome) String() string {
	switch o {
	case SubmitCreated:
		return "created"
	case SubmitExisting:
		return "existing"
	}
	return fmt.Sprintf("SubmitOutcome(%d)", int(o))
}

// Outcome returns the task a submission answered with and whether it was
// created by it (201, [SubmitCreated]) or found under its idempotency key
// (200, [SubmitExisting]). An error answer is returned as a [*Problem].
func (r *SubmitTaskResponse) Outcome() (*Task, SubmitOutcome, error) {
	if err := CheckResponse(r.HTTPResponse, r.Body); err != nil {
		return nil, 0, err
	}
	switch {
	case r.JSON201 != nil:
		return r.JSON201, SubmitCreated, nil
	case r.JSON200 != nil:
		return r.JSON200, SubmitExisting, nil
	}
	return nil, 0, fmt.Errorf("client: submit: unexpected response %s", r.Status())
}
