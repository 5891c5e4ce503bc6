package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// ClaimParams configures [Claim].
type ClaimParams struct {
	WorkerID string
	// Namespaces to claim from; at least one.
	Namespaces []string
	// Limit is the most steps to claim: the runner's free permits.
	Limit int
	// Now is the claim time; steps whose run_at is later wait.
	Now time.Time
	// LeaseFor is how long the lease lasts before another runner may rescue it.
	LeaseFor time.Duration
	// Buf, when not nil, is reused for the result (rows are appended to
	// Buf[:0]): a claim loop that copies the steps out before its next
	// claim passes the previous result back and allocates no new slice.
	Buf []ClaimedStep
}

// ClaimedStep is a leased step hydrated with everything its handler needs.
type ClaimedStep struct {
	StepUUID         uuid.UUID
	TaskUUID         uuid.UUID
	Namespace        string
	Name             string
	TemplateStepName string
	Handler          string
	Type             string
	// Attempt is this attempt's number (1 on the first run). A release,
	// yield or open breaker gives it back, so a later claim may repeat it.
	Attempt int
	// Epoch identifies this claim: every claim of the step takes a larger
	// one. Completions, lease extensions and releases present it (the fence).
	Epoch        int64
	MaxAttempts  int
	Retryable    bool
	RetryPolicy  json.RawMessage
	TimeoutMs    int
	Inputs       json.RawMessage
	Checkpoint   json.RawMessage
	LeaseExpires time.Time
	// Rescued is true when the step's previous lease had expired.
	Rescued bool
	// Yields counts the step's yields so far (checkpoints saved with a
	// request to run again).
	Yields int
	// EnqueuedAt is when the step became ready (its run_at).
	EnqueuedAt time.Time

	TemplateID          int64
	TemplateName        string
	TemplateVersion     string
	Context             json.RawMessage
	CorrelationID       uuid.UUID
	ParentCorrelationID uuid.NullUUID
	Priority            int
	Tags                []string
	// DependencyResults maps each completed ancestor's name to its result.
	DependencyResults map[string]json.RawMessage
}

// claimSQL leases up to $3 steps in one round trip: ready steps (enqueued,
// or waiting_for_retry whose run_at passed) of the given namespaces in
// priority then run_at order, and in_progress steps whose lease expired (a
// runner died). Each gets a new attempt, lease and lease epoch; the
// statement returns it joined with its task and every ancestor's result
// (ancestors found through step_edges, only for steps that have parents).
// The per-namespace LATERAL keeps each scan on the claim index in index
// order. The steps and tasks are looked up with = ANY(ARRAY(...)), which
// the planner costs as a handful of keys: joined to a CTE whose size it
// guesses from LIMIT $3 (a tenth of the table in a generic plan) it chose
// hash joins over whole-table scans. A rescue (the step was in_progress)
// is told by its claimed_at: the steps_claim_ends trigger clears it, since
// a rescue's history is a row (migration 0011).
const claimSQL = `
WITH ready AS (
	SELECT r.step_uuid, r.priority, r.run_at
	FROM unnest($2::text[]) AS ns(name),
	LATERAL (
		SELECT s.step_uuid, s.priority, s.run_at
		FROM tasker.steps s
		WHERE s.namespace = ns.name
		  AND s.state IN ('enqueued', 'waiting_for_retry')
		  AND s.run_at <= $4
		ORDER BY s.priority DESC, s.run_at
		LIMIT $3
		FOR UPDATE SKIP LOCKED
	) r
),
expired AS (
	SELECT s.step_uuid, s.priority, s.run_at
	FROM tasker.steps s
	WHERE s.state = 'in_progress' AND s.lease_expires_at <= $4 AND s.namespace = ANY($2)
	ORDER BY s.lease_expires_at
	LIMIT $3
	FOR UPDATE SKIP LOCKED
),
claimed AS (
	UPDATE tasker.steps s SET
		state = 'in_progress',
		attempts = s.attempts + 1,
		lease_epoch = s.lease_epoch + 1,
		lease_owner = $1,
		lease_expires_at = $4 + $5::interval,
		last_attempted_at = $4,
		claimed_at = $4,
		claimed_by = $1,
		updated_at = $4
	WHERE s.step_uuid = ANY (ARRAY(
		SELECT step_uuid FROM (SELECT * FROM expired UNION ALL SELECT * FROM ready) c
		ORDER BY priority DESC, run_at
		LIMIT $3))
	RETURNING s.step_uuid, s.task_uuid, s.namespace, s.name, s.template_step_name, s.handler, s.type,
	          s.attempts, s.lease_epoch, s.max_attempts, s.retryable, s.retry_policy, coalesce(s.timeout_ms, 0) AS timeout_ms,
	          s.inputs, s.checkpoint, s.lease_expires_at, s.claimed_at IS NULL AS rescued, s.run_at, s.parents, s.yields
)
SELECT c.step_uuid, c.task_uuid, c.namespace, c.name, c.template_step_name, c.handler, c.type,
       c.attempts, c.lease_epoch, c.max_attempts, c.retryable, c.retry_policy, c.timeout_ms, c.inputs, c.checkpoint,
       c.lease_expires_at, c.rescued, c.run_at, c.yields,
       t.template_id, t.template_name, t.template_version, t.context, t.correlation_id, t.parent_correlation_id,
       t.priority, t.tags,
       CASE WHEN c.parents = 0 THEN NULL ELSE tasker.dependency_results(c.step_uuid) END AS dependency_results
FROM claimed c JOIN tasker.tasks t ON t.task_uuid = c.task_uuid
  AND t.task_uuid = ANY (ARRAY(SELECT task_uuid FROM claimed))`

