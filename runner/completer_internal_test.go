package runner

import (
	"testing"
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
