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
	tag, err := db.Exec(ctx, `
		UPDATE tasker.steps SET lease_expires_at = $3, updated_at = $4
		WHERE step_uuid = ANY($2) AND lease_owner = $1 AND state = 'in_progress'`,
		workerID, steps, until, now)
	if err != nil {
		return 0, fmt.Errorf("store: extending %d leases: %w", len(steps), err)
	}
	return int(tag.RowsAffected()), nil
}
