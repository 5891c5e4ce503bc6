package runner

import (
	"context"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner/store"
)

// gatedExecutor is a [stepExecutor] whose steps run until released (or
// their context ends), reporting each start on started.
type gatedExecutor struct {
	started chan uuid.UUID
	release chan struct{}
}

func newGatedExecutor() *gatedExecutor {
	return &gatedExecutor{started: make(chan uuid.UUID, 16), release: make(chan struct{})}
}

func (e *gatedExecutor) execute(ctx context.Context, s store.ClaimedStep) pendingOutcome {
	e.started <- s.StepUUID
	select {
	case <-e.release:
	case <-ctx.Done():
	}
	return pendingOutcome{step: s, completion: store.Completion{StepUUID: s.StepUUID, Epoch: s.Epoch, State: contracts.StepStateComplete}}
}

// recordingSink is an [outcomeSink] that keeps what it is given.
type recordingSink struct {
	mu       sync.Mutex
	outcomes []pendingOutcome
	back     []store.ClaimedStep
	added    chan struct{}
}

func (s *recordingSink) add(p pendingOutcome) {
	s.mu.Lock()
	s.outcomes = append(s.outcomes, p)
	s.mu.Unlock()
	if s.added != nil {
		s.added <- struct{}{}
	}
}

func (s *recordingSink) giveBack(steps []store.ClaimedStep) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.back = append(s.back, steps...)
}

func claimedStep(epoch int64) store.ClaimedStep {
	return store.ClaimedStep{StepUUID: uuid.New(), Attempt: 1, Epoch: epoch}
}

// TestDispatcherPermits: a permit is held from dispatch until settle, only
// by the claim in flight (same epoch); settle admits a write's claim into
// the freed permits up to capacity and refuses all once closed.
func TestDispatcherPermits(t *testing.T) {
	exec, sink := newGatedExecutor(), &recordingSink{}
	d := newDispatcher(dispatcherConfig{Capacity: 2, ShutdownTimeout: -1}, exec, sink, &stats{}, discardLogger())
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, b := claimedStep(1), claimedStep(1)
	d.dispatch(a)
	d.dispatch(b)
	receive(t, exec.started)
	receive(t, exec.started)
	if got := d.free(); got != 0 {
		t.Fatalf("free() = %d with 2 of 2 in flight", got)
	}
	done := []pendingOutcome{{step: a, completion: store.Completion{StepUUID: a.StepUUID, Epoch: 1}}}
	if got := d.held([]store.Completion{done[0].completion, {StepUUID: b.StepUUID, Epoch: 9}}); got != 1 {
		t.Fatalf("held() = %d, want 1 (the other epoch is not this claim)", got)
	}
	next := []store.ClaimedStep{claimedStep(2), claimedStep(2)}
	admitted, refused, _ := d.settle(done, next)
	if len(admitted) != 1 || len(refused) != 1 || refused[0].StepUUID != next[1].StepUUID {
		t.Fatalf("admitted %d, refused %+v; want 1 each (one permit freed)", len(admitted), refused)
	}
	d.launch(admitted[0])
	receive(t, exec.started)
	d.close()
	if admitted, refused, _ := d.settle(nil, []store.ClaimedStep{claimedStep(3)}); len(admitted) != 0 || len(refused) != 1 {
		t.Fatalf("closed: admitted %d, refused %d; want 0 and 1", len(admitted), len(refused))
	}
	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// b and the admitted step are given back; a, whose permit settle
	// took, is no longer the dispatcher's to give back: its outcome goes on.
	if len(sink.back) != 2 || len(sink.outcomes) != 1 || sink.outcomes[0].step.StepUUID != a.StepUUID {
		t.Fatalf("stop gave back %d and wrote %d, want 2 given back and a's outcome written", len(sink.back), len(sink.outcomes))
	}
}

// TestDispatcherStopLetsStepsFinish: within ShutdownTimeout a running step
// finishes and its outcome goes to the sink; nothing is given back.
func TestDispatcherStopLetsStepsFinish(t *testing.T) {
	exec, sink := newGatedExecutor(), &recordingSink{}
	d := newDispatcher(dispatcherConfig{Capacity: 1, ShutdownTimeout: LeaseForDefault}, exec, sink, &stats{}, discardLogger())
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.dispatch(claimedStep(1))
	receive(t, exec.started)
	stopped := make(chan error)
	go func() { stopped <- d.Stop(context.Background()) }()
	close(exec.release)
	if err := receive(t, stopped); err != nil {
		t.Fatal(err)
	}
	if len(sink.outcomes) != 1 || len(sink.back) != 0 {
		t.Fatalf("wrote %d, gave back %d; want 1 and 0", len(sink.outcomes), len(sink.back))
	}
	if inflight, active, peak := d.load(); inflight != 1 || active != 0 || peak != 1 {
		t.Errorf("load() = %d in flight, %d active, peak %d; want 1 (until written), 0, 1", inflight, active, peak)
	}
}
