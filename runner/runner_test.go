package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

func TestDiamondAndLinearComplete(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, fmt.Sprintf(diamondTemplate, "shop"))
	register(t, client, linearTemplate("shop", 10))

	var mu sync.Mutex
	results := map[string]map[string][]string{} // task -> step -> seen
	var handlers callout.Funcs
	handlers.Register("echo", func(ctx context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		res, err := echoHandler(ctx, env)
		if err == nil {
			var out struct{ Seen []string }
			_ = json.Unmarshal(res.Result, &out)
			slices.Sort(out.Seen)
			mu.Lock()
			if results[env.Task.TaskUUID] == nil {
				results[env.Task.TaskUUID] = map[string][]string{}
			}
			results[env.Task.TaskUUID][env.Step.Name] = out.Seen
			mu.Unlock()
		}
		return res, err
	})
	startRunner(t, pool, runner.Config{Handlers: &handlers})

	d, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "shop", Name: "diamond", Context: json.RawMessage(`{"order":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "shop", Name: "linear"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "both tasks complete", func() bool {
		return taskState(t, pool, d.TaskUUID) == "complete" && taskState(t, pool, l.TaskUUID) == "complete"
	})
	mu.Lock()
	defer mu.Unlock()
	want := map[string][]string{"a": {}, "b": {"a"}, "c": {"a"}, "d": {"a", "b", "c"}}
	for step, seen := range want {
		if got := results[d.TaskUUID.String()][step]; !slices.Equal(got, seen) {
			t.Errorf("diamond step %s saw %v, want %v", step, got, seen)
		}
	}
	for i := range 10 {
		var seen []string
		for j := range i {
			seen = append(seen, fmt.Sprintf("s%d", j))
		}
		slices.Sort(seen)
		if got := results[l.TaskUUID.String()][fmt.Sprintf("s%d", i)]; !slices.Equal(got, seen) {
			t.Errorf("linear step s%d saw %v, want %v", i, got, seen)
		}
	}
}

// Three runners share 10,000 single-step tasks: everything completes and
// no completion is applied twice.
func TestThreeRunnersShareWork(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, "name: one\nnamespace_name: bulk\nversion: 1\nsteps:\n  - name: only\n    handler: {callable: noop}\n")
	const n = 10_000
	reqs := make([]runner.SubmitRequest, n)
	for i := range reqs {
		reqs[i] = runner.SubmitRequest{Namespace: "bulk", Name: "one"}
	}
	if _, err := client.SubmitMany(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	var handlers callout.Funcs
	handlers.Register("noop", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		calls.Add(1)
		return contracts.StepResult{Success: true}, nil
	})
	var rs []*runner.Runner
	for i := range 3 {
		rs = append(rs, startRunner(t, pool, runner.Config{WorkerID: fmt.Sprintf("w%d", i), Handlers: &handlers, MaxConcurrentSteps: 100}))
	}
	waitFor(t, 60*time.Second, "all tasks complete", func() bool {
		var done int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM tasker.tasks WHERE state = 'complete'`).Scan(&done)
		return done == n
	})
	var steps, transitions, distinct int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM tasker.steps WHERE state = 'complete'),
		count(*), count(DISTINCT step_uuid) FROM tasker.step_history WHERE to_state = 'complete'`).Scan(&steps, &transitions, &distinct); err != nil {
		t.Fatal(err)
	}
	if steps != n || transitions != n || distinct != n {
		t.Fatalf("complete steps=%d transitions=%d distinct=%d, want %d each", steps, transitions, distinct, n)
	}
	for _, r := range rs {
		if r.Stats().Completed == 0 {
			t.Errorf("runner %s completed nothing: %+v", r.WorkerID(), r.Stats())
		}
	}
	if calls.Load() != n {
		t.Errorf("handler called %d times, want %d", calls.Load(), n)
	}
}

// A runner that dies mid-step (its context cancelled, no graceful stop)
// leaves its leases behind; another runner finishes the steps once the
// leases expire. Without a poller too: nothing notifies an expiry.
func TestCrashedRunnerLosesNothing(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{runner.ModeHybrid, runner.ModeEventDrivenOnly} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testCrashedRunnerLosesNothing(t, mode)
		})
	}
}

func testCrashedRunnerLosesNothing(t *testing.T, mode string) {
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, "name: one\nnamespace_name: crash\nversion: 1\nsteps:\n  - name: only\n    handler: {callable: work}\n")

	started := make(chan struct{}, 10)
	var stuck callout.Funcs
	stuck.Register("work", func(ctx context.Context, _ *contracts.StepEnvelope) (contracts.StepResult, error) {
		started <- struct{}{}
		<-ctx.Done()
		return contracts.StepResult{}, ctx.Err()
	})
	r1, err := runner.New(pool, runner.Config{WorkerID: "doomed", Mode: mode, Handlers: &stuck, LeaseFor: time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	crashCtx, crash := context.WithCancel(context.Background())
	if err := r1.Start(crashCtx); err != nil {
		t.Fatal(err)
	}
	var tasks []uuid.UUID
	for range 3 {
		s, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "crash", Name: "one"})
		if err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, s.TaskUUID)
	}
	for range 3 {
		<-started
	}
	crash()
	r1.Wait()

	var ok callout.Funcs
	ok.Register("work", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		return contracts.StepResult{Success: true}, nil
	})
	// The rescuer starts before the leases expire: its first claim finds
	// nothing, so only its poller (hybrid) or sweep (event_driven_only,
	// every LeaseFor/3) can find the steps later. Its own leases are longer
	// than the dead runner's, so that a slow machine cannot make it lose
	// one and count a second rescue.
	r2 := startRunner(t, pool, runner.Config{WorkerID: "rescuer", Mode: mode, Handlers: &ok, PollInterval: 100 * time.Millisecond, LeaseFor: 3 * time.Second})
	waitFor(t, 20*time.Second, "rescued tasks complete", func() bool {
		for _, task := range tasks {
			if taskState(t, pool, task) != "complete" {
				return false
			}
		}
		return true
	})
	if got := r2.Stats().Rescued; got != 3 {
		t.Errorf("rescued = %d, want 3", got)
	}
	var attempts []int
	rows, _ := pool.Query(ctx, `SELECT attempts FROM tasker.steps ORDER BY attempts`)
	for rows.Next() {
		var a int
		_ = rows.Scan(&a)
		attempts = append(attempts, a)
	}
	if !slices.Equal(attempts, []int{2, 2, 2}) {
		t.Errorf("attempts = %v, want the crashed attempt counted: [2 2 2]", attempts)
	}
}

// Graceful shutdown gives back the leases of steps still running, without
// consuming their attempts.
func TestGracefulShutdownReleasesLeases(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, "name: one\nnamespace_name: drain\nversion: 1\nsteps:\n  - name: only\n    handler: {callable: slow}\n")
	started := make(chan struct{}, 10)
	var h callout.Funcs
	h.Register("slow", func(ctx context.Context, _ *contracts.StepEnvelope) (contracts.StepResult, error) {
		started <- struct{}{}
		<-ctx.Done()
		return contracts.StepResult{}, ctx.Err()
	})
	r, err := runner.New(pool, runner.Config{Handlers: &h, ShutdownTimeout: 50 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.Start(runCtx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "drain", Name: "one"}); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	<-started
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	var enqueued, attempts, stopped int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'enqueued' AND lease_owner IS NULL), sum(attempts),
		(SELECT count(*) FROM tasker.workers WHERE stopped_at IS NOT NULL) FROM tasker.steps`).Scan(&enqueued, &attempts, &stopped); err != nil {
		t.Fatal(err)
	}
	if enqueued != 2 || attempts != 0 || stopped != 1 {
		t.Fatalf("after graceful stop: enqueued=%d attempts=%d stopped workers=%d, want 2, 0, 1", enqueued, attempts, stopped)
	}
	if got := r.Stats().Released; got != 2 {
		t.Fatalf("released = %d, want 2", got)
	}
}
