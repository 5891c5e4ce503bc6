package runner_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

const oneStep = "name: one\nnamespace_name: %s\nversion: 1\nsteps:\n  - name: only\n    handler: {callable: %s}\n"

// startedAt records when each task's first handler call started.
type startedAt struct{ ch chan time.Time }

func (s *startedAt) handlers() *callout.Funcs {
	var h callout.Funcs
	h.Register("noop", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		s.ch <- time.Now()
		return contracts.StepResult{Success: true}, nil
	})
	return &h
}

// submitAndTime submits one task and returns how long after its commit the
// handler started; the handler can start before Submit returns (the NOTIFY
// goes out at commit), which counts as zero.
func submitAndTime(t *testing.T, client *runner.Client, ns string, s *startedAt) time.Duration {
	t.Helper()
	if _, err := client.Submit(t.Context(), runner.SubmitRequest{Namespace: ns, Name: "one"}); err != nil {
		t.Fatal(err)
	}
	committed := time.Now()
	select {
	case at := <-s.ch:
		return max(0, at.Sub(committed))
	case <-time.After(10 * time.Second):
		t.Fatal("the step never started")
		return 0
	}
}

// The poller is off and its interval an hour, so only NOTIFY can deliver
// these within submitAndTime's deadline: every pick-up proves the
// notification path. How fast it is belongs to the bench (make bench
// measures enqueue to handler start), not to a unit test on a shared
// machine.
func TestEventDrivenOnlyPicksUpByNotification(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, sprintf(oneStep, "events", "noop"))
	s := &startedAt{ch: make(chan time.Time, 1)}
	r := startRunner(t, pool, runner.Config{Mode: runner.ModeEventDrivenOnly, Handlers: s.handlers(), PollInterval: time.Hour})
	waitFor(t, 5*time.Second, "listener connected", r.ListenerConnected)
	for range 8 {
		submitAndTime(t, client, "events", s)
	}
}

func TestPollingOnlyWorksWithoutListen(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, sprintf(oneStep, "polls", "noop"))
	s := &startedAt{ch: make(chan time.Time, 1)}
	r := startRunner(t, pool, runner.Config{WorkerID: "poller", Mode: runner.ModePollingOnly, Handlers: s.handlers(), PollInterval: 50 * time.Millisecond})
	submitAndTime(t, client, "polls", s)
	if r.ListenerConnected() {
		t.Fatal("polling_only runner opened a LISTEN connection")
	}
	var listeners int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`,
		runner.ListenerApplicationName("poller")).Scan(&listeners); err != nil || listeners != 0 {
		t.Fatalf("listener connections = %d (%v), want 0", listeners, err)
	}
}

func TestHybridSurvivesListenerTermination(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, sprintf(oneStep, "hybrid", "noop"))
	s := &startedAt{ch: make(chan time.Time, 1)}
	r := startRunner(t, pool, runner.Config{WorkerID: "survivor", Handlers: s.handlers(), PollInterval: time.Hour, ReconnectInitial: 10 * time.Millisecond})
	waitFor(t, 5*time.Second, "listener connected", r.ListenerConnected)
	submitAndTime(t, client, "hybrid", s)

	terminateListener(t, pool, "survivor")
	waitFor(t, 5*time.Second, "listener reconnected", func() bool {
		return r.Stats().ListenerReconnects >= 1 && r.ListenerConnected()
	})
	// With the poller effectively off (an hour), only the new LISTEN
	// connection can deliver this one within submitAndTime's deadline.
	submitAndTime(t, client, "hybrid", s)
}

func terminateListener(t *testing.T, pool *pgxpool.Pool, worker string) {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`,
		runner.ListenerApplicationName(worker)).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminated %d listener backends (%v), want 1", n, err)
	}
}

// Retries follow the template's backoff; exhausted retries end in error
// and block the task; panics, timeouts and missing handlers are failures
// with Tasker's error types, never a crash.
func TestRetriesAndFailureTypes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	startFailingRunner(t, pool, client)

	submit := func(name string) uuid.UUID {
		s, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "retries", Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return s.TaskUUID
	}
	flaky, panics, slow, missing := submit("flaky"), submit("one"), submit("slow"), submit("missing")
	for _, task := range []uuid.UUID{flaky, panics, slow, missing} {
		waitFor(t, 20*time.Second, "task blocked by failures", func() bool { return taskState(t, pool, task) == "blocked_by_failures" })
	}

	// flaky: 3 attempts; the retries were due 200ms then 400ms after the
	// failure was decided, and neither started before it was due.
	retries, attempts, final := retryHistory(t, pool, flaky)
	if attempts != 3 || len(retries) != 2 || final != "error" {
		t.Fatalf("flaky: %d attempts (%d retries with a due time) ending in %s, want 3 attempts, 2 retries, ending in error", attempts, len(retries), final)
	}
	checkRetryDelays(t, retries, 200*time.Millisecond, 400*time.Millisecond)
	checkFailureTypes(t, pool, map[uuid.UUID]string{
		flaky: contracts.ErrorTypeHandler, panics: contracts.ErrorTypePanic,
		slow: contracts.ErrorTypeTimeout, missing: contracts.ErrorTypeNotFound,
	}, map[uuid.UUID]int{flaky: 3, slow: 1, missing: 1})
}

