package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
)

type runnerObserver struct{ m *Metrics }

func (o runnerObserver) StepClaimed(namespace, handler string, waited time.Duration) {
	s := o.m.stepSeries(namespace, handler)
	s.claimed.Inc()
	// run_at comes from the database's clock: a little skew must not make
	// a negative wait.
	s.waited.Observe(max(waited, 0).Seconds())
}

func (o runnerObserver) StepFinished(namespace, handler string, state contracts.StepState, ran time.Duration) {
	s := o.m.stepSeries(namespace, handler)
	switch state {
	case contracts.StepStateComplete:
		s.completed.Inc()
	case contracts.StepStateWaitingForRetry:
		s.retried.Inc()
	case contracts.StepStateError:
		s.failed.Inc()
	case contracts.StepStateEnqueued:
		s.released.Inc()
		return // the handler was not called
	default:
		return
	}
	s.duration.Observe(ran.Seconds())
}

func (o runnerObserver) StaleCompletions(n int) { o.m.stale.Add(float64(n)) }

func (o runnerObserver) ListenerReconnect() { o.m.reconnects.Inc() }

func (o runnerObserver) FlushDone(n int, d time.Duration) {
	o.m.flushSeconds.Observe(d.Seconds())
	o.m.batchSize.Observe(float64(n))
}

// retentionStates are the task states retention deletes.
var retentionStates = []contracts.TaskState{contracts.TaskStateComplete, contracts.TaskStateResolvedManually, contracts.TaskStateBlockedByFailures, contracts.TaskStateCancelled}

func (o runnerObserver) RetentionDone(deleted map[contracts.TaskState]int, d time.Duration) {
	for state, n := range deleted {
		o.m.retentionDeleted.WithLabelValues(string(state)).Add(float64(n))
	}
	o.m.retentionLastRun.Set(d.Seconds())
}

type calloutObserver struct{ m *Metrics }

func (o calloutObserver) CallDone(endpoint, protocol string, d time.Duration, outcome string) {
	s := o.m.callSeries(endpoint, protocol)
	var h prometheus.Observer
	switch outcome {
	case callout.CallOK:
		h = s.ok
	case callout.CallFault:
		h = s.fault
	case callout.CallAbandoned:
		h = s.abandoned
	default:
		return
	}
	h.Observe(d.Seconds())
}
