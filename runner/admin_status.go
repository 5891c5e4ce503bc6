package runner

import (
	"context"
	"time"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// ListWorkers returns the runner processes of the live registry; see
// [Worker.Status].
func (c *Client) ListWorkers(ctx context.Context) ([]Worker, error) {
	rows, err := store.ListWorkers(ctx, c.db)
	return convertAll(rows, func(r store.Worker) Worker { return Worker(r) }), adminError(err)
}

// ListNamespaceQueues returns every namespace's queue depth at now.
func (c *Client) ListNamespaceQueues(ctx context.Context, now time.Time) ([]NamespaceQueue, error) {
	rows, err := store.ListNamespaceQueues(ctx, c.db, now)
	return convertAll(rows, func(r store.NamespaceQueue) NamespaceQueue { return NamespaceQueue(r) }), adminError(err)
}

// ReadyQueues returns every namespace's ready backlog (namespaces with
// nothing ready too, with zeros), in one cheap statement for metrics.
func (c *Client) ReadyQueues(ctx context.Context) ([]QueueStat, error) {
	rows, err := store.ReadyQueues(ctx, c.db)
	return convertAll(rows, func(r store.QueueStat) QueueStat { return QueueStat(r) }), adminError(err)
}
