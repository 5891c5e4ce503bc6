package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// Completion is the outcome of one attempt, decided by the runner.
type Completion struct {
	StepUUID uuid.UUID
	// Attempt must equal the attempt the step was claimed with.
	Attempt int
	// Epoch must equal the claim's [ClaimedStep.Epoch]: a write of an
	// earlier claim of the step (same runner and attempt after a release,
	// say) is refused.
	Epoch int64
	// State is one of [contracts.StepStateComplete], [contracts.StepStateWaitingForRetry], [contracts.StepStateError]
	// or [contracts.StepStateEnqueued].
	State contracts.StepState
	// Results is the handler's result (stored for complete steps).
	Results []byte
	// Error describes a failure (stored for waiting_for_retry and error).
	Error []byte
	// RunAt is when a retried or released step becomes claimable again.
	RunAt time.Time
	// Checkpoint, with State [contracts.StepStateEnqueued], records a yielded step's
	// progress: it becomes the step's checkpoint (sent with the next call)
	// and is appended to its checkpoint history, which keeps the latest
	// [CheckpointHistoryMax]; the step's yield count goes up by one.
	Checkpoint []byte
}

// CheckpointHistoryMax is how many checkpoints a step's history keeps (the
// oldest are dropped): every yield rewrites the history, so it must stay
// small however long a worker runs.
const CheckpointHistoryMax = 1000

// CompleteResult reports what a [Complete] call changed.
type CompleteResult struct {
	// Applied lists the completions that took effect, by step.
	Applied map[uuid.UUID]contracts.StepState
	// Stale counts completions refused by the fence: the lease was lost and
	// the step is someone else's (or finished) now.
	Stale int
	// Enqueued counts children that became ready.
	Enqueued int
	// TasksFinished maps finished tasks to their new state.
	TasksFinished map[uuid.UUID]contracts.TaskState
}

// Merge adds o's counts and maps to r's.
func (r *CompleteResult) Merge(o CompleteResult) {
	if r.Applied == nil {
		r.Applied = map[uuid.UUID]contracts.StepState{}
	}
	for k, v := range o.Applied {
		r.Applied[k] = v
	}
	for k, v := range o.TasksFinished {
		if r.TasksFinished == nil {
			r.TasksFinished = map[uuid.UUID]contracts.TaskState{}
		}
		r.TasksFinished[k] = v
	}
	r.Stale += o.Stale
	r.Enqueued += o.Enqueued
}

