package runner_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// recordingObserver keeps every observation.
type recordingObserver struct {
	mu         sync.Mutex
	claimed    map[string][]time.Duration // handler -> waits
	finished   map[string][]finish        // handler -> outcomes
	stale      int
	reconnects int
	flushes    int
	flushed    int // outcomes written, stale ones included
	flushTime  time.Duration
	// retention runs that took the lock, and the tasks they deleted by state
	retentionRuns int
	retained      map[runner.TaskState]int
}

type finish struct {
	ns    string
	state runner.StepState
	ran   time.Duration
}

func newRecordingObserver() *recordingObserver {
	return &recordingObserver{claimed: map[string][]time.Duration{}, finished: map[string][]finish{}}
}

func (o *recordingObserver) StepClaimed(ns, handler string, waited time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.claimed[handler] = append(o.claimed[handler], waited)
}

func (o *recordingObserver) StepFinished(ns, handler string, state runner.StepState, ran time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.finished[handler] = append(o.finished[handler], finish{ns, state, ran})
}

func (o *recordingObserver) StaleCompletions(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stale += n
}

func (o *recordingObserver) ListenerReconnect() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reconnects++
}

func (o *recordingObserver) FlushDone(n int, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.flushes++
	o.flushed += n
	o.flushTime += d
}

func (o *recordingObserver) RetentionDone(deleted map[runner.TaskState]int, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.retentionRuns++
	for s, n := range deleted {
		if o.retained == nil {
			o.retained = map[runner.TaskState]int{}
		}
		o.retained[s] += n
	}
}

func (o *recordingObserver) locked(f func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f()
}

const observedTemplate = `
name: mixed
namespace_name: obs
version: 1
steps:
  - name: good
    handler: {callable: good}
  - name: flaky
    handler: {callable: flaky}
    retry: {retryable: true, max_attempts: 2, backoff: exponential, backoff_base_ms: 10, max_backoff_ms: 50}
  - name: stolen
    handler: {callable: stolen}
`

// The runner reports every claim, outcome, stale completion, write and
// listener reconnect to its Observer.
func TestObserverSeesTheHotPath(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, observedTemplate)

	var h callout.Funcs
	h.Register("good", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		time.Sleep(20 * time.Millisecond)
		return contracts.StepResult{Success: true}, nil
	})
	h.Register("flaky", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		return contracts.StepResult{}, errors.New("upstream unavailable")
	})
	h.Register("stolen", func(ctx context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		if env.Step.Attempts == 1 {
			// Another runner takes the lease while we run: our outcome is
			// refused by the fence.
			if _, err := pool.Exec(ctx, `UPDATE tasker.steps SET lease_owner = 'thief' WHERE step_uuid = $1`, env.Step.StepUUID); err != nil {
				return contracts.StepResult{}, err
			}
		}
		return contracts.StepResult{Success: true}, nil
	})

	// Submitted before the runner starts: the steps wait at least this long.
	const queued = 100 * time.Millisecond
	if _, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "obs", Name: "mixed"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(queued)

	obs := newRecordingObserver()
	r := startRunner(t, pool, runner.Config{
		WorkerID: "observed", Handlers: &h, Observer: obs,
		PollInterval: 50 * time.Millisecond, ReconnectInitial: 10 * time.Millisecond,
	})
	waitFor(t, 20*time.Second, "4 outcomes written", func() bool {
		var n int
		obs.locked(func() { n = obs.flushed })
		return n == 4
	})
	waitFor(t, 5*time.Second, "listener connected", r.ListenerConnected)
	terminateListener(t, pool, "observed")
	waitFor(t, 5*time.Second, "listener reconnect observed", func() bool {
		var n int
		obs.locked(func() { n = obs.reconnects })
		return n >= 1 && r.ListenerConnected()
	})

	obs.locked(func() {
		for handler, want := range map[string]int{"good": 1, "flaky": 2, "stolen": 1} {
			if got := len(obs.claimed[handler]); got != want {
				t.Errorf("%s: %d claims observed, want %d", handler, got, want)
			}
		}
		for _, handler := range []string{"good", "stolen"} {
			if w := obs.claimed[handler]; len(w) == 1 && w[0] < queued {
				t.Errorf("%s waited %s, want >= %s", handler, w[0], queued)
			}
		}
		if w := obs.claimed["flaky"]; len(w) == 2 && (w[0] < queued || w[1] < 0) {
			t.Errorf("flaky waits %v, want the first >= %s and the retry's >= 0", w, queued)
		}

		if f := obs.finished["good"]; len(f) != 1 || f[0] != (finish{"obs", "complete", f[0].ran}) || f[0].ran < 20*time.Millisecond {
			t.Errorf("good finished %+v, want one complete in namespace obs that ran >= 20ms", f)
		}
		if f := obs.finished["flaky"]; len(f) != 2 || f[0].state != "waiting_for_retry" || f[1].state != "error" {
			t.Errorf("flaky finished %+v, want waiting_for_retry then error", f)
		}
		if f := obs.finished["stolen"]; len(f) != 0 {
			t.Errorf("stolen finished %+v, want nothing: its outcome was stale", f)
		}
		if obs.stale != 1 {
			t.Errorf("stale completions = %d, want 1", obs.stale)
		}
		if obs.flushes < 1 || obs.flushes > 4 || obs.flushTime <= 0 {
			t.Errorf("%d flushes taking %s in all, want 1-4 taking > 0", obs.flushes, obs.flushTime)
		}
	})
	if st := r.Stats(); st.Stale != 1 || st.Completed != 1 || st.Retried != 1 || st.Failed != 1 {
		t.Errorf("stats %+v disagree with the observer", st)
	}
}

// Without an Observer the runner runs as before (the no-op default).
func TestNopObserverIsTheDefault(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, sprintf(oneStep, "nop", "noop"))
	s := &startedAt{ch: make(chan time.Time, 1)}
	startRunner(t, pool, runner.Config{Handlers: s.handlers()})
	submitAndTime(t, client, "nop", s)
}
