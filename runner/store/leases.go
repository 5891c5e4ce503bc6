package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// ExtendLeases pushes the lease of workerID's in-flight steps to until, in one
// statement. It returns how many leases were extended; a step missing from
// that count was lost (rescued by another runner) and its result will be
// stale.
func ExtendLeases(ctx context.Context, db DB, workerID string, steps []uuid.UUID, until, now time.Time) (int, error) {
	if len(steps) == 0 {
		return 0, nil
	}
	// Rows are locked in key order, as Complete locks them, so the two
	// cannot deadlock on the same steps.
	tag, err := db.Exec(ctx, `
		WITH locked AS (
			SELECT step_uuid FROM tasker.steps
			WHERE step_uuid = ANY($2) AND lease_owner = $1 AND state = 'in_progress'
			ORDER BY step_uuid
			FOR UPDATE
		)
		UPDATE tasker.steps s SET lease_expires_at = $3, updated_at = $4
		FROM locked l WHERE s.step_uuid = l.step_uuid`,
		workerID, steps, until, now)
	if err != nil {
		return 0, fmt.Errorf("store: extending %d leases: %w", len(steps), err)
	}
	return int(tag.RowsAffected()), nil
}
