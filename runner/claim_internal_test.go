package runner

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// scriptedClaims is a [claimFunc] that answers each claim with the next
// of its answers (then nothing), reporting each call's params on asked.
type scriptedClaims struct {
	answers []claimAnswer
	asked   chan store.ClaimParams
}

type claimAnswer struct {
	n   int
	err error
}

func (s *scriptedClaims) claim(_ context.Context, p store.ClaimParams) ([]store.ClaimedStep, error) {
	var a claimAnswer
	if len(s.answers) > 0 {
		a, s.answers = s.answers[0], s.answers[1:]
	}
	s.asked <- p
	if a.err != nil {
		return nil, a.err
	}
	steps := make([]store.ClaimedStep, min(a.n, p.Limit))
	for i := range steps {
		steps[i] = claimedStep(1)
	}
	return steps, nil
}

// TestClaimerClaimsAgainWhileFull: woken, the claimer claims up to the free
// permits and claims again while a claim comes back full.
func TestClaimerClaimsAgainWhileFull(t *testing.T) {
	permits := &fakePermits{freeN: 5}
	claims := &scriptedClaims{answers: []claimAnswer{{n: 5}, {n: 2}}, asked: make(chan store.ClaimParams, 4)}
	c := newClaimer(claimerConfig{WorkerID: "w", LeaseFor: time.Minute}, permits,
		func() []string { return []string{"ns"} }, claims.claim, &stats{}, discardLogger())
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	first, second := receive(t, claims.asked), receive(t, claims.asked)
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if first.Limit != 5 || first.WorkerID != "w" || first.LeaseFor != time.Minute || first.Namespaces[0] != "ns" {
		t.Errorf("first claim %+v, want 5 steps of ns for w", first)
	}
	if second.Limit != 5 {
		t.Errorf("second claim's limit %d, want the 5 permits free", second.Limit)
	}
	if len(permits.dispatched) != 7 || len(permits.fulls) != 2 || !permits.fulls[0] || permits.fulls[1] {
		t.Errorf("dispatched %d, fulls %v; want 7, [true false]", len(permits.dispatched), permits.fulls)
	}
	if got := c.stats.claimQueries.Load(); got != 2 {
		t.Errorf("claimQueries = %d, want 2", got)
	}
}

// TestClaimerHealth: health fails only once every claim for the given
// time failed, and recovers with the next claim that works.
func TestClaimerHealth(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newClaimer(claimerConfig{Now: func() time.Time { return now }}, &fakePermits{}, nil, nil, &stats{}, discardLogger())
	c.noteClaim(errors.New("db down"))
	now = now.Add(time.Second)
	if err := c.health(2 * time.Second); err != nil {
		t.Fatalf("failing for 1s of 2: %v", err)
	}
	now = now.Add(time.Second)
	if err := c.health(2 * time.Second); err == nil {
		t.Fatal("failing for 2s of 2: healthy")
	}
	c.noteClaim(nil)
	if err := c.health(2 * time.Second); err != nil {
		t.Fatalf("after a claim that worked: %v", err)
	}
}

// TestClaimerSchedulesTheEarliestWake: only an earlier time moves the
// scheduled wake-up, and none is scheduled once stopped.
func TestClaimerSchedulesTheEarliestWake(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newClaimer(claimerConfig{Now: func() time.Time { return now }}, &fakePermits{}, nil, nil, &stats{}, discardLogger())
	c.scheduleWake(now.Add(time.Hour))
	c.scheduleWake(now.Add(2 * time.Hour))
	if !c.retryAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("retryAt = %v, want the earlier time", c.retryAt)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.scheduleWake(now.Add(time.Minute))
	if !c.retryAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("retryAt = %v after Stop, want it unchanged", c.retryAt)
	}
	if c.claiming() {
		t.Error("claiming() after Stop")
	}
}
