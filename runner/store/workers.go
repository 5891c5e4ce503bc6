package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Worker is a row of the live runner registry.
type Worker struct {
	WorkerID    string
	Hostname    string
	Version     string
	Namespaces  []string
	StartedAt   time.Time
	HeartbeatAt time.Time
	StoppedAt   *time.Time
}

// StaleAfterHeartbeats is how many heartbeat intervals may pass before a
// running worker is considered gone.
const StaleAfterHeartbeats = 3

// Status reports "stopped" for a worker that shut down gracefully, "stale"
// for one whose heartbeat is older than [StaleAfterHeartbeats] intervals
// (it probably died; its leases will be rescued), and "alive" otherwise.
func (w Worker) Status(now time.Time, heartbeatInterval time.Duration) string {
	switch {
	case w.StoppedAt != nil:
		return "stopped"
	case now.Sub(w.HeartbeatAt) > StaleAfterHeartbeats*heartbeatInterval:
		return "stale"
	default:
		return "alive"
	}
}

// RegisterWorker records a runner as started (again, if the id is reused).
func RegisterWorker(ctx context.Context, db DB, w Worker) error {
	if w.Namespaces == nil {
		w.Namespaces = []string{}
	}
	_, err := db.Exec(ctx, `
		INSERT INTO tasker.workers (worker_id, hostname, version, namespaces, started_at, heartbeat_at)
		VALUES ($1, $2, $3, $4, $5, $5)
		ON CONFLICT (worker_id) DO UPDATE SET hostname = EXCLUDED.hostname, version = EXCLUDED.version,
			namespaces = EXCLUDED.namespaces, started_at = EXCLUDED.started_at,
			heartbeat_at = EXCLUDED.heartbeat_at, stopped_at = NULL`,
		w.WorkerID, w.Hostname, w.Version, w.Namespaces, w.StartedAt)
	if err != nil {
		return fmt.Errorf("store: registering worker %s: %w", w.WorkerID, err)
	}
	return nil
}

// HeartbeatWorker records that a runner is alive.
func HeartbeatWorker(ctx context.Context, db DB, workerID string, now time.Time) error {
	if _, err := db.Exec(ctx, `UPDATE tasker.workers SET heartbeat_at = $2 WHERE worker_id = $1`, workerID, now); err != nil {
		return fmt.Errorf("store: worker heartbeat: %w", err)
	}
	return nil
}

// StopWorker records a graceful stop.
func StopWorker(ctx context.Context, db DB, workerID string, now time.Time) error {
	if _, err := db.Exec(ctx, `UPDATE tasker.workers SET stopped_at = $2, heartbeat_at = $2 WHERE worker_id = $1`, workerID, now); err != nil {
		return fmt.Errorf("store: stopping worker: %w", err)
	}
	return nil
}

// ListWorkers returns the registry, most recent heartbeat first.
func ListWorkers(ctx context.Context, db DB) ([]Worker, error) {
	rows, err := db.Query(ctx, `
		SELECT worker_id, hostname, version, namespaces, started_at, heartbeat_at, stopped_at
		FROM tasker.workers ORDER BY heartbeat_at DESC`)
	if err != nil {
		return nil, fmt.Errorf("store: listing workers: %w", err)
	}
	ws, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Worker, error) {
		var w Worker
		err := r.Scan(&w.WorkerID, &w.Hostname, &w.Version, &w.Namespaces, &w.StartedAt, &w.HeartbeatAt, &w.StoppedAt)
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: listing workers: %w", err)
	}
	return ws, nil
}
