package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// Runner claims and runs steps. Create one with [New], then [Runner.Start]
// it; [Runner.Stop] shuts it down gracefully. Cancelling the context given
// to Start instead stops everything at once, as a crash would: leases are
// left to expire and be rescued by other runners.
//
// A Runner is a set of services, each with its own goroutines, config and
// start/stop: the claimer, listener and poller find and claim ready steps,
// the dispatcher owns the permits and runs the steps, the completer writes
// their outcomes (claiming the next steps as it writes), the maintainer
// extends leases and beats the worker's heart, the retainer deletes
// expired tasks and the endpoint watcher rechecks unusable endpoints. The
// order they stop in is declared once (see services.go).
type Runner struct {
	cfg  Config
	pool *pgxpool.Pool
	log  *slog.Logger
	tpls *templateCache

	stats      stats
	namespaces *namespaces
	dispatcher *dispatcher
	claimer    *claimer
	completer  *completer
	listener   *listener // nil without LISTEN (polling_only)
	retainer   *retainer
	// services in shutdown order (declared in build); Start starts them in
	// the reverse order.
	services []service

	started, stopped atomic.Bool
	runCtx           context.Context
}

// errNotRunning is reported by [Runner.CheckEventLoop] outside Start..Stop.
var errNotRunning = errors.New("runner is not running")

// New returns a [Runner] for pool. It does not touch the database until
// [Runner.Start].
func New(pool *pgxpool.Pool, cfg Config) (*Runner, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	r := &Runner{
		cfg:        cfg,
		pool:       pool,
		log:        cfg.Logger.With("worker_id", cfg.WorkerID),
		tpls:       newTemplateCache(pool),
		namespaces: newNamespaces(cfg.Namespaces),
	}
	r.build()
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
	if err := r.register(ctx); err != nil {
		return fmt.Errorf("runner: start: %w", err)
	}
	r.runCtx = ctx
	for i := len(r.services) - 1; i >= 0; i-- {
		if err := r.services[i].Start(ctx); err != nil {
			return fmt.Errorf("runner: start: %w", err)
		}
	}
	r.log.Info("runner started", "mode", r.cfg.Mode, "namespaces", r.namespaces.snapshot(), "max_concurrent_steps", r.cfg.MaxConcurrentSteps)
	return nil
}

// register learns the namespaces (serving every one), registers the worker
// and loads the endpoints.
func (r *Runner) register(ctx context.Context) error {
	if r.namespaces.all {
		ns, err := store.ListNamespaces(ctx, r.pool)
		if err != nil {
			return err
		}
		r.namespaces.set(ns)
	}
	host, _ := os.Hostname()
	if err := store.RegisterWorker(ctx, r.pool, store.Worker{
		WorkerID: r.cfg.WorkerID, Hostname: host, Version: r.cfg.Version,
		Namespaces: r.cfg.Namespaces, StartedAt: r.cfg.Now(),
	}); err != nil {
		return err
	}
	if r.cfg.Endpoints != nil {
		return r.cfg.Endpoints.Reload(ctx)
	}
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
	// them after checking, under the dispatcher's lock, that it is open
	// (see dispatcher.settle), so past this point none is admitted and the
	// dispatcher's waits see them all.
	r.dispatcher.close()
	var errs []error
	for _, s := range r.services {
		errs = append(errs, s.Stop(ctx))
	}
	if r.runCtx == nil || r.runCtx.Err() != nil {
		return nil // hard stop: nothing more may touch the database
	}
	if err := store.StopWorker(context.WithoutCancel(ctx), r.pool, r.cfg.WorkerID, r.cfg.Now()); err != nil {
		return errors.Join(append(errs, err)...)
	}
	r.log.Info("runner stopped")
	return errors.Join(errs...)
}

// Wait blocks until every goroutine of a hard-stopped runner (its Start
// context cancelled) has exited.
func (r *Runner) Wait() {
	for _, s := range r.services {
		s.Wait()
	}
}

// ListenerConnected reports whether the LISTEN connection is up.
func (r *Runner) ListenerConnected() bool { return r.listener != nil && r.listener.connected() }
