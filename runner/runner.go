package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// Runner claims and runs steps. Create one with [New], then [Runner.Start]
// it; [Runner.Stop] shuts it down gracefully. Cancelling the context given
// to Start instead stops everything at once, as a crash would: leases are
// left to expire and be rescued by other runners.
type Runner struct {
	cfg   Config
	pool  *pgxpool.Pool
	log   *slog.Logger
	tpls  *templateCache
	stats stats

	wakeCh chan struct{}
	// idle holds the hand-over channels of idle worker goroutines, the
	// most recently idle last.
	idleMu sync.Mutex
	idle   []chan *flight

	mu         sync.Mutex
	active     int                   // handlers running
	inflight   map[uuid.UUID]*flight // claimed and not yet written (permits in use)
	more       bool                  // the last claim was full: more may be waiting
	retryAt    time.Time             // earliest scheduled retry wake-up
	retryTimer *time.Timer
	namespaces []string
	allNS      bool
	// claimFailingSince is when claims started failing (zero: the last
	// one worked); lastClaimErr is the latest failure.
	claimFailingSince time.Time
	lastClaimErr      error

	started, stopped atomic.Bool
	runCtx           context.Context
	stopClaiming     context.CancelFunc
	abandonHandlers  context.CancelFunc
	handlerCtx       context.Context
	loops            sync.WaitGroup // claim loop, listener, poller, retention
	handlers         sync.WaitGroup // one per dispatched step
	workers          sync.WaitGroup // worker goroutines, busy or idle
	claimCtx         context.Context
	peakInFlight     int            // guarded by mu
	maint            sync.WaitGroup // lease extender, heartbeat
	stopMaint        context.CancelFunc
	completer        *completer
	listenerUp       atomic.Bool
	retention        retention
}

// flight is a claimed step until its outcome is written.
type flight struct {
	step     store.ClaimedStep
	done     bool // the handler returned and its outcome was queued
	released bool // shutdown gave the step back; drop the outcome
}

// New returns a [Runner] for pool. It does not touch the database until
// [Runner.Start].
func New(pool *pgxpool.Pool, cfg Config) (*Runner, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	r := &Runner{
		cfg:      cfg,
		pool:     pool,
		log:      cfg.Logger.With("worker_id", cfg.WorkerID),
		tpls:     newTemplateCache(pool),
		wakeCh:   make(chan struct{}, 1),
		inflight: map[uuid.UUID]*flight{},
		allNS:    len(cfg.Namespaces) == 0,
	}
	r.namespaces = append([]string(nil), cfg.Namespaces...)
	return r, nil
}

// WorkerID returns the runner's id in leases and audit rows.
func (r *Runner) WorkerID() string { return r.cfg.WorkerID }

// Start registers the worker and starts claiming. ctx bounds the runner's
// whole life: cancelling it is a hard stop.
func (r *Runner) Start(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("runner: already started")
	}
	now := r.cfg.Now()
	if r.allNS {
		ns, err := store.ListNamespaces(ctx, r.pool)
		if err != nil {
			return fmt.Errorf("runner: start: %w", err)
		}
		r.namespaces = ns
	}
	host, _ := os.Hostname()
	if err := store.RegisterWorker(ctx, r.pool, store.Worker{
		WorkerID: r.cfg.WorkerID, Hostname: host, Version: r.cfg.Version,
		Namespaces: r.cfg.Namespaces, StartedAt: now,
	}); err != nil {
		return fmt.Errorf("runner: start: %w", err)
	}

	if r.cfg.Endpoints != nil {
		if err := r.cfg.Endpoints.Reload(ctx); err != nil {
			return fmt.Errorf("runner: start: %w", err)
		}
	}
	r.runCtx = ctx
	claimCtx, stopClaiming := context.WithCancel(ctx)
	r.claimCtx, r.stopClaiming = claimCtx, stopClaiming
	r.handlerCtx, r.abandonHandlers = context.WithCancel(ctx)
	maintCtx, stopMaint := context.WithCancel(ctx)
	r.stopMaint = stopMaint
	r.retryTimer = time.NewTimer(time.Hour)
	r.retryTimer.Stop()
	r.completer = newCompleter(r)
	r.completer.start(ctx)

	r.loops.Add(1)
	go func() { defer r.loops.Done(); r.claimLoop(claimCtx) }()
	if r.cfg.listens() {
		r.loops.Add(1)
		go func() { defer r.loops.Done(); r.listen(claimCtx) }()
	}
	if r.cfg.polls() {
		r.loops.Add(1)
		go func() { defer r.loops.Done(); r.poll(claimCtx) }()
	}
	// Retention stops with claiming: Stop cancels a run in progress (its
	// transaction rolls back) rather than wait for it.
	if r.cfg.Retention.Enabled && !r.cfg.Retention.keepsAll() {
		r.loops.Add(1)
		go func() { defer r.loops.Done(); r.retain(claimCtx) }()
	}
	r.maint.Add(1)
	go func() { defer r.maint.Done(); r.maintain(maintCtx) }()
	if r.cfg.Endpoints != nil {
		r.maint.Add(1)
		go func() { defer r.maint.Done(); r.recheckEndpoints(maintCtx) }()
	}

	r.wake()
	r.log.Info("runner started", "mode", r.cfg.Mode, "namespaces", r.namespaceList(), "max_concurrent_steps", r.cfg.MaxConcurrentSteps)
	return nil
}

