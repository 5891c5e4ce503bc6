package runner_test

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

const day = 24 * time.Hour

// retentionHandlers runs "ok" steps to completion, fails "bad" ones for
// good, and holds "held" ones.
func retentionHandlers() (*callout.Funcs, *heldHandler) {
	var funcs callout.Funcs
	funcs.Register("ok", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		return contracts.StepResult{Success: true}, nil
	})
	funcs.Register("bad", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		return contracts.StepResult{}, callout.Permanent(errors.New("no"))
	})
	return &funcs, holdHandler(&funcs, "held")
}

// submitFinished submits tasks of template name in namespace "keep" and
// waits until each is in state want.
func submitFinished(t *testing.T, pool *pgxpool.Pool, c *runner.Client, name string, n int, want string) []uuid.UUID {
	t.Helper()
	reqs := make([]runner.SubmitRequest, n)
	for i := range reqs {
		reqs[i] = runner.SubmitRequest{Namespace: "keep", Name: name}
	}
	subs, err := c.SubmitMany(t.Context(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]uuid.UUID, n)
	for i, s := range subs {
		ids[i] = s.TaskUUID
	}
	waitFor(t, 30*time.Second, "tasks "+want, func() bool {
		for _, id := range ids {
			if taskState(t, pool, id) != want {
				return false
			}
		}
		return true
	})
	return ids
}

func registerRetentionTemplates(t *testing.T, c *runner.Client) {
	t.Helper()
	for _, tpl := range []string{
		"name: good\nnamespace_name: keep\nversion: 1\nsteps:\n  - name: a\n    handler: {callable: ok}\n  - name: b\n    dependencies: [a]\n    handler: {callable: ok}\n",
		"name: failing\nnamespace_name: keep\nversion: 1\nsteps:\n  - name: a\n    handler: {callable: bad}\n    retry: {retryable: false, max_attempts: 1}\n",
		"name: slow\nnamespace_name: keep\nversion: 1\nsteps:\n  - name: a\n    handler: {callable: held}\n",
	} {
		register(t, c, tpl)
	}
}

func taskExists(t *testing.T, pool *pgxpool.Pool, id uuid.UUID) bool {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM tasker.tasks WHERE task_uuid = $1`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// The runner's own retention loop deletes a task it ran, once the clock
// says it is old enough, and logs and reports it; a task still running
// stays, and so does one that finished later.
func TestRetentionThroughTheRunner(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	registerRetentionTemplates(t, client)
	funcs, held := retentionHandlers()
	var offset atomic.Int64 // added to the runner's clock
	obs := newRecordingObserver()
	logs := &lockedBuffer{}
	startRunner(t, pool, runner.Config{
		Handlers: funcs,
		Now:      func() time.Time { return time.Now().Add(time.Duration(offset.Load())) },
		Observer: obs,
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Retention: runner.RetentionConfig{
			Enabled: true, CompleteAfter: 7 * day, FailedAfter: 30 * day, CancelledAfter: 30 * day,
			Interval: 20 * time.Millisecond,
		},
	})
	t.Cleanup(held.letGo) // before the runner stops

	old := submitFinished(t, pool, client, "good", 1, "complete")[0]
	running, err := client.Submit(t.Context(), runner.SubmitRequest{Namespace: "keep", Name: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	<-held.entered
	// The loop runs meanwhile and finds nothing old enough.
	waitFor(t, 10*time.Second, "a retention run", func() bool {
		var runs int
		obs.locked(func() { runs = obs.retentionRuns })
		return runs > 0
	})
	if !taskExists(t, pool, old) {
		t.Fatal("a task completed just now was deleted")
	}

	offset.Store(int64(8 * day))
	young := submitFinished(t, pool, client, "good", 1, "complete")[0] // completed "8 days later"
	waitFor(t, 10*time.Second, "the old task deleted", func() bool { return !taskExists(t, pool, old) })
	var steps int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM tasker.steps WHERE task_uuid = $1`, old).Scan(&steps); err != nil || steps != 0 {
		t.Errorf("%d steps of the deleted task left (%v)", steps, err)
	}
	for name, id := range map[string]uuid.UUID{"running": running.TaskUUID, "completed 8 days later": young} {
		if !taskExists(t, pool, id) {
			t.Errorf("the task %s was deleted", name)
		}
	}
	obs.locked(func() {
		if !maps.Equal(obs.retained, map[runner.TaskState]int{"complete": 1}) {
			t.Errorf("observed deletions %v, want 1 complete", obs.retained)
		}
	})
	waitFor(t, 5*time.Second, "the log line", func() bool {
		return strings.Contains(logs.String(), "retention deleted expired tasks")
	})
	if l := logs.String(); !strings.Contains(l, "tasks=1 complete=1 ") || strings.Count(l, "retention deleted") != 1 {
		t.Errorf("want one line for the run that deleted the task, got:\n%s", l)
	}
}

