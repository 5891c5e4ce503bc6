package runner_test

import (
	"context"
	"errors"
	"slices"
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

// The poller is off, so only NOTIFY can deliver these. The median must be
// under 50 ms; the worst only has to be far below any poll, because a
// race-enabled test binary sharing two cores with other packages can be
// descheduled for tens of milliseconds (make bench measures the real figure).
func TestEventDrivenOnlyPicksUpWithin50ms(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, sprintf(oneStep, "events", "noop"))
	s := &startedAt{ch: make(chan time.Time, 1)}
	r := startRunner(t, pool, runner.Config{Mode: runner.ModeEventDrivenOnly, Handlers: s.handlers(), PollInterval: time.Hour})
	waitFor(t, 5*time.Second, "listener connected", r.ListenerConnected)
	// The first submission warms up the connection and plan caches.
	submitAndTime(t, client, "events", s)
	took := make([]time.Duration, 7)
	for i := range took {
		took[i] = submitAndTime(t, client, "events", s)
	}
	slices.Sort(took)
	median, worst := took[len(took)/2], took[len(took)-1]
	if median > 50*time.Millisecond || worst > time.Second {
		t.Fatalf("pick-ups %v: median %s (want < 50ms), worst %s (want < 1s)", took, median, worst)
	}
	t.Logf("pick-ups: median %s, worst %s", median, worst)
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
	// With the poller effectively off, only the new LISTEN connection can
	// deliver this one.
	if d := submitAndTime(t, client, "hybrid", s); d > time.Second {
		t.Fatalf("pick-up after reconnect took %s", d)
	}
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

	// flaky: 3 attempts; the retries waited ~200ms then ~400ms.
	rows, err := pool.Query(ctx, `SELECT to_state, created_at FROM tasker.step_transitions WHERE task_uuid = $1 ORDER BY id`, flaky)
	if err != nil {
		t.Fatal(err)
	}
	var starts []time.Time
	var final string
	for rows.Next() {
		var state string
		var at time.Time
		_ = rows.Scan(&state, &at)
		if state == "in_progress" {
			starts = append(starts, at)
		}
		final = state
	}
	if len(starts) != 3 || final != "error" {
		t.Fatalf("flaky: %d attempts ending in %s, want 3 ending in error", len(starts), final)
	}
	for i, want := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond} {
		gap := starts[i+1].Sub(starts[i])
		if gap < want-20*time.Millisecond || gap > want+600*time.Millisecond {
			t.Errorf("flaky: gap before attempt %d = %s, want about %s", i+2, gap, want)
		}
	}

	for task, wantType := range map[uuid.UUID]string{
		flaky: contracts.ErrorTypeHandler, panics: contracts.ErrorTypePanic,
		slow: contracts.ErrorTypeTimeout, missing: contracts.ErrorTypeNotFound,
	} {
		var errType string
		var attempts int
		if err := pool.QueryRow(ctx, `SELECT last_error->'error'->>'error_type', attempts FROM tasker.steps WHERE task_uuid = $1`, task).Scan(&errType, &attempts); err != nil {
			t.Fatal(err)
		}
		if errType != wantType {
			t.Errorf("task %s: error_type %q, want %q", task, errType, wantType)
		}
		// Retried up to the limit; non-retryable failures ran once.
		if want, ok := map[uuid.UUID]int{flaky: 3, slow: 1, missing: 1}[task]; ok && attempts != want {
			t.Errorf("task %s (%s): %d attempts, want %d", task, wantType, attempts, want)
		}
	}
}
