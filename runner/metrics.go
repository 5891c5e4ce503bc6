package runner

import (
	"time"

	"github.com/tasker-runner/tasker-runner/runner/store"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// Observer receives a runner's measurements, for metrics. Set one with
// [Config.Observer]; the default, [NopObserver], discards everything, so the
// engine itself depends on no metrics library.
//
// Methods are called on the hot path (the handler goroutines, the completer)
// and concurrently: they must be cheap, must not block and must not call
// back into the runner.
type Observer interface {
	// StepClaimed is called when a claimed step starts (one call per
	// attempt), with how long it had been ready: from its run_at (when it
	// was enqueued, or when its retry came due) to the start.
	StepClaimed(namespace, handler string, waited time.Duration)
	// StepFinished is called once an outcome was written. state is the
	// step's new state: complete, waiting_for_retry (retried), error
	// (dead-lettered) or enqueued (released without consuming the attempt:
	// shutdown, or its circuit breaker was open). ran is how long the
	// handler ran; 0 when it was not called.
	StepFinished(namespace, handler string, state StepState, ran time.Duration)
	// StaleCompletions reports n outcomes refused by the fence in one write
	// (their lease was lost; the step is someone else's now).
	StaleCompletions(n int)
	// ListenerReconnect is called each time the LISTEN connection is lost
	// and about to be re-established.
	ListenerReconnect()
	// FlushDone is called after each completion write: n outcomes written
	// in one transaction that took d, retries of transient failures
	// included.
	FlushDone(n int, d time.Duration)
	// RetentionDone is called after each retention run that took the
	// retention lock, with the tasks it deleted by state (complete,
	// resolved_manually, blocked_by_failures, cancelled; absent: none) and
	// how long it took. Not on the hot path.
	RetentionDone(deleted map[TaskState]int, d time.Duration)
}

// NopObserver is an [Observer] that discards every measurement.
type NopObserver struct{}

func (NopObserver) StepClaimed(string, string, time.Duration)             {}
func (NopObserver) StepFinished(string, string, StepState, time.Duration) {}
func (NopObserver) StaleCompletions(int)                                  {}
func (NopObserver) ListenerReconnect()                                    {}
func (NopObserver) FlushDone(int, time.Duration)                          {}
func (NopObserver) RetentionDone(map[TaskState]int, time.Duration)        {}

var _ Observer = NopObserver{}

// observeFlush reports one completion write to obs.
func observeFlush(obs Observer, batch []pendingOutcome, res store.CompleteResult, took time.Duration) {
	for i := range batch {
		p := &batch[i]
		state, applied := res.Applied[p.completion.StepUUID]
		if !applied {
			continue
		}
		var ran time.Duration
		if state != contracts.StepStateEnqueued && !p.started.IsZero() {
			ran = p.finished.Sub(p.started)
		}
		obs.StepFinished(p.step.Namespace, p.step.Handler, state, ran)
	}
	if res.Stale > 0 {
		obs.StaleCompletions(res.Stale)
	}
	obs.FlushDone(len(batch), took)
}
