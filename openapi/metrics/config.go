package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/runner"
)

// Config configures [New]. Every source is optional: the metrics it feeds
// are left out without it.
type Config struct {
	// Queues is asked at scrape time, in one statement, for the queue depth
	// and the age of the oldest ready step by namespace (usually the
	// runner's [runner.Client]). Every replica reports the same
	// database-wide values: aggregate them with max, not sum.
	Queues QueueReader
	// QueueStats, when set, is used instead of Queues.
	QueueStats func(ctx context.Context) ([]runner.QueueStat, error)
	// QueueTimeout bounds that query. Default [QueueTimeoutDefault].
	QueueTimeout time.Duration
	// Logger reports failed queue queries. Default slog.Default().
	Logger *slog.Logger
}

// QueueTimeoutDefault is the default of [Config.QueueTimeout].
const QueueTimeoutDefault = 2 * time.Second

// RunnerStats is what the metrics read from a runner at scrape time;
// *runner.Runner implements it.
type RunnerStats interface {
	Stats() runner.Stats
	ListenerConnected() bool
}

// EndpointLister is what the metrics read from the handler endpoints at
// scrape time; *callout.Registry implements it.
type EndpointLister interface {
	Endpoints() []callout.EndpointStatus
}

// QueueReader reads the ready queues by namespace; [runner.Client] is one.
type QueueReader interface {
	ReadyQueues(ctx context.Context) ([]runner.QueueStat, error)
}
