package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// stepRow is a step as the tests inspect it.
type stepRow struct {
	Name, TemplateStep, State string
	Attempts                  int
	Results, Error            json.RawMessage
}

func taskSteps(t testing.TB, pool *pgxpool.Pool, task uuid.UUID) map[string]stepRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT name, template_step_name, state, attempts, coalesce(results, 'null'), coalesce(last_error, 'null')
		FROM tasker.steps WHERE task_uuid = $1`, task)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]stepRow{}
	for rows.Next() {
		var s stepRow
		if err := rows.Scan(&s.Name, &s.TemplateStep, &s.State, &s.Attempts, &s.Results, &s.Error); err != nil {
			t.Fatal(err)
		}
		out[s.Name] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func names(m map[string]stepRow) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func waitTask(t testing.TB, pool *pgxpool.Pool, task uuid.UUID, want string) {
	t.Helper()
	waitFor(t, 20*time.Second, "task "+want, func() bool { return taskState(t, pool, task) == want })
}

// The approval template: the decision routes by amount; the convergence
// step also depends on the decision step, so it runs once whatever the
// outcome, no_branches included.
const approvalTemplate = `
name: approval
namespace_name: %s
version: "1"
steps:
  - name: validate
    handler: {callable: echo}
  - name: route
    type: decision
    dependencies: [validate]
    handler: {callable: route}
  - name: auto_approve
    dependencies: [route]
    handler: {callable: echo}
  - name: manager_approval
    dependencies: [route]
    handler: {callable: echo}
  - name: finance_review
    dependencies: [route]
    handler: {callable: echo}
  - name: finalize
    type: deferred_convergence
    dependencies: [route, auto_approve, manager_approval, finance_review]
    handler: {callable: finalize}
