package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// QueueStat describes the ready steps of one namespace.
type QueueStat struct {
	Namespace string
	// Ready counts steps claimable now: enqueued, or waiting_for_retry with
	// their run_at passed. Steps whose expired lease awaits rescue are not
	// counted.
	Ready int64
	// OldestAge is how long the oldest of them has been ready (now minus
	// its run_at, by the database's clock); 0 when none is.
	OldestAge time.Duration
}

// readyQueuesSQL reads every namespace's backlog in one statement. The
// steps side is an index-only scan of steps_claimable (its predicate is the
// state filter; it holds namespace and run_at). Namespaces with nothing
// ready are reported with zeros, so gauges fall to 0 instead of vanishing.
const readyQueuesSQL = `
SELECT n.name, coalesce(q.ready, 0), coalesce(q.oldest_age, 0)
FROM tasker.namespaces n
LEFT JOIN (
	SELECT namespace, count(*) AS ready,
		extract(epoch FROM now() - min(run_at))::float8 AS oldest_age
	FROM tasker.steps
	WHERE state IN ('enqueued', 'waiting_for_retry') AND run_at <= now()
	GROUP BY namespace
) q ON q.namespace = n.name
ORDER BY n.name`

// ReadyQueues reports the ready steps of every namespace, in name order, in
// one statement (for the queue-depth metrics, read at scrape time). Its cost
// grows with the backlog: bound ctx.
func ReadyQueues(ctx context.Context, db DB) ([]QueueStat, error) {
	rows, err := db.Query(ctx, readyQueuesSQL)
	if err != nil {
		return nil, fmt.Errorf("store: reading queue depths: %w", err)
	}
	var (
		out []QueueStat
		q   QueueStat
		age float64
	)
	_, err = pgx.ForEachRow(rows, []any{&q.Namespace, &q.Ready, &age}, func() error {
		q.OldestAge = time.Duration(max(age, 0) * float64(time.Second))
		out = append(out, q)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: reading queue depths: %w", err)
	}
	return out, nil
}
