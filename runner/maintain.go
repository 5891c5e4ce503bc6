package runner

import (
	"context"
	"time"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// maintain extends the leases of in-flight steps every LeaseFor/3, in one
// statement, and refreshes the worker's heartbeat. Without a poller
// (event_driven_only) the same tick also sweeps: it wakes the claim loop,
// because nothing announces a lease that expires when its runner died, or
// the due retries of that runner.
func (r *Runner) maintain(ctx context.Context) {
	leases := time.NewTicker(r.cfg.LeaseFor / 3)
	defer leases.Stop()
	heartbeat := time.NewTicker(r.cfg.HeartbeatInterval)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-leases.C:
			r.extendLeases(ctx)
			if !r.cfg.polls() {
				r.wake()
			}
		case <-heartbeat.C:
			if err := store.HeartbeatWorker(ctx, r.pool, r.cfg.WorkerID, r.cfg.Now()); err != nil && ctx.Err() == nil {
				r.log.Warn("worker heartbeat", "err", err)
			}
		}
	}
}

func (r *Runner) extendLeases(ctx context.Context) {
	r.mu.Lock()
	ids := make([]store.Lease, 0, len(r.inflight))
	for id, f := range r.inflight {
		if !f.released {
			ids = append(ids, store.Lease{StepUUID: id, Epoch: f.step.Epoch})
		}
	}
	r.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	now := r.cfg.Now()
	n, err := store.ExtendLeases(ctx, r.pool, r.cfg.WorkerID, ids, now.Add(r.cfg.LeaseFor), now)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("extending leases", "count", len(ids), "err", err)
		}
		return
	}
	if n < len(ids) {
		// Written meanwhile, or lost to a rescue; a lost one's outcome
		// will be refused by the fence and counted as stale.
		r.log.Debug("some leases were not extended", "asked", len(ids), "extended", n)
	}
}