// completeSQL applies a batch of completions in one statement: the fenced
// step updates, then for completed steps the children's pending_parents
// (enqueueing those that reach zero), then task counters and states, and a
// single pg_notify per namespace that got ready steps. The state triggers
// write every audit row.
const completeSQL = `
WITH input AS (
	SELECT * FROM unnest($2::uuid[], $3::int[], $4::text[], $5::jsonb[], $6::jsonb[], $7::timestamptz[], $10::jsonb[], $12::bigint[])
	    AS i(step_uuid, attempt, new_state, results, err, run_at, ckpt, epoch)
),
done AS (
	UPDATE tasker.steps s SET
		state = i.new_state,
		results = CASE WHEN i.new_state = 'complete' THEN i.results ELSE s.results END,
		last_error = CASE WHEN i.new_state IN ('waiting_for_retry', 'error') THEN i.err ELSE s.last_error END,
		run_at = CASE WHEN i.new_state IN ('waiting_for_retry', 'enqueued') THEN coalesce(i.run_at, $8) ELSE s.run_at END,
		attempts = CASE WHEN i.new_state = 'enqueued' THEN s.attempts - 1 ELSE s.attempts END,
		checkpoint = coalesce(i.ckpt, s.checkpoint),
		yields = CASE WHEN i.ckpt IS NULL THEN s.yields ELSE s.yields + 1 END,
		checkpoint_history = CASE WHEN i.ckpt IS NULL THEN s.checkpoint_history
		                          -- Bounded: each append rewrites the array.
		                          WHEN jsonb_array_length(s.checkpoint_history) >= $11
		                          THEN (s.checkpoint_history - 0) || jsonb_build_array(i.ckpt)
		                          ELSE s.checkpoint_history || jsonb_build_array(i.ckpt) END,
		lease_owner = NULL,
		lease_expires_at = NULL,
		completed_at = CASE WHEN i.new_state = 'complete' THEN $8 ELSE s.completed_at END,
		updated_at = $8
	FROM input i
	WHERE s.step_uuid = i.step_uuid
	  AND s.lease_owner = $1
	  AND s.attempts = i.attempt
	  AND s.lease_epoch = i.epoch
	  -- state = 'in_progress', spelled through steps_lease_consistent (a step
	  -- is in progress exactly when it has a lease owner and expiry): written
	  -- as the state, the planner may walk the in-progress index and test
	  -- every input row against every leased step when its statistics say
	  -- none are leased (quadratic), instead of looking each input up by key.
	  AND s.lease_expires_at IS NOT NULL
	RETURNING s.step_uuid, s.task_uuid, s.namespace, s.state
),
children AS (
	UPDATE tasker.steps c SET
		pending_parents = c.pending_parents - x.n,
		state = CASE WHEN c.pending_parents = x.n THEN 'enqueued' ELSE c.state END,
		run_at = CASE WHEN c.pending_parents = x.n THEN $8 ELSE c.run_at END,
		enqueued_at = CASE WHEN c.pending_parents = x.n THEN $8 ELSE c.enqueued_at END,
		updated_at = $8
	FROM (
		SELECT e.to_step, count(*)::int AS n
		FROM tasker.step_edges e JOIN done d ON d.step_uuid = e.from_step
		WHERE d.state = 'complete'
		GROUP BY e.to_step
	) x
	WHERE c.step_uuid = x.to_step AND c.state = 'pending'
	RETURNING c.step_uuid, c.namespace, c.state
),
task_delta AS (
	SELECT task_uuid,
	       count(*) FILTER (WHERE state = 'complete')::int AS completed,
	       bool_or(state = 'error') AS failed
	FROM done GROUP BY task_uuid
),
tasks_upd AS (
	UPDATE tasker.tasks t SET
		steps_done = t.steps_done + d.completed,
		state = CASE
			WHEN t.state IN ('steps_in_process', 'blocked_by_failures') AND t.steps_done + d.completed = t.steps_total THEN 'complete'
			WHEN t.state = 'steps_in_process' AND d.failed THEN 'blocked_by_failures'
			ELSE t.state END,
		completed_at = CASE WHEN t.steps_done + d.completed = t.steps_total THEN $8 ELSE t.completed_at END,
		updated_at = $8
	FROM task_delta d
	WHERE t.task_uuid = d.task_uuid AND (d.completed > 0 OR d.failed)
	RETURNING t.task_uuid, t.state
),
notified AS (
	SELECT count(pg_notify($9 || namespace, '')) AS n
	FROM (SELECT DISTINCT namespace FROM children WHERE state = 'enqueued') ns
)
SELECT 'step' AS kind, step_uuid, state FROM done
UNION ALL
SELECT 'task', task_uuid, state FROM tasks_upd WHERE state IN ('complete', 'blocked_by_failures')
UNION ALL
SELECT 'ready', NULL, count(*)::text FROM children WHERE state = 'enqueued'
UNION ALL
SELECT 'notified', NULL, n::text FROM notified`

// Complete applies a batch of completions for workerID in one statement
// (one round trip, one transaction). Completions whose fence fails (lease
// lost, attempt or epoch superseded, step no longer in progress) change
// nothing and are counted as stale.
func Complete(ctx context.Context, db DB, workerID string, now time.Time, cs []Completion) (CompleteResult, error) {
	res, _, err := CompleteAndClaim(ctx, db, workerID, now, cs, ClaimParams{})
	return res, err
}

