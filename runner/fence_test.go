package runner_test

import (
	"context"
	"encoding/json"
	"log/slog"
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

// fenceRig is a runner whose connections go through a [pgtest.Proxy], with
// a gated handler for step s0 of a two-step chain (s0 -> s1) and a record
// of its events.
type fenceRig struct {
	pool    *pgxpool.Pool // direct, for the test's own reads
	proxy   *pgtest.Proxy
	runner  *runner.Runner
	task    uuid.UUID
	entered chan int             // s0's handler was called (its call number)
	release chan struct{}        // lets s0's handler return
	retries atomic.Int64         // failed outcome writes the completer retried
	mu      sync.Mutex           // guards events
	events  []runner.Event       // s0's, in order
	first   contracts.StepResult // s0's first result; later calls complete
}

func newFenceRig(t *testing.T, ns string, first contracts.StepResult, claimWithCompletions bool) *fenceRig {
	t.Helper()
	ctx := t.Context()
	url := pgtest.URL(t)
	rig := &fenceRig{proxy: pgtest.NewProxy(t, url), entered: make(chan int, 4), release: make(chan struct{}), first: first}
	var err error
	if rig.pool, err = pgxpool.New(ctx, url); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rig.pool.Close)
	pc, err := pgxpool.ParseConfig(rig.proxy.URL())
	if err != nil {
		t.Fatal(err)
	}
	// No ping before handing out a connection: a held proxy would swallow
	// its reply and the write under test would never be sent.
	pc.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	// One connection, whose statements a first task prepares: pgx
	// prepares a statement the first time it runs on a connection, and a
	// held proxy would swallow that round trip too.
	pc.MaxConns, pc.MinConns = 1, 1
	rpool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rpool.Close)

	client := runner.NewClient(rig.pool, runner.ClientConfig{})
	register(t, client, sprintf("name: chain\nnamespace_name: %s\nversion: 1.0.0\nsteps:\n  - name: s0\n    handler: {callable: gated}\n  - name: s1\n    dependencies: [s0]\n    handler: {callable: echo}\n", ns))
	var h callout.Funcs
	var calls atomic.Int64
	h.Register("gated", func(ctx context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		if strings.Contains(string(env.Task.Context), "warm") {
			return contracts.StepResult{Success: true, Result: json.RawMessage(`{"step":"s0"}`)}, nil
		}
		n := int(calls.Add(1))
		rig.entered <- n
		if n > 1 {
			return contracts.StepResult{Success: true, Result: json.RawMessage(`{"step":"s0"}`)}, nil
		}
		select {
		case <-rig.release:
		case <-ctx.Done():
		}
		return rig.first, nil
	})
	h.Register("echo", echoHandler)
	// Both tasks exist before the runner starts, so its first claim takes
	// both s0s and no notification of theirs wakes it later.
	warm, err := client.Submit(ctx, runner.SubmitRequest{Namespace: ns, Name: "chain", Context: json.RawMessage(`{"warm":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := client.Submit(ctx, runner.SubmitRequest{Namespace: ns, Name: "chain"})
	if err != nil {
		t.Fatal(err)
	}
	rig.task = sub.TaskUUID
	var warmEvents atomic.Int64
	log := testLogger(t)
	rig.runner = startRunner(t, rpool, runner.Config{
		WorkerID: "w1", Namespaces: []string{ns}, Handlers: &h,
		// No poller, and no lease tick while the proxy holds: a claim sent
		// then would commit unseen, and take the one connection. The
		// listener's reconnect polls.
		Mode: runner.ModeEventDrivenOnly, LeaseFor: 5 * time.Minute, HeartbeatInterval: time.Hour,
		DisableClaimWithCompletions: !claimWithCompletions,
		ReconnectInitial:            5 * time.Millisecond, ReconnectMax: 5 * time.Millisecond,
		// Counts the completer's "retrying" warnings, so the test knows
		// a write failed without sleeping.
		Logger: slog.New(countingHandler{log.Handler(), "writing step outcomes; retrying", &rig.retries}),
		OnEvent: func(e runner.Event) {
			switch e.Step.TaskUUID {
			case warm.TaskUUID:
				warmEvents.Add(1)
			case rig.task:
				if e.Step.Name == "s0" {
					rig.mu.Lock()
					rig.events = append(rig.events, e)
					rig.mu.Unlock()
				}
			}
		},
	})
	// The warm-up task prepares the runner's statements on its connection;
	// once its last outcome is written and the connection is back, the
	// runner has nothing to do until s0's handler returns.
	waitFor(t, 30*time.Second, "the warm-up task", func() bool {
		return warmEvents.Load() == 2 && rpool.Stat().AcquiredConns() == 0
	})
	if st := rig.runner.Stats(); st.Completed != 2 || st.Stale != 0 {
		t.Fatalf("warm-up stats: %+v", st)
	}
	return rig
}

func (rig *fenceRig) s0Events() []runner.Event {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	return append([]runner.Event(nil), rig.events...)
}

// loseReply lets s0's first call return while the proxy drops every
// reply, waits for its write to commit (cond, read directly), checks that
// the runner has not heard of it, then cuts every connection: the commit
// outcome is unknown to the completer, which must send the write again.
func (rig *fenceRig) loseReply(t *testing.T, what string, cond func() bool) {
	t.Helper()
	select {
	case <-rig.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("s0's handler was not called")
	}
	// Runs before the runner stops at the end, which it could not do held.
	var cut atomic.Bool
	t.Cleanup(func() {
		if !cut.Load() {
			rig.proxy.Cut()
			rig.proxy.Restore()
		}
	})
	rig.proxy.Hold()
	close(rig.release)
	waitFor(t, 30*time.Second, what, cond)
	if ev := rig.s0Events(); len(ev) != 0 {
		t.Fatalf("the runner saw the outcome of its write (%+v): the reply was not lost", ev)
	}
	rig.proxy.Cut()
	cut.Store(true)
}

func (rig *fenceRig) s0(t *testing.T) store.Step {
	t.Helper()
	steps, err := store.ListTaskSteps(t.Context(), rig.pool, rig.task)
	if err != nil || len(steps) != 2 {
		t.Fatalf("steps: %d, %v", len(steps), err)
	}
	return steps[0]
}

func (rig *fenceRig) transitions(t *testing.T, step string, to string) int {
	t.Helper()
	var n int
	if err := rig.pool.QueryRow(t.Context(), `
		SELECT count(*) FROM tasker.step_history tr JOIN tasker.steps s ON s.step_uuid = tr.step_uuid
		WHERE s.task_uuid = $1 AND s.name = $2 AND tr.to_state = $3`, rig.task, step, to).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The completer's write of a completion commits, but the connection dies
// before the reply: the completer sends it again. The step is completed
// once (one complete transition, the task counts it once, its child is
// enqueued and run once), and the runner counts and reports the outcome
// once, as written, not as stale.
func TestRunnerResendsCompletionWhoseReplyWasLost(t *testing.T) {
	t.Parallel()
	rig := newFenceRig(t, "fence_lost_reply", contracts.StepResult{Success: true, Result: json.RawMessage(`{"step":"s0"}`)}, true)
	rig.loseReply(t, "s0's completion to commit", func() bool { return rig.s0(t).State == contracts.StepStateComplete })
	rig.proxy.Restore()
	waitFor(t, 30*time.Second, "the task to complete", func() bool { return taskState(t, rig.pool, rig.task) == string(contracts.TaskStateComplete) })
	waitFor(t, 30*time.Second, "s0's event", func() bool { return len(rig.s0Events()) > 0 })

	if rig.retries.Load() == 0 {
		t.Fatal("the completer never re-sent its write")
	}
	for _, c := range []struct {
		step, to string
		want     int
	}{
		{"s0", "complete", 1}, {"s0", "in_progress", 1},
		// The lost write also claimed s1, which it made ready: once the
		// write is known to have landed, that claim is given back
		// (in_progress -> enqueued) and s1 is claimed again and runs once.
		{"s1", "enqueued", 2}, {"s1", "in_progress", 2}, {"s1", "complete", 1},
	} {
		if n := rig.transitions(t, c.step, c.to); n != c.want {
			t.Errorf("%s: %d transitions to %s, want %d", c.step, n, c.to, c.want)
		}
	}
	if tk, err := store.GetTask(t.Context(), rig.pool, rig.task); err != nil || tk.StepsDone != 2 || tk.StepsTotal != 2 {
		t.Fatalf("task: %d of %d done, %v; want 2 of 2", tk.StepsDone, tk.StepsTotal, err)
	}
	ev := rig.s0Events()
	if len(ev) != 1 || ev[0].Stale || ev[0].State != contracts.StepStateComplete {
		t.Fatalf("s0's events = %+v; want one, complete, not stale", ev)
	}
	if st := rig.runner.Stats(); st.Completed != 4 || st.Stale != 0 || st.Released != 1 {
		t.Fatalf("stats: %d completed, %d stale, %d released; want 4 (2 of them the warm-up's), 0 and s1's lost claim", st.Completed, st.Stale, st.Released)
	}
}

// The same with a yield: its write commits unseen, and while the completer
// backs off, the runner claims the step again (same owner, same attempt:
// the yield gave it back). The yield's re-send then arrives at the new
// claim and must not apply to it: the step yields once, runs twice and
// completes once, and the re-sent yield counts as stale (it cannot tell
// that its first send landed now that the step moved on).
func TestRunnerResentYieldDoesNotLandOnNextClaim(t *testing.T) {
	t.Parallel()
	// Claims riding on the write are off: the lost write would lease s0
	// again itself, and the re-claim during the backoff is the point.
	rig := newFenceRig(t, "fence_lost_yield", contracts.StepResult{Success: true, Status: contracts.StatusYielded, Checkpoint: json.RawMessage(`{"cursor":1}`)}, false)
	rig.loseReply(t, "s0's yield to commit", func() bool { return rig.s0(t).Yields == 1 })
	// Let the completer's backoff grow past a second, so the listener,
	// reconnecting every 5ms, re-claims the step before the re-send.
	waitFor(t, 30*time.Second, "the completer to back off", func() bool { return rig.retries.Load() >= 8 })
	rig.proxy.Restore()
	waitFor(t, 30*time.Second, "the task to complete", func() bool { return taskState(t, rig.pool, rig.task) == string(contracts.TaskStateComplete) })
	waitFor(t, 30*time.Second, "s0's events", func() bool { return len(rig.s0Events()) >= 2 })

	s0 := rig.s0(t)
	var history int
	if err := rig.pool.QueryRow(t.Context(), `SELECT jsonb_array_length(checkpoint_history) FROM tasker.steps WHERE step_uuid = $1`, s0.StepUUID).Scan(&history); err != nil {
		t.Fatal(err)
	}
	if s0.Yields != 1 || history != 1 || s0.Attempts != 1 {
		t.Fatalf("s0: %d yields, %d checkpoints, %d attempts; want 1, 1, 1", s0.Yields, history, s0.Attempts)
	}
	for _, c := range []struct {
		step, to string
		want     int
	}{{"s0", "in_progress", 2}, {"s0", "enqueued", 2 /* created ready, then the yield */}, {"s0", "complete", 1}, {"s1", "in_progress", 1}} {
		if n := rig.transitions(t, c.step, c.to); n != c.want {
			t.Errorf("%s: %d transitions to %s, want %d", c.step, n, c.to, c.want)
		}
	}
	ev := rig.s0Events()
	if len(ev) != 2 || ev[1].Stale || ev[1].State != contracts.StepStateComplete || ev[1].Step.Epoch <= ev[0].Step.Epoch || ev[1].Step.Attempt != ev[0].Step.Attempt {
		for _, e := range ev {
			t.Logf("s0 event: attempt %d epoch %d %s stale=%v", e.Step.Attempt, e.Step.Epoch, e.State, e.Stale)
		}
		t.Fatalf("s0 had %d events; want its yield, then its completion by a later claim", len(ev))
	}
	st := rig.runner.Stats()
	t.Logf("the re-sent yield was counted %d stale, %d released", st.Stale, st.Released)
	if st.Completed != 4 || st.Stale+st.Released != 1 {
		t.Fatalf("stats: %d completed, %d stale, %d released; want 4 (2 of them the warm-up's) and the yield once", st.Completed, st.Stale, st.Released)
	}
}
