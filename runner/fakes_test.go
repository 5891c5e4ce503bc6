package runner

import (
	"sync"
	"time"

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
	p.dispatched = append(p.dispatched, s)
	p.freeN--
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