`

func TestDecisionTakesEachBranch(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, sprintf(approvalTemplate, "approvals"))

	var mu sync.Mutex
	finalized := map[string][]string{} // task -> dependency names the convergence saw
	var h callout.Funcs
	h.Register("echo", echoHandler)
	h.Register("route", func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		var in struct{ Amount int }
		if err := json.Unmarshal(env.Task.Context, &in); err != nil {
			return contracts.StepResult{}, err
		}
		switch {
		case in.Amount == 0:
			return contracts.NoBranches().Result(nil), nil
		case in.Amount < 1000:
			return contracts.CreateSteps("auto_approve").Result(map[string]any{"step": "route"}), nil
		case in.Amount < 5000:
			return contracts.CreateSteps("manager_approval").Result(map[string]any{"step": "route"}), nil
		default:
			return contracts.CreateSteps("manager_approval", "finance_review").Result(map[string]any{"step": "route"}), nil
		}
	})
	h.Register("finalize", func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		seen := make([]string, 0, len(env.DependencyResults))
		for n := range env.DependencyResults {
			seen = append(seen, n)
		}
		sort.Strings(seen)
		mu.Lock()
		defer mu.Unlock()
		if _, twice := finalized[env.Task.TaskUUID]; twice {
			return contracts.StepResult{}, callout.Permanent(errors.New("convergence ran twice"))
		}
		finalized[env.Task.TaskUUID] = seen
		return contracts.StepResult{Success: true}, nil
	})
	startRunner(t, pool, runner.Config{Handlers: &h, PollInterval: 50 * time.Millisecond})

	cases := []struct {
		amount  int
		created []string // steps of the finished task
	}{
		{0, []string{"finalize", "route", "validate"}},
		{500, []string{"auto_approve", "finalize", "route", "validate"}},
		{2000, []string{"finalize", "manager_approval", "route", "validate"}},
		{9000, []string{"finalize", "finance_review", "manager_approval", "route", "validate"}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.amount), func(t *testing.T) {
			sub, err := client.Submit(t.Context(), runner.SubmitRequest{Namespace: "approvals", Name: "approval",
				Context: json.RawMessage(fmt.Sprintf(`{"amount": %d}`, tc.amount))})
			if err != nil {
				t.Fatal(err)
			}
			waitTask(t, pool, sub.TaskUUID, "complete")
			steps := taskSteps(t, pool, sub.TaskUUID)
			if got := names(steps); !slices.Equal(got, tc.created) {
				t.Errorf("steps = %v, want %v", got, tc.created)
			}
			for _, s := range steps {
				if s.State != "complete" || s.Attempts != 1 {
					t.Errorf("step %s: %s after %d attempts", s.Name, s.State, s.Attempts)
				}
			}
			// The convergence step waits for (and sees) exactly the
			// branches taken, plus every ancestor.
			mu.Lock()
			seen := finalized[sub.TaskUUID.String()]
			mu.Unlock()
			want := slices.DeleteFunc(slices.Clone(tc.created), func(n string) bool { return n == "finalize" })
			if !slices.Equal(seen, want) {
				t.Errorf("convergence saw %v, want %v", seen, want)
			}
			var total, done int
			if err := pool.QueryRow(t.Context(), `SELECT steps_total, steps_done FROM tasker.tasks WHERE task_uuid = $1`, sub.TaskUUID).Scan(&total, &done); err != nil {
				t.Fatal(err)
			}
			if total != len(tc.created) || done != total {
				t.Errorf("steps_total %d, steps_done %d, want %d", total, done, len(tc.created))
			}
		})
	}
}

func TestDecisionRefusesUnknownSteps(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, sprintf(approvalTemplate, "approvals"))
	var h callout.Funcs
	h.Register("echo", echoHandler)
	h.Register("finalize", echoHandler)
	var calls atomic.Int32
	h.Register("route", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		calls.Add(1)
		return contracts.CreateSteps("auto_approve", "ghost").Result(nil), nil
	})
	startRunner(t, pool, runner.Config{Handlers: &h, PollInterval: 50 * time.Millisecond})
	sub, err := client.Submit(t.Context(), runner.SubmitRequest{Namespace: "approvals", Name: "approval"})
	if err != nil {
		t.Fatal(err)
	}
	waitTask(t, pool, sub.TaskUUID, "blocked_by_failures")
	steps := taskSteps(t, pool, sub.TaskUUID)
	if got := names(steps); !slices.Equal(got, []string{"route", "validate"}) {
		t.Errorf("steps = %v: an invalid outcome must create nothing", got)
	}
	route := steps["route"]
	var res contracts.StepResult
	if err := json.Unmarshal(route.Error, &res); err != nil {
		t.Fatal(err)
	}
	if route.State != "error" || route.Attempts != 1 || calls.Load() != 1 || res.Error == nil ||
		res.Error.ErrorType != contracts.ErrorTypeInvalidOutcome || res.Error.Retryable ||
		!strings.Contains(res.Error.Message, `step "route": decision_point_outcome.step_names[1]: unknown step "ghost"`) {
		t.Errorf("route: state %s, attempts %d, calls %d, error %s", route.State, route.Attempts, calls.Load(), route.Error)
	}
}

const batchTemplate = `
name: rows
namespace_name: %s
version: "1"
steps:
  - name: analyze
    type: batchable
    handler: {callable: analyze}
    batch_config: {batch_size: 100, worker_template: process, failure_strategy: %s}
  - name: process
    type: batch_worker
    dependencies: [analyze]
    handler: {callable: process}
    retry: {max_attempts: 1}
  - name: aggregate
    type: deferred_convergence
    dependencies: [process]
    handler: {callable: aggregate}
