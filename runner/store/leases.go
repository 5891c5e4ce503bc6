package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// Lease names one claim of a step: the step and the claim's
// [ClaimedStep.Epoch].
type Lease struct {
	StepUUID uuid.UUID
	Epoch    int64
}

// ExtendLeases pushes the lease of workerID's in-flight steps to until, in one
// statement. Only the claims named (step and epoch) are extended. It returns
// how many leases were extended; a step missing from that count was lost
// (rescued by another runner, or written) and its result will be stale.
func ExtendLeases(ctx context.Context, db DB, workerID string, leases []Lease, until, now time.Time) (int, error) {
	if len(leases) == 0 {
		return 0, nil
	}
	ids := make([][16]byte, len(leases))
	epochs := make([]int64, len(leases))
	for i, l := range leases {
		ids[i], epochs[i] = l.StepUUID, l.Epoch
	}
	// Rows are locked in key order, as Complete locks them, so the two
	// cannot deadlock on the same steps.
	tag, err := db.Exec(ctx, `
		WITH locked AS (
			SELECT step_uuid FROM tasker.steps
			WHERE step_uuid = ANY($2::uuid[]) AND lease_owner = $1 AND state = 'in_progress'
			  AND (step_uuid, lease_epoch) IN (SELECT * FROM unnest($2::uuid[], $5::bigint[]))
			ORDER BY step_uuid
			FOR UPDATE
		)
		UPDATE tasker.steps s SET lease_expires_at = $3, updated_at = $4
		FROM locked l WHERE s.step_uuid = l.step_uuid`,
		workerID, ids, until, now, epochs)
	if err != nil {
		return 0, fmt.Errorf("store: extending %d leases: %w", len(leases), err)
	}
	return int(tag.RowsAffected()), nil
}

// LandedCompletions reports which of cs are already written: the step is
// in the completion's state and its lease epoch is the completion's, which
// only that completion can have done (any later claim raises the epoch; a
// cancel or manual resolve leaves another state). A writer whose commit
// outcome was unknown calls it for the completions its re-send found
// stale. It returns the landed steps with their state.
func LandedCompletions(ctx context.Context, db DB, cs []Completion) (map[uuid.UUID]contracts.StepState, error) {
	out := map[uuid.UUID]contracts.StepState{}
	if len(cs) == 0 {
		return out, nil
	}
	ids := make([][16]byte, len(cs))
	epochs := make([]int64, len(cs))
	states := make([]string, len(cs))
	for i, c := range cs {
		ids[i], epochs[i], states[i] = c.StepUUID, c.Epoch, string(c.State)
	}
	rows, err := db.Query(ctx, `
		SELECT s.step_uuid, s.state FROM tasker.steps s
		JOIN unnest($1::uuid[], $2::bigint[], $3::text[]) AS c(step_uuid, epoch, state)
		  ON s.step_uuid = c.step_uuid AND s.lease_epoch = c.epoch AND s.state = c.state
		WHERE s.lease_owner IS NULL`, ids, epochs, states)
	if err != nil {
		return nil, fmt.Errorf("store: checking %d written outcomes: %w", len(cs), err)
	}
	var (
		id    [16]byte
		state string
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &state}, func() error { out[id] = contracts.StepState(state); return nil }); err != nil {
		return nil, fmt.Errorf("store: checking %d written outcomes: %w", len(cs), err)
	}
	return out, nil
}

// ReleaseLostClaims gives back the steps workerID claimed at the given
// times that are still in progress under its lease: claims that rode on an
// outcome write whose reply was lost (the write may have committed, and
// the runner never saw what it claimed). They return to enqueued, ready at
// now, their attempt not consumed. Claims are told apart by their time
// (the claim's Now, stored as last_attempted_at), so a claim the runner did
// see, made at another time, is left alone. It returns the steps released.
func ReleaseLostClaims(ctx context.Context, db DB, workerID string, claimedAt []time.Time, now time.Time) (int, error) {
	if len(claimedAt) == 0 {
		return 0, nil
	}
	var released int
	err := db.QueryRow(ctx, `
		WITH lost AS (
			SELECT step_uuid FROM tasker.steps
			WHERE lease_owner = $1 AND state = 'in_progress' AND last_attempted_at = ANY($2)
			ORDER BY step_uuid
			FOR UPDATE
		),
		released AS (
			UPDATE tasker.steps s SET state = 'enqueued', attempts = s.attempts - 1, lease_owner = NULL,
				lease_expires_at = NULL, run_at = $3, updated_at = $3
			FROM lost l WHERE s.step_uuid = l.step_uuid
			RETURNING s.namespace
		)
		SELECT (SELECT count(*) FROM released)::int,
		       -- The notifications: their count is not needed.
		       (SELECT count(pg_notify($4 || namespace, '')) FROM (SELECT DISTINCT namespace FROM released) ns)
		`, workerID, claimedAt, now, ChannelPrefix).Scan(&released, nil)
	if err != nil {
		return 0, fmt.Errorf("store: releasing claims whose reply was lost: %w", err)
	}
	return released, nil
}
