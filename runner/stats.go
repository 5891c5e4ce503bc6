package runner

import "sync/atomic"

// Stats are a runner's counters since it started.
type Stats struct {
	Claimed      int64 // steps claimed (attempts started)
	Rescued      int64 // of which had an expired lease
	Completed    int64 // steps written complete
	Retried      int64 // steps written waiting_for_retry
	Failed       int64 // steps written error (dead-lettered)
	Released     int64 // leases given back unrun
	Stale        int64 // outcomes refused by the fence (lease lost)
	ClaimQueries int64
	// EmptyClaims counts the claim queries that returned no step (another
	// runner took them first, or nothing was ready).
	EmptyClaims int64
	// ClaimedWithCompletions counts the steps claimed by outcome writes
	// (claims riding on completions) rather than by claim queries.
	ClaimedWithCompletions int64
	Flushes                int64
	ListenerReconnects     int64
	InFlight               int // claimed and not yet written
	Active                 int // handlers running
	Capacity               int // MaxConcurrentSteps: the semaphore's size
	// PeakInFlight is the most steps ever in flight at once: never more
	// than Capacity.
	PeakInFlight int
}

type stats struct {
	claimed, rescued, completed, retried, failed, released, stale atomic.Int64
	claimQueries, flushes, listenerReconnects                     atomic.Int64
	claimedWithCompletions, emptyClaims                           atomic.Int64
}

// Stats returns a snapshot of the runner's counters.
func (r *Runner) Stats() Stats {
	inflight, active, peak := r.dispatcher.load()
	return Stats{
		Claimed:                r.stats.claimed.Load(),
		Rescued:                r.stats.rescued.Load(),
		Completed:              r.stats.completed.Load(),
		Retried:                r.stats.retried.Load(),
		Failed:                 r.stats.failed.Load(),
		Released:               r.stats.released.Load(),
		Stale:                  r.stats.stale.Load(),
		ClaimQueries:           r.stats.claimQueries.Load(),
		ClaimedWithCompletions: r.stats.claimedWithCompletions.Load(),
		EmptyClaims:            r.stats.emptyClaims.Load(),
		Flushes:                r.stats.flushes.Load(),
		ListenerReconnects:     r.stats.listenerReconnects.Load(),
		InFlight:               inflight,
		Capacity:               r.cfg.MaxConcurrentSteps,
		Active:                 active,
		PeakInFlight:           peak,
	}
}
