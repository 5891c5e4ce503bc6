package runner

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// maintainerConfig configures a [maintainer].
type maintainerConfig struct {
	// LeaseFor is the lease the maintainer extends every LeaseFor/3.
	// Default [LeaseForDefault].
	LeaseFor time.Duration
	// HeartbeatInterval: see [Config]. Default [HeartbeatIntervalDefault].
	HeartbeatInterval time.Duration
	// Sweep wakes the claimer every LeaseFor/3, to rescue expired leases
	// and due retries of runners that died: set without a poller.
	Sweep bool
	// Now defaults to time.Now.
	Now func() time.Time
}

func (c *maintainerConfig) withDefaults() {
	c.LeaseFor = cmp.Or(c.LeaseFor, LeaseForDefault)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, HeartbeatIntervalDefault)
	if c.Now == nil {
		c.Now = time.Now
	}
}

// leaseHolder returns the leases to extend: the [dispatcher]'s steps in
// flight.
type leaseHolder interface {
	leases() []store.Lease
}

// maintainerStore is the maintainer's access to the database, for the
// worker's leases and registry row.
type maintainerStore interface {
	extendLeases(ctx context.Context, leases []store.Lease, until, now time.Time) (int, error)
	heartbeat(ctx context.Context, now time.Time) error
}

// maintainer extends the leases of in-flight steps every LeaseFor/3, in
// one statement, and refreshes the worker's heartbeat. With Sweep
// (event_driven_only, no poller) the same tick wakes the claimer, because
// nothing announces a lease that expires when its runner died, or the due
// retries of that runner: the claim rescues them. It runs until the very
// end of a graceful stop, after the last outcome is written.
type maintainer struct {
	cfg    maintainerConfig
	leases leaseHolder
	store  maintainerStore
	waker  waker
	log    *slog.Logger
	startStop
}

func newMaintainer(cfg maintainerConfig, leases leaseHolder, st maintainerStore, w waker, log *slog.Logger) *maintainer {
	cfg.withDefaults()
	return &maintainer{cfg: cfg, leases: leases, store: st, waker: w, log: log}
}

// Start starts the maintenance loop.
func (m *maintainer) Start(ctx context.Context) error { return m.start(ctx, m.loop) }

func (m *maintainer) loop(ctx context.Context) {
	leases := time.NewTicker(m.cfg.LeaseFor / 3)
	defer leases.Stop()
	heartbeat := time.NewTicker(m.cfg.HeartbeatInterval)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-leases.C:
			m.extendLeases(ctx)
			if m.cfg.Sweep {
				m.waker.wake()
			}
		case <-heartbeat.C:
			if err := m.store.heartbeat(ctx, m.cfg.Now()); err != nil && ctx.Err() == nil {
				m.log.Warn("worker heartbeat", "err", err)
			}
		}
	}
}

func (m *maintainer) extendLeases(ctx context.Context) {
	ids := m.leases.leases()
	if len(ids) == 0 {
		return
	}
	now := m.cfg.Now()
	n, err := m.store.extendLeases(ctx, ids, now.Add(m.cfg.LeaseFor), now)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("extending leases", "count", len(ids), "err", err)
		}
		return
	}
	if n < len(ids) {
		// Written meanwhile, or lost to a rescue; a lost one's outcome
		// will be refused by the fence and counted as stale.
		m.log.Debug("some leases were not extended", "asked", len(ids), "extended", n)
	}
}

// poolMaintainerStore is the [maintainerStore] of a runner.
type poolMaintainerStore struct {
	db       store.DB
	workerID string
}

func (s poolMaintainerStore) extendLeases(ctx context.Context, leases []store.Lease, until, now time.Time) (int, error) {
	return store.ExtendLeases(ctx, s.db, s.workerID, leases, until, now)
}

func (s poolMaintainerStore) heartbeat(ctx context.Context, now time.Time) error {
	return store.HeartbeatWorker(ctx, s.db, s.workerID, now)
}

// endpointWatcher reloads the endpoints every RecheckInterval while one of
// them is unusable, so that a secret that becomes resolvable (a file
// mounted late, a rotated variable) is picked up without a restart or a
// NOTIFY (which polling_only runners do not hear).
type endpointWatcher struct {
	endpoints *Endpoints
	reload    func(ctx context.Context)
	startStop
}

// Start starts the recheck loop.
func (w *endpointWatcher) Start(ctx context.Context) error { return w.start(ctx, w.loop) }

func (w *endpointWatcher) loop(ctx context.Context) {
	tick := time.NewTicker(w.endpoints.recheckInterval())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if w.endpoints.anyUnusable() {
			w.reload(ctx)
		}
	}
}
