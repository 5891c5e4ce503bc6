package runner

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner/store"
)

// Defaults of [RetentionConfig].
const (
	RetentionIntervalDefault         = time.Minute
	RetentionBatchSizeDefault        = 1000
	RetentionBatchMaxStepsDefault    = 10_000
	RetentionMaxBatchesPerRunDefault = 10
)

// RetentionConfig configures the deletion of finished tasks, with their
// steps, edges and history, once they are older than their final state's
// age. Runners share the work: each tries every Interval (jittered ±20%),
// and one at a time (PostgreSQL advisory lock [store.RetentionLockKey])
// runs; the others skip their turn. A run is at most MaxBatchesPerRun
// transactions, each of at most BatchSize tasks and BatchMaxSteps steps;
// the next run goes on where it stopped. Tasks not finished are never
// deleted.
type RetentionConfig struct {
	// Enabled runs retention with the runner. Default false: the library
	// keeps everything unless asked; serve sets it from [worker.retention],
	// where it is on by default.
	Enabled bool
	// CompleteAfter is how long complete and resolved_manually tasks are
	// kept after they finished; 0 keeps them.
	CompleteAfter time.Duration
	// FailedAfter is how long blocked_by_failures tasks are kept after
	// their last change; 0 keeps them. One with a step still enqueued,
	// in_progress or waiting_for_retry is kept anyway.
	FailedAfter time.Duration
	// CancelledAfter is how long cancelled tasks are kept; 0 keeps them.
	CancelledAfter time.Duration
	// Interval is the mean time between two runs. Default 1m.
	Interval time.Duration
	// BatchSize is the most tasks one transaction examines and deletes.
	// Default 1000.
	BatchSize int
	// BatchMaxSteps is the most steps of the tasks one transaction
	// deletes (a bigger task goes alone). Default 10,000.
	BatchMaxSteps int
	// MaxBatchesPerRun bounds one run. Default 10.
	MaxBatchesPerRun int
}

func (c *RetentionConfig) withDefaults() {
	c.Interval = cmp.Or(c.Interval, RetentionIntervalDefault)
	c.BatchSize = cmp.Or(c.BatchSize, RetentionBatchSizeDefault)
	c.BatchMaxSteps = cmp.Or(c.BatchMaxSteps, RetentionBatchMaxStepsDefault)
	c.MaxBatchesPerRun = cmp.Or(c.MaxBatchesPerRun, RetentionMaxBatchesPerRunDefault)
}

func (c *RetentionConfig) validate() []error {
	var errs []error
	if c.CompleteAfter < 0 || c.FailedAfter < 0 || c.CancelledAfter < 0 {
		errs = append(errs, fmt.Errorf("Retention ages must be >= 0 (0 keeps), got %s, %s and %s", c.CompleteAfter, c.FailedAfter, c.CancelledAfter))
	}
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("Retention.Interval must be > 0, got %s", c.Interval))
	}
	if c.BatchSize < 1 || c.BatchMaxSteps < 1 || c.MaxBatchesPerRun < 1 {
		errs = append(errs, fmt.Errorf("Retention.BatchSize, BatchMaxSteps and MaxBatchesPerRun must be >= 1, got %d, %d and %d",
			c.BatchSize, c.BatchMaxSteps, c.MaxBatchesPerRun))
	}
	return errs
}

// keepsAll reports whether every state is kept forever.
func (c *RetentionConfig) keepsAll() bool {
	return c.CompleteAfter <= 0 && c.FailedAfter <= 0 && c.CancelledAfter <= 0
}

// RetentionRun reports one run of [Runner.RunRetention].
type RetentionRun struct {
	// Skipped is set when another runner was at it: nothing was done.
	Skipped bool
	// Deleted counts the tasks deleted by their state (complete,
	// resolved_manually, blocked_by_failures, cancelled).
	Deleted map[TaskState]int
	// Batches is the number of transactions run.
	Batches int
	// More is set when the run stopped at MaxBatchesPerRun before the end
	// of the tasks to look at; the next run goes on from there.
	More bool
	// Took is how long the run took.
	Took time.Duration
}