// Claim leases up to p.Limit claimable steps for p.WorkerID and returns them
// hydrated. It is one statement and one round trip whatever the count.
func Claim(ctx context.Context, db DB, p ClaimParams) ([]ClaimedStep, error) {
	if !p.claims() {
		return nil, nil
	}
	rows, err := db.Query(ctx, claimSQL, p.args()...)
	if err != nil {
		return nil, fmt.Errorf("store: claiming steps: %w", err)
	}
	out, err := scanClaimed(rows, p.Buf)
	if err != nil {
		return out, fmt.Errorf("store: claiming steps: %w", err)
	}
	return out, nil
}

// claims reports whether p asks for any step: a positive limit and at
// least one namespace.
func (p ClaimParams) claims() bool { return p.Limit > 0 && len(p.Namespaces) > 0 }

func (p ClaimParams) args() []any {
	return []any{p.WorkerID, p.Namespaces, p.Limit, p.Now, p.LeaseFor}
}

// scanClaimed reads the rows of claimSQL, appending to buf[:0].
func scanClaimed(rows pgx.Rows, buf []ClaimedStep) ([]ClaimedStep, error) {
	var (
		out    = buf[:0]
		c      ClaimedStep
		deps   []byte
		parent pgtype.UUID
		// jsonb is scanned as raw bytes (pgx copies them for each row); a
		// json.RawMessage target would be re-parsed by encoding/json.
		policy, inputs, checkpoint, taskCtx []byte
	)
	// UUIDs are scanned as [16]byte: as a uuid.UUID (an sql.Scanner) each
	// would travel through its text form.
	_, err := pgx.ForEachRow(rows, []any{
		(*[16]byte)(&c.StepUUID), (*[16]byte)(&c.TaskUUID), &c.Namespace, &c.Name, &c.TemplateStepName, &c.Handler, &c.Type,
		&c.Attempt, &c.Epoch, &c.MaxAttempts, &c.Retryable, &policy, &c.TimeoutMs, &inputs, &checkpoint,
		&c.LeaseExpires, &c.Rescued, &c.EnqueuedAt, &c.Yields,
		&c.TemplateID, &c.TemplateName, &c.TemplateVersion, &taskCtx, (*[16]byte)(&c.CorrelationID), &parent,
		&c.Priority, &c.Tags, &deps,
	}, func() error {
		step := c
		step.DependencyResults = nil
		if len(deps) > 0 {
			if err := json.Unmarshal(deps, &step.DependencyResults); err != nil {
				return fmt.Errorf("decoding dependency results of step %s: %w", c.StepUUID, err)
			}
		}
		step.RetryPolicy, step.Inputs, step.Checkpoint, step.Context = policy, inputs, checkpoint, taskCtx
		step.ParentCorrelationID = uuid.NullUUID{UUID: parent.Bytes, Valid: parent.Valid}
		// The scan targets are reused for every row: copy what they alias.
		step.Tags = append([]string(nil), c.Tags...)
		out = append(out, step)
		return nil
	})
	return out, err
}