// startFailingRunner registers templates whose handler fails (retryable
// with backoff), panics, overruns its timeout and is missing, and starts a
// runner for them.
func startFailingRunner(t *testing.T, pool *pgxpool.Pool, client *runner.Client) {
	register(t, client, `
name: flaky
namespace_name: retries
version: 1
steps:
  - name: flaky
    handler: {callable: flaky}
    retry: {retryable: true, max_attempts: 3, backoff: exponential, backoff_base_ms: 200, max_backoff_ms: 10000}
`)
	register(t, client, sprintf(oneStep, "retries", "panics"))
	register(t, client, "name: slow\nnamespace_name: retries\nversion: 1\nsteps:\n  - name: only\n    handler: {callable: sleeps}\n    timeout_seconds: 1\n    retry: {retryable: false}\n")
	register(t, client, "name: missing\nnamespace_name: retries\nversion: 1\nsteps:\n  - name: only\n    handler: {callable: nobody.home}\n    retry: {max_attempts: 1}\n")

	var h callout.Funcs
	h.Register("flaky", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		return contracts.StepResult{}, errors.New("upstream unavailable")
	})
	h.Register("panics", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		panic("boom")
	})
	h.Register("sleeps", func(ctx context.Context, _ *contracts.StepEnvelope) (contracts.StepResult, error) {
		<-ctx.Done()
		time.Sleep(10 * time.Millisecond) // a handler that is late to notice its deadline
		return contracts.StepResult{Success: true}, nil
	})
	// Rand 0.999.. makes the equal jitter give (almost) the full delay.
	startRunner(t, pool, runner.Config{Handlers: &h, PollInterval: 50 * time.Millisecond, Rand: func() float64 { return 0.9999 }})

}

// stepRetry is one retry of a step: when its attempt started, when its failure
// was written, when it was due and when the next attempt started.
type stepRetry struct{ started, failed, due, restarted time.Time }

// retryHistory reads the retries of task's only step from its history,
// with its attempts and final state.
func retryHistory(t *testing.T, pool *pgxpool.Pool, task uuid.UUID) (retries []stepRetry, attempts int, final string) {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT to_state, created_at, (metadata->>'due_at')::timestamptz FROM tasker.step_history WHERE task_uuid = $1 ORDER BY seq, id`, task)
	if err != nil {
		t.Fatal(err)
	}
	var cur stepRetry
	for rows.Next() {
		var state string
		var at time.Time
		var due *time.Time
		if err := rows.Scan(&state, &at, &due); err != nil {
			t.Fatal(err)
		}
		switch {
		case state == "in_progress":
			attempts++
			if !cur.due.IsZero() {
				cur.restarted = at
				retries = append(retries, cur)
			}
			cur = stepRetry{started: at}
		case state == "waiting_for_retry":
			cur.failed = at
		case due != nil:
			cur.due = *due
		}
		final = state
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return retries, attempts, final
}

// checkRetryDelays checks that each retry was due want[i] after its
// failure was decided and did not start before it was due. The decision
// lies between the attempt's start (in_progress) and the write of its
// failure (waiting_for_retry), so the delay the runner chose lies between
// due_at minus those two: bounds that a slow machine widens but cannot
// break, unlike a bound on the gap between attempts.
func checkRetryDelays(t *testing.T, retries []stepRetry, want ...time.Duration) {
	t.Helper()
	const slack = time.Millisecond // timestamps are in microseconds; Go's and PostgreSQL's readings of one clock
	for i, want := range want {
		rt := retries[i]
		if least, most := rt.due.Sub(rt.failed), rt.due.Sub(rt.started); want < least-slack || want > most+slack {
			t.Errorf("flaky: retry %d was due at %s, %s after its attempt started and %s after its failure was written: the delay is not %s",
				i+1, rt.due.Format(time.RFC3339Nano), most, least, want)
		}
		if rt.restarted.Before(rt.due.Add(-slack)) {
			t.Errorf("flaky: attempt %d started at %s, before it was due (%s)", i+2, rt.restarted.Format(time.RFC3339Nano), rt.due.Format(time.RFC3339Nano))
		}
	}

}

// checkFailureTypes checks each task's error_type and, where given, its
// attempts: retried up to the limit; non-retryable failures ran once.
func checkFailureTypes(t *testing.T, pool *pgxpool.Pool, types map[uuid.UUID]string, wantAttempts map[uuid.UUID]int) {
	t.Helper()
	for task, wantType := range types {
		var errType string
		var attempts int
		if err := pool.QueryRow(t.Context(), `SELECT last_error->'error'->>'error_type', attempts FROM tasker.steps WHERE task_uuid = $1`, task).Scan(&errType, &attempts); err != nil {
			t.Fatal(err)
		}
		if errType != wantType {
			t.Errorf("task %s: error_type %q, want %q", task, errType, wantType)
		}
		if want, ok := wantAttempts[task]; ok && attempts != want {
			t.Errorf("task %s (%s): %d attempts, want %d", task, wantType, attempts, want)
		}
	}
}
