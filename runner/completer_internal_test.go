package runner

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner/store"
)

// TestCompleterWaitsOnlyWithCompany: a write is delayed for company only
// when outcomes are buffered, the batch is not full and handlers still run.
// With nothing buffered the loop must not start its blind 1 ms wait: the
// outcome arriving during it would sit unseen until the wait ends.
func TestCompleterWaitsOnlyWithCompany(t *testing.T) {
	permits := &fakePermits{}
	c := newCompleter(completerConfig{FlushBatch: 3}, completerDeps{permits: permits})
	for _, tc := range []struct {
		buffered, active int
		want             bool
	}{
		{buffered: 0, active: 0, want: false},
		{buffered: 0, active: 2, want: false}, // nothing to delay
		{buffered: 1, active: 0, want: false}, // nobody to wait for
		{buffered: 1, active: 2, want: true},
		{buffered: 3, active: 2, want: false}, // a full batch goes now
	} {
		c.buf = make([]pendingOutcome, tc.buffered)
		permits.active = tc.active
		if got := c.shouldWait(); got != tc.want {
			t.Errorf("%d buffered, %d handlers running: shouldWait() = %v, want %v", tc.buffered, tc.active, got, tc.want)
		}
	}
}

// newTestCompleter returns a completer over fakes; claiming reports the
// namespace "ns".
func newTestCompleter(cfg completerConfig, permits *fakePermits, st *fakeCompleterStore, w *fakeWaker) *completer {
	return newCompleter(cfg, completerDeps{
		permits: permits, waker: w, store: st, stats: &stats{}, log: discardLogger(),
		claiming: func() ([]string, bool) { return []string{"ns"}, true },
	})
}

// TestCompleterHandsPermitsToItsClaim: a write claims as many steps as its
// completions hold permits; what the permits admit is launched, what they
// refuse is given back (enqueued again, attempt not consumed).
func TestCompleterHandsPermitsToItsClaim(t *testing.T) {
	permits := &fakePermits{heldN: 2, admitN: 1}
	claims := []store.ClaimedStep{{StepUUID: uuid.New(), Attempt: 1, Epoch: 7}, {StepUUID: uuid.New(), Attempt: 2, Epoch: 8}}
	st := &fakeCompleterStore{claims: claims}
	c := newTestCompleter(completerConfig{ClaimWithCompletions: true, LeaseFor: time.Minute}, permits, st, &fakeWaker{})
	var events []Event
	c.cfg.OnEvent = func(e Event) { events = append(events, e) }

	batch := []pendingOutcome{outcome(contracts.StepStateComplete), outcome(contracts.StepStateComplete)}
	if !c.flush(context.Background(), batch) {
		t.Fatal("flush reported a hard stop")
	}
	if len(st.sends) != 1 || st.sends[0].Limit != 2 || st.sends[0].LeaseFor != time.Minute || st.sends[0].Namespaces[0] != "ns" {
		t.Fatalf("claims sent: %+v, want one of 2 steps from ns", st.sends)
	}
	if len(permits.settled) != 1 || len(permits.settled[0]) != 2 {
		t.Fatalf("settled %d batches, want the one written", len(permits.settled))
	}
	if len(permits.launched) != 1 || permits.launched[0].step.StepUUID != claims[0].StepUUID {
		t.Fatalf("launched %+v, want the first claimed step", permits.launched)
	}
	back := c.take()
	if len(back) != 1 || back[0].completion.StepUUID != claims[1].StepUUID || back[0].completion.State != contracts.StepStateEnqueued ||
		back[0].completion.Epoch != 8 || back[0].completion.Attempt != 2 {
		t.Fatalf("given back %+v, want the refused step enqueued under its claim", back)
	}
	if got := c.stats.claimedWithCompletions.Load(); got != 1 {
		t.Errorf("claimedWithCompletions = %d, want 1", got)
	}
	if got := c.stats.completed.Load(); got != 2 || len(events) != 2 || events[0].Stale {
		t.Errorf("completed = %d, events %+v; want 2 complete, not stale", got, events)
	}
}