// Total returns the number of tasks deleted.
func (r RetentionRun) Total() int {
	n := 0
	for _, c := range r.Deleted {
		n += c
	}
	return n
}

// retainer runs retention every Interval (jittered ±20%); [Runner.RunRetention]
// runs it once. It stops with claiming: a graceful stop cancels a run in
// progress (its transaction rolls back) rather than wait for it.
type retainer struct {
	cfg    RetentionConfig
	pool   *pgxpool.Pool
	now    func() time.Time
	jitter func(d time.Duration, f float64) time.Duration
	obs    Observer
	log    *slog.Logger
	startStop

	// mu makes runs of one runner take turns; after is where the walk over
	// the tasks stands.
	mu    sync.Mutex
	after uuid.UUID
}

// Start starts the periodic runs.
func (t *retainer) Start(ctx context.Context) error { return t.start(ctx, t.loop) }

func (t *retainer) loop(ctx context.Context) {
	next := func() time.Duration { return t.jitter(t.cfg.Interval, 0.2) }
	timer := time.NewTimer(next())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if _, err := t.run(ctx); err != nil && ctx.Err() == nil {
			t.log.Warn("retention", "err", err)
		}
		timer.Reset(next())
	}
}

// RunRetention runs retention once, with [Config.Retention]'s ages and
// bounds, whether or not it is Enabled: it takes the retention lock (or
// returns at once, Skipped, when another runner holds it), then deletes
// expired tasks in up to MaxBatchesPerRun transactions, going on from where
// this runner's previous run stopped. A run that deleted something is
// logged and every run that took the lock is reported to the
// [Observer]. An error stops the run; what it deleted before stays deleted
// and is reported.
func (r *Runner) RunRetention(ctx context.Context) (RetentionRun, error) {
	return r.retainer.run(ctx)
}

func (t *retainer) run(ctx context.Context) (RetentionRun, error) {
	run := RetentionRun{Deleted: map[TaskState]int{}}
	if t.cfg.keepsAll() {
		return run, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	start := time.Now()
	lock, err := store.TryRetentionLock(ctx, t.pool)
	if err != nil {
		return run, fmt.Errorf("runner: retention: %w", err)
	}
	if lock == nil {
		run.Skipped = true
		t.log.Debug("retention skipped: another runner is at it")
		return run, nil
	}
	defer lock.Release(ctx)
	err = t.batches(ctx, lock.Conn(), &run)
	run.More = err == nil && t.after != uuid.Nil
	run.Took = time.Since(start)
	t.obs.RetentionDone(maps.Clone(run.Deleted), run.Took)
	if n := run.Total(); n > 0 {
		t.log.Info("retention deleted expired tasks", "tasks", n,
			"complete", run.Deleted[contracts.TaskStateComplete], "resolved_manually", run.Deleted[contracts.TaskStateResolvedManually],
			"blocked_by_failures", run.Deleted[contracts.TaskStateBlockedByFailures], "cancelled", run.Deleted[contracts.TaskStateCancelled],
			"batches", run.Batches, "more", run.More, "took", run.Took.Round(time.Millisecond))
	}
	return run, err
}

// batches deletes expired tasks in up to MaxBatchesPerRun transactions on
// db, which holds the retention lock.
func (t *retainer) batches(ctx context.Context, db store.DB, run *RetentionRun) error {
	rc := t.cfg

	for run.Batches < rc.MaxBatchesPerRun {
		res, err := store.DeleteExpiredTasks(ctx, db, store.RetentionParams{
			Now:            t.now(),
			CompleteAfter:  rc.CompleteAfter,
			FailedAfter:    rc.FailedAfter,
			CancelledAfter: rc.CancelledAfter,
			Limit:          rc.BatchSize,
			MaxSteps:       rc.BatchMaxSteps,
			After:          t.after,
		})
		if err != nil {
			return fmt.Errorf("runner: retention: %w", err)
		}
		run.Batches++
		for s, n := range res.Deleted {
			run.Deleted[s] += n
		}
		t.after = res.Next
		if res.Done {
			t.after = uuid.Nil // the next run starts again from the oldest task
			return nil
		}
	}
	return nil
}