`

// batchHandlers: analyze splits context.rows into context.workers cursors
// (none when rows is 0); each worker sums row ids over its range; aggregate
// adds the workers' results up.
type batchHandlers struct {
	workerCalls atomic.Int32
	fail        func(batchID string, call int32) bool
	mu          sync.Mutex
	aggregated  map[string]aggregate // by task
}

type aggregate struct {
	Workers, Failed int
	Count, Sum      int64
}

func (b *batchHandlers) funcs() *callout.Funcs {
	var h callout.Funcs
	h.Register("analyze", func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		var in struct{ Rows, Workers int64 }
		if err := json.Unmarshal(env.Task.Context, &in); err != nil {
			return contracts.StepResult{}, err
		}
		if in.Rows == 0 {
			return contracts.NoBatches().Result(nil), nil
		}
		return contracts.CreateBatches("process", contracts.EvenCursors(in.Rows, int(in.Workers)), in.Rows).Result(nil), nil
	})
	h.Register("process", func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		call := b.workerCalls.Add(1)
		w, err := env.BatchWorker()
		if err != nil {
			return contracts.StepResult{}, callout.Permanent(err)
		}
		if b.fail != nil && b.fail(w.Cursor.BatchID, call) {
			return contracts.StepResult{}, callout.Permanent(fmt.Errorf("batch %s: bad row", w.Cursor.BatchID))
		}
		start, end, err := w.Cursor.IntRange()
		if err != nil {
			return contracts.StepResult{}, callout.Permanent(err)
		}
		var sum int64
		for id := start; id < end; id++ {
			sum += id
		}
		out, _ := json.Marshal(map[string]int64{"count": end - start, "sum": sum})
		return contracts.StepResult{Success: true, Result: out}, nil
	})
	h.Register("aggregate", func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		var a aggregate
		for name, r := range env.DependencyResults {
			if name == "analyze" {
				continue
			}
			a.Workers++
			if !r.Success {
				a.Failed++
				continue
			}
			var got struct{ Count, Sum int64 }
			if err := json.Unmarshal(r.Result, &got); err != nil {
				return contracts.StepResult{}, callout.Permanent(err)
			}
			a.Count += got.Count
			a.Sum += got.Sum
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.aggregated == nil {
			b.aggregated = map[string]aggregate{}
		}
		b.aggregated[env.Task.TaskUUID] = a
		return contracts.StepResult{Success: true}, nil
	})
	return &h
}

func (b *batchHandlers) result(task uuid.UUID) (aggregate, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, ok := b.aggregated[task.String()]
	return a, ok
}

func submitRows(t testing.TB, client *runner.Client, ns string, rows, workers int) uuid.UUID {
	t.Helper()
	sub, err := client.Submit(context.Background(), runner.SubmitRequest{Namespace: ns, Name: "rows",
		Context: json.RawMessage(fmt.Sprintf(`{"rows": %d, "workers": %d}`, rows, workers))})
	if err != nil {
		t.Fatal(err)
	}
	return sub.TaskUUID
}

func TestBatchOverCursorsConverges(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, sprintf(batchTemplate, "etl", "continue_on_failure"))
	b := &batchHandlers{}
	startRunner(t, pool, runner.Config{Handlers: b.funcs(), PollInterval: 50 * time.Millisecond})

	task := submitRows(t, client, "etl", 1000, 10)
	waitTask(t, pool, task, "complete")
	a, ok := b.result(task)
	if want := (aggregate{Workers: 10, Count: 1000, Sum: 999 * 1000 / 2}); !ok || a != want {
		t.Errorf("aggregate = %+v (ran %v), want %+v", a, ok, want)
	}
	steps := taskSteps(t, pool, task)
	if len(steps) != 12 {
		t.Errorf("steps = %v, want analyze, 10 workers, aggregate", names(steps))
	}
	for i := 1; i <= 10; i++ {
		w, ok := steps[fmt.Sprintf("process_%s", contracts.BatchID(i))]
		if !ok || w.TemplateStep != "process" || w.State != "complete" {
			t.Errorf("worker %d: %+v", i, w)
		}
	}

	// no_batches: one placeholder worker, completed without its handler.
	calls := b.workerCalls.Load()
	task = submitRows(t, client, "etl", 0, 10)
	waitTask(t, pool, task, "complete")
	steps = taskSteps(t, pool, task)
	if got := names(steps); !slices.Equal(got, []string{"aggregate", "analyze", "process_000"}) {
		t.Errorf("no_batches steps = %v", got)
	}
	if b.workerCalls.Load() != calls {
		t.Error("the no-op worker's handler was called")
	}
	if a, ok := b.result(task); !ok || a.Workers != 1 || a.Count != 0 {
		t.Errorf("no_batches aggregate = %+v (ran %v)", a, ok)
	}
}

func TestBatchFailureStrategies(t *testing.T) {
	t.Parallel()
	// The first worker to run fails for good; with one step at a time the
	// other nine have not started then.
	failFirst := func(_ string, call int32) bool { return call == 1 }
	// run starts a one-step-at-a-time runner and a 100-row, 10-worker task
	// of a batch with the given failure strategy.
	run := func(t *testing.T, strategy string) (*pgxpool.Pool, *batchHandlers, uuid.UUID) {
		pool := pgtest.Pool(t)
		client := runner.NewClient(pool, runner.ClientConfig{})
		register(t, client, sprintf(batchTemplate, "etl", strategy))
		b := &batchHandlers{fail: failFirst}
		startRunner(t, pool, runner.Config{Handlers: b.funcs(), MaxConcurrentSteps: 1, PollInterval: 50 * time.Millisecond})
		return pool, b, submitRows(t, client, "etl", 100, 10)
	}

	t.Run("continue_on_failure", func(t *testing.T) {
		t.Parallel()
		pool, b, task := run(t, "continue_on_failure")
		waitTask(t, pool, task, "complete")
		if a, _ := b.result(task); a.Workers != 10 || a.Failed != 1 || a.Count != 90 {
			t.Errorf("aggregate = %+v, want 10 workers, 1 failed, 90 rows", a)
		}
	})

	t.Run("fail_fast", func(t *testing.T) {
		t.Parallel()
		pool, b, task := run(t, "fail_fast")
		waitTask(t, pool, task, "blocked_by_failures")
		states := map[string]int{}
		for _, s := range taskSteps(t, pool, task) {
			if s.TemplateStep == "process" {
				states[s.State]++
			}
		}
		if states["error"] != 1 || states["cancelled"] != 9 || b.workerCalls.Load() != 1 {
			t.Errorf("worker states %v after %d worker calls; want 1 error, 9 cancelled", states, b.workerCalls.Load())
		}
		if _, ran := b.result(task); ran {
			t.Error("convergence ran after a fail_fast failure")
		}
	})

	t.Run("isolate", func(t *testing.T) {
		t.Parallel()
		pool, b, task := run(t, "isolate")
		// The other workers finish; the failed one waits for a person.
		var failed uuid.UUID
		waitFor(t, 20*time.Second, "nine workers complete", func() bool {
			n := 0
			for _, s := range taskSteps(t, pool, task) {
				if s.TemplateStep == "process" && s.State == "complete" {
					n++
				}
			}
			return n == 9
		})
		if err := pool.QueryRow(t.Context(), `SELECT step_uuid FROM tasker.steps WHERE task_uuid = $1 AND state = 'error'`, task).Scan(&failed); err != nil {
			t.Fatal(err)
		}
		if st := taskState(t, pool, task); st != "blocked_by_failures" {
			t.Errorf("task %s, want blocked_by_failures", st)
		}
		if _, ran := b.result(task); ran {
			t.Fatal("convergence ran before the isolated worker was resolved")
		}
		if _, err := store.ResolveStep(t.Context(), pool, failed, []byte(`{"success": true, "result": {"count": 10, "sum": 0}}`), store.Manual{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		waitTask(t, pool, task, "complete")
		if a, _ := b.result(task); a.Workers != 10 || a.Count != 100 {
			t.Errorf("aggregate = %+v", a)
		}
	})
}

func TestOutcomeLimits(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, sprintf(batchTemplate, "etl", "continue_on_failure"))
	register(t, client, sprintf(approvalTemplate, "approvals"))
	b := &batchHandlers{}
	h := b.funcs()
	h.Register("echo", echoHandler)
	h.Register("finalize", echoHandler)
	h.Register("route", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		return contracts.CreateSteps("manager_approval", "finance_review").Result(nil), nil
	})
	// Ten cursors are 11 steps with the convergence: over 10 per outcome.
	// The approval task has 2 steps and would reach 5: over 4 per task.
	startRunner(t, pool, runner.Config{Handlers: h, MaxStepsPerOutcome: 10, MaxStepsPerTask: 4, PollInterval: 50 * time.Millisecond})

	check := func(task uuid.UUID, step, want string, before []string) {
		t.Helper()
		waitTask(t, pool, task, "blocked_by_failures")
		steps := taskSteps(t, pool, task)
		if got := names(steps); !slices.Equal(got, before) {
			t.Errorf("steps = %v, want %v (nothing created)", got, before)
		}
		var res contracts.StepResult
		_ = json.Unmarshal(steps[step].Error, &res)
		if steps[step].State != "error" || res.Error == nil || res.Error.ErrorType != contracts.ErrorTypeStepLimit || !strings.Contains(res.Error.Message, want) {
			t.Errorf("%s: %s, error %s", step, steps[step].State, steps[step].Error)
		}
	}
	check(submitRows(t, client, "etl", 100, 10), "analyze", "would create 11 steps; the limit per outcome is 10", []string{"analyze"})
	sub, err := client.Submit(t.Context(), runner.SubmitRequest{Namespace: "approvals", Name: "approval"})
	if err != nil {
		t.Fatal(err)
	}
	check(sub.TaskUUID, "route", "would bring the task to 5 steps; the limit per task is 4", []string{"route", "validate"})
}

// A step created by an outcome may also wait for a step that is running
// elsewhere at that moment: neither side may miss the other, whichever
// commits first. Two runners, many tasks, tiny batches.
func TestGrowthRacesParentCompletion(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, `
name: race
namespace_name: race
version: "1"
steps:
  - {name: start, handler: {callable: echo}}
  - {name: decide, type: decision, dependencies: [start], handler: {callable: decide}}
  - {name: side, dependencies: [start], handler: {callable: echo}}
  - {name: branch, dependencies: [decide], handler: {callable: echo}}
  - {name: join, type: deferred_convergence, dependencies: [branch, side], handler: {callable: echo}}
