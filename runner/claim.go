package runner

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// claimerConfig configures a [claimer].
type claimerConfig struct {
	// WorkerID owns the leases claimed. Required.
	WorkerID string
	// LeaseFor is a claimed step's lease. Default [LeaseForDefault].
	LeaseFor time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
}

func (c *claimerConfig) withDefaults() {
	c.LeaseFor = cmp.Or(c.LeaseFor, LeaseForDefault)
	if c.Now == nil {
		c.Now = time.Now
	}
}

// claimerPermits is what the claimer needs of the permits (the
// [dispatcher]): how many are free, what to do with each claimed step, and
// whether the last claim was full.
type claimerPermits interface {
	free() int
	dispatch(s store.ClaimedStep)
	claimed(full bool)
}

// claimFunc claims up to p.Limit ready steps: [store.Claim] on the pool.
type claimFunc func(ctx context.Context, p store.ClaimParams) ([]store.ClaimedStep, error)

// claimer runs the claim loop: it claims whenever it is woken and permits
// are free. Wake-ups come from notifications, the poller, written outcomes
// (when the last claim was full), newly ready children and due retries.
type claimer struct {
	cfg        claimerConfig
	permits    claimerPermits
	namespaces func() []string
	claim      claimFunc
	stats      *stats
	log        *slog.Logger
	startStop

	wakeCh     chan struct{}
	mu         sync.Mutex
	stopped    bool // no more scheduled wake-ups
	retryAt    time.Time
	retryTimer *time.Timer
	// failingSince is when claims started failing (zero: the last one
	// worked); lastErr is the latest failure.
	failingSince time.Time
	lastErr      error
}

func newClaimer(cfg claimerConfig, permits claimerPermits, namespaces func() []string, claim claimFunc, st *stats, log *slog.Logger) *claimer {
	cfg.withDefaults()
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &claimer{
		cfg: cfg, permits: permits, namespaces: namespaces, claim: claim, stats: st, log: log,
		wakeCh: make(chan struct{}, 1), retryTimer: t,
	}
}

// Start starts the claim loop and asks it to claim at once.
func (c *claimer) Start(ctx context.Context) error {
	if err := c.start(ctx, c.loop); err != nil {
		return err
	}
	c.wake()
	return nil
}

// Stop ends the claim loop and the scheduled wake-ups.
func (c *claimer) Stop(context.Context) error {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.stop()
	c.mu.Lock()
	c.retryTimer.Stop()
	c.mu.Unlock()
	return nil
}

// claiming reports whether the claim loop runs (started, not stopped,
// its context not cancelled).
func (c *claimer) claiming() bool {
	c.mu.Lock()
	stopped := c.stopped
	c.mu.Unlock()
	ctx := c.context()
	return !stopped && ctx != nil && ctx.Err() == nil
}

// wake asks the claim loop to claim; bursts coalesce into one claim.
func (c *claimer) wake() {
	select {
	case c.wakeCh <- struct{}{}:
	default:
	}
}

// scheduleWake makes the claim loop claim at t (for a retry's run_at).
func (c *claimer) scheduleWake(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || (!c.retryAt.IsZero() && !t.Before(c.retryAt)) {
		return
	}
	c.retryAt = t
	c.retryTimer.Reset(max(t.Sub(c.cfg.Now()), 0))
}

func (c *claimer) loop(ctx context.Context) {
	errDelay := 50 * time.Millisecond
	var buf []store.ClaimedStep // reused by every claim
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wakeCh:
		case <-c.retryTimer.C:
			c.mu.Lock()
			c.retryAt = time.Time{}
			c.mu.Unlock()
		}
		for ctx.Err() == nil {
			free, namespaces := c.permits.free(), c.namespaces()
			if free == 0 || len(namespaces) == 0 {
				break
			}
			steps, err := c.claim(ctx, store.ClaimParams{
				WorkerID:   c.cfg.WorkerID,
				Namespaces: namespaces,
				Limit:      free,
				Now:        c.cfg.Now(),
				LeaseFor:   c.cfg.LeaseFor,
				Buf:        buf, // dispatch copies each step out
			})
			buf = steps
			if err != nil {
				if !c.failed(ctx, err, &errDelay) {
					return
				}
				continue
			}
			errDelay = 50 * time.Millisecond
			if !c.dispatch(steps, free) {
				break
			}
		}
	}
}

// dispatch hands claimed steps to the permits, reporting whether the claim
// was full (claim again: more may be waiting).
func (c *claimer) dispatch(steps []store.ClaimedStep, free int) bool {
	c.noteClaim(nil)
	if len(steps) == 0 {
		c.stats.emptyClaims.Add(1)
	}
	c.permits.claimed(len(steps) == free)
	for _, s := range steps {
		c.permits.dispatch(s)
	}
	clear(steps) // dispatched copies; keep no payloads alive here
	return len(steps) == free
}

// failed records a failed claim and waits *delay before the next one
// (doubling it, up to 5s), reporting false when ctx ended. The poller and
// notifications also wake the loop meanwhile.
func (c *claimer) failed(ctx context.Context, err error, delay *time.Duration) bool {
	c.noteClaim(err)
	if ctx.Err() != nil {
		return false
	}
	c.log.Error("claiming steps", "err", err)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(*delay):
	}
	*delay = min(2**delay, 5*time.Second)
	return true
}

// noteClaim records the outcome of a claim for health.
func (c *claimer) noteClaim(err error) {
	c.stats.claimQueries.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.failingSince, c.lastErr = time.Time{}, nil
		return
	}
	if c.failingSince.IsZero() {
		c.failingSince = c.cfg.Now()
	}
	c.lastErr = err
}

// health fails when every claim for the last failingFor failed.
func (c *claimer) health(failingFor time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.failingSince.IsZero() && c.cfg.Now().Sub(c.failingSince) >= failingFor {
		return fmt.Errorf("claims have failed since %s: %v", c.failingSince.UTC().Format(time.RFC3339), c.lastErr)
	}
	return nil
}

// CheckEventLoop reports whether the runner is claiming: it fails when the
// runner is not running, or when every claim for the last LeaseFor failed.
func (r *Runner) CheckEventLoop(context.Context) error {
	if !r.started.Load() || r.stopped.Load() {
		return errNotRunning
	}
	return r.claimer.health(r.cfg.LeaseFor)
}