// TestCompleterClaimsNothingOnceClaimingStops: a write sent while the
// runner stops, or with the feature off, claims nothing.
func TestCompleterClaimsNothingOnceClaimingStops(t *testing.T) {
	for _, tc := range []struct {
		name     string
		enabled  bool
		claiming bool
	}{{"disabled", false, true}, {"stopping", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			st := &fakeCompleterStore{claims: []store.ClaimedStep{{StepUUID: uuid.New()}}}
			c := newTestCompleter(completerConfig{ClaimWithCompletions: tc.enabled}, &fakePermits{heldN: 1}, st, &fakeWaker{})
			c.claiming = func() ([]string, bool) { return []string{"ns"}, tc.claiming }
			c.flush(context.Background(), []pendingOutcome{outcome(contracts.StepStateComplete)})
			if len(st.sends) != 1 || st.sends[0].Limit != 0 {
				t.Fatalf("claims sent: %+v, want one write claiming nothing", st.sends)
			}
		})
	}
}

// TestCompleterResendsAndReleasesLostClaims: a send that failed may have
// committed. The completer sends again; completions the fence then refuses
// are checked (landed) rather than reported stale, and the steps the lost
// send may have claimed are released by their claim time.
func TestCompleterResendsAndReleasesLostClaims(t *testing.T) {
	st := &fakeCompleterStore{errs: []error{errors.New("connection reset")}, stale: true}
	w := &fakeWaker{}
	c := newTestCompleter(completerConfig{ClaimWithCompletions: true}, &fakePermits{heldN: 1}, st, w)
	p := outcome(contracts.StepStateComplete)
	if !c.flush(context.Background(), []pendingOutcome{p}) {
		t.Fatal("flush reported a hard stop")
	}
	if len(st.sends) != 2 {
		t.Fatalf("%d sends, want 2", len(st.sends))
	}
	if len(st.landedCS) != 1 || st.landedCS[0].StepUUID != p.step.StepUUID {
		t.Fatalf("checked %+v, want the refused completion", st.landedCS)
	}
	if len(st.lost) != 1 || !st.lost[0].Equal(st.sends[0].Now) {
		t.Fatalf("released claims of %v, want the failed send's (%v)", st.lost, st.sends[0].Now)
	}
	if c.stats.stale.Load() != 0 || c.stats.completed.Load() != 1 || c.stats.released.Load() != 1 {
		t.Errorf("stale %d, completed %d, released %d; want 0, 1, 1", c.stats.stale.Load(), c.stats.completed.Load(), c.stats.released.Load())
	}
	if w.count() == 0 {
		t.Error("no wake-up after outcomes of a lost reply landed")
	}
}

// TestCompleterStopWritesEverything: Stop writes what is buffered before
// the loop ends; a retry wait is scheduled for the earliest retry.
func TestCompleterStopWritesEverything(t *testing.T) {
	st := &fakeCompleterStore{}
	w := &fakeWaker{}
	c := newTestCompleter(completerConfig{FlushBatch: 2}, &fakePermits{}, st, w)
	retry := outcome(contracts.StepStateWaitingForRetry)
	retry.completion.RunAt = time.Unix(100, 0)
	later := outcome(contracts.StepStateWaitingForRetry)
	later.completion.RunAt = time.Unix(200, 0)
	c.add(later)
	c.add(retry)
	c.add(outcome(contracts.StepStateError))
	// Written by the loop or by Stop: Stop returns once all are.
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c.stats.retried.Load() + c.stats.failed.Load(); got != 3 {
		t.Fatalf("%d outcomes written, want 3", got)
	}
	// The first batch holds both retries.
	if len(w.scheduled) != 1 || !w.scheduled[0].Equal(retry.completion.RunAt) {
		t.Errorf("scheduled %v, want the earliest retry (%v) once", w.scheduled, retry.completion.RunAt)
	}
}
