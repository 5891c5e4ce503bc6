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
			if len(steps) == 0 {
				r.stats.emptyClaims.Add(1)
			}
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
	return r.cfg.MaxConcurrentSteps - len(r.inflight), r.namespaces
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
