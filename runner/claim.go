package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// claimLoop claims whenever it is woken and permits are free. Wake-ups come
// from notifications, the poller, written outcomes (when the last claim was
// full), newly ready children and due retries.
func (r *Runner) claimLoop(ctx context.Context) {
	errDelay := 50 * time.Millisecond
	var buf []store.ClaimedStep // reused by every claim
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wakeCh:
		case <-r.retryTimer.C:
			r.mu.Lock()
			r.retryAt = time.Time{}
			r.mu.Unlock()
		}
		for ctx.Err() == nil {
			free, namespaces := r.freePermits()
			if free == 0 || len(namespaces) == 0 {
				break
			}
			steps, err := store.Claim(ctx, r.pool, store.ClaimParams{
				WorkerID:   r.cfg.WorkerID,
				Namespaces: namespaces,
				Limit:      free,
				Now:        r.cfg.Now(),
				LeaseFor:   r.cfg.LeaseFor,
				Buf:        buf, // dispatch copies each step out
			})
			buf = steps
			r.stats.claimQueries.Add(1)
			r.noteClaim(err)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				r.log.Error("claiming steps", "err", err)
				// Try again shortly; the poller and notifications also wake us.
				select {
				case <-ctx.Done():
					return
				case <-time.After(errDelay):
				}
				errDelay = min(2*errDelay, 5*time.Second)
				continue
			}
			errDelay = 50 * time.Millisecond
			r.mu.Lock()
			r.more = len(steps) == free
			r.mu.Unlock()
			for _, s := range steps {
				r.dispatch(s)
			}
			clear(steps) // dispatched copies; keep no payloads alive here
			if len(steps) < free {
				break
			}
		}
	}
}

// freePermits returns how many steps may be claimed now, and from where.
// A permit is held from the claim until the step's outcome is written, not
// only while its handler runs: otherwise, whenever handlers finish faster
// than outcomes are written, claimed steps pile up in the completer without
// bound (memory, and leases that expire before their outcome is written).
func (r *Runner) freePermits() (int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	free := r.cfg.MaxConcurrentSteps - len(r.inflight) - r.reserved
	if free <= 0 && r.reserved > 0 {
		r.missedWake = true // the write holding them wakes the loop when done
	}
	return free, r.namespaces
}

// writeClaimMaxBatch is the largest outcome batch whose write also claims.
// Small batches are the light load, where a step's start waits for the
// claim's round trip and commit after the write that made it ready; under
// load the claim loop claims in bulk anyway, and claims riding on every
// write measured 12% slower there (claims too small, and more of them).
const writeClaimMaxBatch = 8

// claimWithWrite reserves the free permits for a claim made by the write of
// n outcomes (see [store.CompleteAndClaim]). It returns the claim's
// parameters, or a zero Limit when that write should not claim: a large
// batch, no free permits, or the runner stopping. With a Limit, the caller
// must call [Runner.writeClaimed] once the write is done.
func (r *Runner) claimWithWrite(n int) store.ClaimParams {
	r.mu.Lock()
	defer r.mu.Unlock()
	free := r.cfg.MaxConcurrentSteps - len(r.inflight) - r.reserved
	if n > writeClaimMaxBatch || free <= 0 || len(r.namespaces) == 0 || r.claimCtx.Err() != nil {
		return store.ClaimParams{}
	}
	r.reserved += free
	r.writeClaims.Add(1)
	return store.ClaimParams{WorkerID: r.cfg.WorkerID, Namespaces: r.namespaces, Limit: free, LeaseFor: r.cfg.LeaseFor}
}

// writeClaimed dispatches what a write claimed with p and frees p's
// reservation. If the runner began stopping meanwhile, the steps are given
// back (their attempts restored), or left to their leases on a hard stop.
func (r *Runner) writeClaimed(p store.ClaimParams, steps []store.ClaimedStep) {
	defer r.writeClaims.Done()
	if r.claimCtx.Err() == nil {
		r.stats.claimedByWrites.Add(int64(len(steps)))
		for _, s := range steps {
			r.dispatch(s)
		}
	} else if r.runCtx.Err() == nil {
		for _, s := range steps {
			r.completer.add(pendingOutcome{step: s, completion: store.Completion{
				StepUUID: s.StepUUID, Attempt: s.Attempt, State: store.StateEnqueued, RunAt: r.cfg.Now(),
			}})
		}
	}
	r.mu.Lock()
	r.reserved -= p.Limit
	wake := r.missedWake && r.reserved == 0 || len(steps) == p.Limit
	if r.reserved == 0 {
		r.missedWake = false
	}
	r.mu.Unlock()
	if wake {
		r.wake() // the claim loop was kept off these permits, or more may wait
	}
}

// scheduleWake makes the claim loop claim at t (for a retry's run_at).
func (r *Runner) scheduleWake(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped.Load() || (!r.retryAt.IsZero() && !t.Before(r.retryAt)) {
		return
	}
	r.retryAt = t
	r.retryTimer.Reset(max(t.Sub(r.cfg.Now()), 0))
}

// noteClaim records the outcome of a claim for [Runner.CheckEventLoop].
func (r *Runner) noteClaim(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.claimFailingSince, r.lastClaimErr = time.Time{}, nil
		return
	}
	if r.claimFailingSince.IsZero() {
		r.claimFailingSince = r.cfg.Now()
	}
	r.lastClaimErr = err
}

// CheckEventLoop reports whether the runner is claiming: it fails when the
// runner is not running, or when every claim for the last LeaseFor failed.
func (r *Runner) CheckEventLoop(context.Context) error {
	if !r.started.Load() || r.stopped.Load() {
		return errors.New("runner is not running")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.claimFailingSince.IsZero() && r.cfg.Now().Sub(r.claimFailingSince) >= r.cfg.LeaseFor {
		return fmt.Errorf("claims have failed since %s: %v", r.claimFailingSince.UTC().Format(time.RFC3339), r.lastClaimErr)
	}
	return nil
}
