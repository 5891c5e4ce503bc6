package runner

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner/store"
)

// fakePermits is a [completerPermits] and [claimerPermits] that records
// what it is asked.
type fakePermits struct {
	mu         sync.Mutex
	active     int
	freeN      int
	heldN      int
	more       bool
	admitN     int // settle admits at most this many claimed steps
	settled    [][]pendingOutcome
	launched   []*flight
	dispatched []store.ClaimedStep
	fulls      []bool
}

func (p *fakePermits) held([]store.Completion) int { return p.heldN }
func (p *fakePermits) running() int                { return p.active }

func (p *fakePermits) settle(batch []pendingOutcome, claimed []store.ClaimedStep) ([]*flight, []store.ClaimedStep, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.settled = append(p.settled, batch)
	n := min(p.admitN, len(claimed))
	var admitted []*flight
	for _, s := range claimed[:n] {
		admitted = append(admitted, &flight{step: s})
	}
	return admitted, claimed[n:], p.more
}

func (p *fakePermits) launch(f *flight) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.launched = append(p.launched, f)
}

func (p *fakePermits) free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.freeN
}

func (p *fakePermits) dispatch(s store.ClaimedStep) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dispatched = append(p.dispatched, s) // frees no permit: as if others were written meanwhile
}

func (p *fakePermits) claimed(full bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fulls = append(p.fulls, full)
}

// fakeWaker counts wake-ups and records scheduled ones.
type fakeWaker struct {
	mu        sync.Mutex
	wakes     int
	scheduled []time.Time
	woken     chan struct{} // when set, each wake sends on it
}

func (w *fakeWaker) wake() {
	w.mu.Lock()
	w.wakes++
	ch := w.woken
	w.mu.Unlock()
	if ch != nil {
		ch <- struct{}{}
	}
}

func (w *fakeWaker) scheduleWake(t time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.scheduled = append(w.scheduled, t)
}

func (w *fakeWaker) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.wakes
}

// fakeCompleterStore is a [completerStore]: each send returns the next of
// errs (nil when they run out), applies every completion and claims
// claim.Limit steps of claims.
type fakeCompleterStore struct {
	mu       sync.Mutex
	errs     []error
	claims   []store.ClaimedStep
	sends    []store.ClaimParams
	landedCS []store.Completion
	lost     []time.Time
	stale    bool // the fence refuses every completion (as after a lost reply)
}

func (s *fakeCompleterStore) completeAndClaim(_ context.Context, now time.Time, cs []store.Completion, claim store.ClaimParams) (store.CompleteResult, []store.ClaimedStep, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sends = append(s.sends, claim)
	if len(s.errs) > 0 {
		err := s.errs[0]
		s.errs = s.errs[1:]
		if err != nil {
			return store.CompleteResult{}, nil, err
		}
	}
	res := store.CompleteResult{Applied: map[uuid.UUID]contracts.StepState{}}
	for _, c := range cs {
		if s.stale {
			res.Stale++
			continue
		}
		res.Applied[c.StepUUID] = c.State
	}
	n := min(claim.Limit, len(s.claims))
	return res, s.claims[:n], nil
}

func (s *fakeCompleterStore) writeGrowing(context.Context, []pendingOutcome) (store.CompleteResult, error) {
	return store.CompleteResult{Applied: map[uuid.UUID]contracts.StepState{}}, nil
}

func (s *fakeCompleterStore) landed(_ context.Context, cs []store.Completion) (map[uuid.UUID]contracts.StepState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.landedCS = append(s.landedCS, cs...)
	out := map[uuid.UUID]contracts.StepState{}
	for _, c := range cs {
		out[c.StepUUID] = c.State
	}
	return out, nil
}

func (s *fakeCompleterStore) releaseLost(_ context.Context, claimedAt []time.Time, _ time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lost = append(s.lost, claimedAt...)
	return len(claimedAt), nil
}

// outcome returns a pending outcome that completes a new step.
func outcome(state contracts.StepState) pendingOutcome {
	s := store.ClaimedStep{StepUUID: uuid.New(), TaskUUID: uuid.New(), Attempt: 1, Epoch: 1}
	return pendingOutcome{step: s, completion: store.Completion{StepUUID: s.StepUUID, Attempt: 1, Epoch: 1, State: state}}
}

// discardLogger drops every record.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// receive returns the next value on ch, failing t if none comes within
// 10s (a deadline against hangs, not a measurement).
func receive[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting on a channel")
		panic("unreachable")
	}
}