// Stop shuts the runner down gracefully: it stops claiming, lets in-flight
// steps finish for up to [Config.ShutdownTimeout] (or until ctx is done),
// gives the leases of the rest back without consuming their attempts, writes
// every pending result and marks the worker stopped. If the context given to
// Start is already cancelled, Stop only waits for the goroutines to exit.
func (r *Runner) Stop(ctx context.Context) error {
	if !r.started.Load() {
		return nil
	}
	if !r.stopped.CompareAndSwap(false, true) {
		return nil
	}
	// A barrier: a write that claimed steps with its completions admits
	// them under r.mu after checking stopped (see completer.handOver), so
	// past this point none is admitted and the waits below see them all.
	r.mu.Lock()
	r.mu.Unlock()
	r.stopClaiming()
	r.loops.Wait()
	r.mu.Lock()
	r.retryTimer.Stop()
	r.mu.Unlock()

	if r.cfg.ShutdownTimeout > 0 {
		waitCtx, cancel := context.WithTimeout(ctx, r.cfg.ShutdownTimeout)
		_ = waitGroup(waitCtx, &r.handlers)
		cancel()
	}
	// Whatever still runs is given back; its late outcome is dropped.
	var release []*flight
	r.mu.Lock()
	for _, f := range r.inflight {
		if !f.done && !f.released {
			f.released = true
			release = append(release, f)
		}
	}
	r.mu.Unlock()
	r.abandonHandlers()
	r.handlers.Wait()
	r.workers.Wait()
	for _, f := range release {
		r.completer.add(pendingOutcome{step: f.step, completion: store.Completion{
			StepUUID: f.step.StepUUID, Attempt: f.step.Attempt, Epoch: f.step.Epoch, State: store.StateEnqueued, RunAt: r.cfg.Now(),
		}})
	}
	if len(release) > 0 {
		r.log.Info("released leases of unfinished steps", "count", len(release))
	}
	flushErr := r.completer.stop()
	r.stopMaint()
	r.maint.Wait()

	if r.runCtx.Err() != nil {
		return nil // hard stop: nothing more may touch the database
	}
	if err := store.StopWorker(context.WithoutCancel(ctx), r.pool, r.cfg.WorkerID, r.cfg.Now()); err != nil {
		return errors.Join(flushErr, err)
	}
	r.log.Info("runner stopped")
	return flushErr
}

// Wait blocks until every goroutine of a hard-stopped runner (its Start
// context cancelled) has exited.
func (r *Runner) Wait() {
	r.loops.Wait()
	r.handlers.Wait()
	r.workers.Wait()
	if r.completer != nil {
		<-r.completer.done
	}
	r.maint.Wait()
}

// ListenerConnected reports whether the LISTEN connection is up.
func (r *Runner) ListenerConnected() bool { return r.listenerUp.Load() }

// wake asks the claim loop to claim; bursts coalesce into one claim.
func (r *Runner) wake() {
	select {
	case r.wakeCh <- struct{}{}:
	default:
	}
}

func (r *Runner) namespaceList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.namespaces...)
}

// addNamespace starts serving a namespace seen for the first time.
func (r *Runner) addNamespace(ns string) bool {
	if !r.allNS || ns == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.namespaces {
		if n == ns {
			return false
		}
	}
	r.namespaces = append(r.namespaces, ns)
	return true
}

func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
