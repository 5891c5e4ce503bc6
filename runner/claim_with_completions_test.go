package runner_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// TestClaimWithCompletionsKeepsTheLimit: outcome writes that claim the
// next steps (the default) never put more than MaxConcurrentSteps in
// flight, counted by the runner (Stats.PeakInFlight) and by the handlers
// themselves, on a backlog of single-step tasks and linear chains whose
// next steps those writes make ready; every step runs once.
func TestClaimWithCompletionsKeepsTheLimit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, oneStepTemplate("peak"))
	register(t, client, linearTemplate("peak", 4))
	const singles, chains, limit = 600, 60, 7
	var reqs []runner.SubmitRequest
	for i := range singles + chains {
		name := "one"
		if i%11 == 0 && i/11 < chains {
			name = "linear"
		}
		reqs = append(reqs, runner.SubmitRequest{Namespace: "peak", Name: name, Context: []byte(`{"n":1}`)})
	}
	if _, err := client.SubmitMany(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	var (
		running, peak, calls atomic.Int64
		mu                   sync.Mutex
		seen                 = map[string]int{}
	)
	handler := func(ctx context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		calls.Add(1)
		mu.Lock()
		seen[env.Step.StepUUID]++
		mu.Unlock()
		return echoHandler(ctx, env)
	}
	var handlers callout.Funcs
	handlers.Register("work", handler)
	handlers.Register("echo", handler)
	r := startRunner(t, pool, runner.Config{WorkerID: "peak", Handlers: &handlers, MaxConcurrentSteps: limit, FlushInterval: time.Millisecond})
	total := singles + 4*chains
	waitFor(t, 60*time.Second, "every task complete", func() bool {
		var done int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM tasker.tasks WHERE state = 'complete'`).Scan(&done)
		return done == singles+chains
	})
	st := r.Stats()
	if st.PeakInFlight > limit || peak.Load() > limit {
		t.Errorf("peak in flight: runner %d, handlers %d; want at most %d", st.PeakInFlight, peak.Load(), limit)
	}
	if st.PeakInFlight < limit {
		t.Errorf("peak in flight %d: the runner never used its %d permits", st.PeakInFlight, limit)
	}
	if st.ClaimedWithCompletions == 0 {
		t.Errorf("no step was claimed by an outcome write: %+v", st)
	}
	if int(calls.Load()) != total || len(seen) != total {
		t.Errorf("handlers ran %d times for %d steps, want %d steps once each", calls.Load(), len(seen), total)
	}
	t.Logf("stats: %+v", st)
}

// TestClaimWithCompletionsOff: with DisableClaimWithCompletions every step
// is claimed by a claim query.
func TestClaimWithCompletionsOff(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, linearTemplate("off", 4))
	for range 5 {
		if _, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "off", Name: "linear", Context: []byte(`{"n":1}`)}); err != nil {
			t.Fatal(err)
		}
	}
	var handlers callout.Funcs
	handlers.Register("echo", echoHandler)
	r := startRunner(t, pool, runner.Config{WorkerID: "off", Handlers: &handlers, DisableClaimWithCompletions: true})
	waitFor(t, 30*time.Second, "every task complete", func() bool {
		var done int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM tasker.tasks WHERE state = 'complete'`).Scan(&done)
		return done == 5
	})
	if st := r.Stats(); st.ClaimedWithCompletions != 0 || st.Claimed != 20 {
		t.Errorf("stats %+v: want 20 steps claimed, none by outcome writes", st)
	}
}