// CompleteAndClaim is [Complete] followed, in the same transaction and
// round trip, by [Claim] with claim (skipped when it asks for no step, as
// [Claim] would be): the runner hands the permits of the steps it completes
// to the steps it claims, and the children this completion makes ready are
// claimable at once. The claim's WorkerID is workerID.
func CompleteAndClaim(ctx context.Context, db DB, workerID string, now time.Time, cs []Completion, claim ClaimParams) (CompleteResult, []ClaimedStep, error) {
	res := CompleteResult{Applied: make(map[uuid.UUID]contracts.StepState, len(cs))}
	if len(cs) == 0 {
		return res, nil, nil
	}
	args, err := completeArgs(workerID, now, cs)
	if err != nil {
		return res, nil, err
	}
	claim.WorkerID = workerID
	claiming := claim.claims()
	var (
		b       pgx.Batch
		claimed []ClaimedStep
	)
	// One pipeline, one implicit transaction: the claim sees the children
	// the completion enqueued, and a failure of either undoes both.
	b.Queue(completeSQL, args...)
	if claiming {
		b.Queue(claimSQL, claim.args()...)
	}
	err = sendBatch(ctx, db, &b, fmt.Sprintf("completing %d steps", len(cs)), func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		if err := scanCompleted(rows, &res); err != nil {
			return err
		}
		if !claiming {
			return nil
		}
		if rows, err = br.Query(); err != nil {
			return err
		}
		claimed, err = scanClaimed(rows, claim.Buf)
		return err
	})
	if err != nil {
		return CompleteResult{Applied: map[uuid.UUID]contracts.StepState{}}, nil, fmt.Errorf("store: completing %d steps: %w", len(cs), err)
	}
	res.Stale = len(cs) - len(res.Applied)
	return res, claimed, nil
}

// completeArgs checks cs and returns completeSQL's arguments, the rows in
// key order.
func completeArgs(workerID string, now time.Time, cs []Completion) ([]any, error) {
	// Present the rows in key order, the order ExtendLeases locks them in:
	// with the input driving the update (the plan for batches this size)
	// the two then wait for each other instead of deadlocking.
	cs = slices.Clone(cs)
	slices.SortFunc(cs, func(a, b Completion) int { return bytes.Compare(a.StepUUID[:], b.StepUUID[:]) })
	var (
		ids      = make([][16]byte, len(cs)) // not uuid.UUID: pgx would encode those via text
		attempts = make([]int32, len(cs))
		epochs   = make([]int64, len(cs))
		states   = make([]string, len(cs))
		results  = make([][]byte, len(cs))
		errs     = make([][]byte, len(cs))
		runAt    = make([]pgtype.Timestamptz, len(cs))
		ckpts    = make([][]byte, len(cs))
	)
	for i, c := range cs {
		switch c.State {
		case contracts.StepStateComplete, contracts.StepStateWaitingForRetry, contracts.StepStateError, contracts.StepStateEnqueued:
		default:
			return nil, fmt.Errorf("store: completion of step %s: state %q is not a completion state", c.StepUUID, c.State)
		}
		ids[i], attempts[i], epochs[i], states[i] = c.StepUUID, int32(c.Attempt), c.Epoch, string(c.State)
		results[i], errs[i], ckpts[i] = nullJSON(c.Results), nullJSON(c.Error), nullJSON(c.Checkpoint)
		if len(c.Checkpoint) > 0 && c.State != contracts.StepStateEnqueued {
			return nil, fmt.Errorf("store: completion of step %s: a checkpoint goes with state %q, not %q", c.StepUUID, contracts.StepStateEnqueued, c.State)
		}
		if !c.RunAt.IsZero() {
			runAt[i] = pgtype.Timestamptz{Time: c.RunAt, Valid: true}
		}
	}
	return []any{workerID, ids, attempts, states, results, errs, runAt, now, ChannelPrefix, ckpts, CheckpointHistoryMax, epochs}, nil
}

// scanCompleted reads the rows of completeSQL into res.
func scanCompleted(rows pgx.Rows, res *CompleteResult) error {
	var (
		kind  string
		id    pgtype.UUID
		state string
	)
	_, err := pgx.ForEachRow(rows, []any{&kind, &id, &state}, func() error {
		switch kind {
		case "step":
			res.Applied[id.Bytes] = contracts.StepState(state)
		case "task":
			if res.TasksFinished == nil {
				res.TasksFinished = map[uuid.UUID]contracts.TaskState{}
			}
			res.TasksFinished[id.Bytes] = contracts.TaskState(state)
		case "ready":
			fmt.Sscan(state, &res.Enqueued)
		}
		return nil
	})
	return err
}

func nullJSON(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