`)
	var h callout.Funcs
	h.Register("echo", echoHandler)
	h.Register("decide", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		return contracts.CreateSteps("branch").Result(map[string]any{"step": "decide"}), nil
	})
	for i := range 2 {
		startRunner(t, pool, runner.Config{WorkerID: fmt.Sprint("racer-", i), Handlers: &h, MaxConcurrentSteps: 1, PollInterval: 20 * time.Millisecond})
	}
	reqs := make([]runner.SubmitRequest, 200)
	for i := range reqs {
		reqs[i] = runner.SubmitRequest{Namespace: "race", Name: "race"}
	}
	subs, err := client.SubmitMany(t.Context(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "every task complete", func() bool {
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM tasker.tasks WHERE state = 'complete'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == len(subs)
	})
	var joins int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM tasker.steps WHERE name = 'join' AND state = 'complete'`).Scan(&joins); err != nil {
		t.Fatal(err)
	}
	if joins != len(subs) {
		t.Errorf("%d joins complete, want %d", joins, len(subs))
	}
}

// A malformed outcome (here a batch id that cannot be part of a step name)
// and a missing one both fail the step for good and create nothing.
func TestMalformedOutcomesFailTheStep(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, sprintf(batchTemplate, "etl", "continue_on_failure"))
	var h callout.Funcs
	h.Register("analyze", func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		var in struct{ Rows int64 }
		_ = json.Unmarshal(env.Task.Context, &in)
		if in.Rows == 0 {
			return contracts.StepResult{Success: true, Result: json.RawMessage(`{"note": "forgot the outcome"}`)}, nil
		}
		return contracts.StepResult{Success: true, Result: json.RawMessage(
			`{"batch_processing_outcome": {"type": "create_batches", "worker_template_name": "process",
			  "cursor_configs": [{"batch_id": "a b", "start_cursor": 0, "end_cursor": 1, "batch_size": 1}]}}`)}, nil
	})
	startRunner(t, pool, runner.Config{Handlers: &h, PollInterval: 50 * time.Millisecond})
	for _, tc := range []struct {
		rows int
		want string
	}{
		{1, `step "analyze": batch_processing_outcome.cursor_configs[0].batch_id: "a b": use at most 64 letters`},
		{0, `batchable step "analyze" returned no result.batch_processing_outcome`},
	} {
		task := submitRows(t, client, "etl", tc.rows, 1)
		waitTask(t, pool, task, "blocked_by_failures")
		steps := taskSteps(t, pool, task)
		var res contracts.StepResult
		_ = json.Unmarshal(steps["analyze"].Error, &res)
		if len(steps) != 1 || res.Error == nil || res.Error.ErrorType != contracts.ErrorTypeInvalidOutcome || !strings.Contains(res.Error.Message, tc.want) {
			t.Errorf("rows %d: steps %v, error %s; want %q", tc.rows, names(steps), steps["analyze"].Error, tc.want)
		}
	}
}