// Two runners at once: the one holding the retention lock does the work,
// the other skips its run without waiting, and deletes nothing.
func TestRetentionOneRunnerAtATime(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	registerRetentionTemplates(t, client)
	funcs, _ := retentionHandlers()
	startRunner(t, pool, runner.Config{Handlers: funcs})
	submitFinished(t, pool, client, "good", 5, "complete")
	blocked := submitFinished(t, pool, client, "failing", 1, "blocked_by_failures")[0]

	later := func() time.Time { return time.Now().Add(40 * day) }
	ret := runner.RetentionConfig{CompleteAfter: 7 * day, FailedAfter: 30 * day}
	newRunner := func() (*runner.Runner, *recordingObserver) {
		obs := newRecordingObserver()
		r, err := runner.New(pool, runner.Config{Handlers: funcs, Now: later, Retention: ret, Observer: obs, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return r, obs
	}
	a, aObs := newRunner()
	b, bObs := newRunner()

	// Hold the failed step: a's run takes the retention lock, then waits
	// for the step, which it locks to check the task.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // rolled back below
	if _, err := tx.Exec(ctx, `SELECT 1 FROM tasker.steps WHERE task_uuid = $1 FOR UPDATE`, blocked); err != nil {
		t.Fatal(err)
	}
	type result struct {
		run runner.RetentionRun
		err error
	}
	aDone := make(chan result, 1)
	go func() {
		run, err := a.RunRetention(ctx)
		aDone <- result{run, err}
	}()
	waitFor(t, 10*time.Second, "a's run waiting for the step", func() bool {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	})

	// Bounded, so that a b waiting for the lock (or the step) fails here.
	bCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	bRun, err := b.RunRetention(bCtx)
	if err != nil || !bRun.Skipped || bRun.Total() != 0 || bRun.Batches != 0 {
		t.Fatalf("b's run while a's runs = %+v, %v; want skipped", bRun, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	aRes := <-aDone
	want := map[runner.TaskState]int{"complete": 5, "blocked_by_failures": 1}
	if aRes.err != nil || aRes.run.Skipped || !maps.Equal(aRes.run.Deleted, want) || aRes.run.More {
		t.Fatalf("a's run = %+v, %v; want %v deleted", aRes.run, aRes.err, want)
	}
	aObs.locked(func() {
		if aObs.retentionRuns != 1 || !maps.Equal(aObs.retained, want) {
			t.Errorf("a observed %d runs deleting %v", aObs.retentionRuns, aObs.retained)
		}
	})
	bObs.locked(func() {
		if bObs.retentionRuns != 0 {
			t.Errorf("b's skipped run was observed")
		}
	})

	// Released: b's next run gets the lock, and finds nothing left.
	bRun, err = b.RunRetention(ctx)
	if err != nil || bRun.Skipped || bRun.Total() != 0 {
		t.Fatalf("b's run after a's = %+v, %v", bRun, err)
	}
}

// A run is at most MaxBatchesPerRun batches of at most BatchSize tasks;
// the next run goes on from where it stopped, and the one after finds
// nothing.
func TestRetentionRunsAreBounded(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	registerRetentionTemplates(t, client)
	funcs, _ := retentionHandlers()
	startRunner(t, pool, runner.Config{Handlers: funcs})
	submitFinished(t, pool, client, "good", 7, "complete")

	r, err := runner.New(pool, runner.Config{
		Handlers: funcs, Now: func() time.Time { return time.Now().Add(8 * day) }, Logger: testLogger(t),
		Retention: runner.RetentionConfig{CompleteAfter: 7 * day, BatchSize: 2, MaxBatchesPerRun: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []runner.RetentionRun{
		{Deleted: map[runner.TaskState]int{"complete": 4}, Batches: 2, More: true},
		{Deleted: map[runner.TaskState]int{"complete": 3}, Batches: 2}, // 2, then 1 and the end
		{Deleted: map[runner.TaskState]int{}, Batches: 1},
	} {
		got, err := r.RunRetention(ctx)
		if err != nil || got.Skipped || !maps.Equal(got.Deleted, want.Deleted) || got.Batches != want.Batches || got.More != want.More {
			t.Fatalf("run %d = %+v, %v; want %+v", i+1, got, err, want)
		}
	}
}

// Retention's settings are checked with the rest of the configuration.
func TestRetentionConfigIsValidated(t *testing.T) {
	t.Parallel()
	funcs, _ := retentionHandlers()
	for _, rc := range []runner.RetentionConfig{
		{CompleteAfter: -time.Hour},
		{BatchSize: -1},
		{MaxBatchesPerRun: -1},
		{Interval: -time.Second},
	} {
		if _, err := runner.New(nil, runner.Config{Handlers: funcs, Retention: rc}); err == nil || !strings.Contains(err.Error(), "Retention") {
			t.Errorf("%+v: err = %v, want it refused naming Retention", rc, err)
		}
	}
}
