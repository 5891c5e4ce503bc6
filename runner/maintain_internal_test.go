package runner

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// fakeLeases is a [leaseHolder].
type fakeLeases []store.Lease

func (l fakeLeases) leases() []store.Lease { return l }

// fakeMaintainerStore is a [maintainerStore] that extends n leases.
type fakeMaintainerStore struct {
	mu       sync.Mutex
	n        int
	err      error
	extended [][]store.Lease
	until    time.Time
	beats    int
}

func (s *fakeMaintainerStore) extendLeases(_ context.Context, leases []store.Lease, until, _ time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.extended = append(s.extended, leases)
	s.until = until
	return s.n, s.err
}

func (s *fakeMaintainerStore) heartbeat(context.Context, time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beats++
	return nil
}

// TestMaintainerExtendsTheLeasesInFlight: one statement extends every
// lease in flight by LeaseFor; with none in flight nothing is sent.
func TestMaintainerExtendsTheLeasesInFlight(t *testing.T) {
	now := time.Unix(1000, 0)
	leases := fakeLeases{{StepUUID: uuid.New(), Epoch: 3}, {StepUUID: uuid.New(), Epoch: 4}}
	st := &fakeMaintainerStore{n: 1} // one lost meanwhile: logged, not an error
	m := newMaintainer(maintainerConfig{LeaseFor: time.Minute, Now: func() time.Time { return now }}, leases, st, &fakeWaker{}, discardLogger())
	m.extendLeases(context.Background())
	if len(st.extended) != 1 || len(st.extended[0]) != 2 || !st.until.Equal(now.Add(time.Minute)) {
		t.Fatalf("extended %v until %v, want both leases in one call until now+1m", st.extended, st.until)
	}
	m.leases = fakeLeases{}
	st.err = errors.New("not sent")
	m.extendLeases(context.Background())
	if len(st.extended) != 1 {
		t.Fatalf("%d calls with nothing in flight, want none", len(st.extended)-1)
	}
}

// TestMaintainerSweeps: with Sweep (no poller), every lease tick wakes the
// claimer to rescue expired leases; the heartbeat runs on its own tick.
func TestMaintainerSweeps(t *testing.T) {
	st := &fakeMaintainerStore{}
	w := &fakeWaker{woken: make(chan struct{})}
	m := newMaintainer(maintainerConfig{LeaseFor: 3 * time.Millisecond, HeartbeatInterval: time.Millisecond, Sweep: true},
		fakeLeases{}, st, w, discardLogger())
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	receive(t, w.woken)
	receive(t, w.woken)
	go func() {
		for range w.woken { // let Stop end a tick that is waking
		}
	}()
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(w.woken)
}
