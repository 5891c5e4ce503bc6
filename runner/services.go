package runner

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// build creates the runner's services from its config and wires each to
// the narrow interfaces of the others it uses, then declares the shutdown
// order in r.services.
func (r *Runner) build() {
	cfg := &r.cfg
	r.completer = newCompleter(completerConfig{
		FlushInterval: cfg.FlushInterval, FlushBatch: cfg.FlushBatch, FlushWriters: cfg.FlushWriters,
		ClaimWithCompletions: !cfg.DisableClaimWithCompletions, LeaseFor: cfg.LeaseFor,
		Now: cfg.Now, OnEvent: cfg.OnEvent, Observer: cfg.Observer,
	}, completerDeps{store: poolCompleterStore{r}, claiming: r.ridingClaim, stats: &r.stats, log: r.log})
	r.dispatcher = newDispatcher(dispatcherConfig{Capacity: cfg.MaxConcurrentSteps, ShutdownTimeout: cfg.ShutdownTimeout},
		r, r.completer, &r.stats, r.log)
	r.claimer = newClaimer(claimerConfig{WorkerID: cfg.WorkerID, LeaseFor: cfg.LeaseFor, Now: cfg.Now},
		r.dispatcher, r.namespaces.current, func(ctx context.Context, p store.ClaimParams) ([]store.ClaimedStep, error) {
			return store.Claim(ctx, r.pool, p)
		}, &r.stats, r.log)
	r.completer.permits, r.completer.waker = r.dispatcher, r.claimer
	r.retainer = &retainer{cfg: cfg.Retention, pool: r.pool, now: cfg.Now, jitter: cfg.jitter, obs: cfg.Observer, log: r.log}

	// Shutdown order. Claiming stops first (the claimer and what wakes it;
	// retention with them: a graceful stop cancels a run in progress).
	// Then the dispatcher lets in-flight steps finish or gives them back,
	// the completer writes every outcome, and only then do the leases stop
	// being extended and the heartbeat stop.
	r.services = []service{r.claimer}
	if cfg.listens() {
		r.listener = r.newListener()
		r.services = append(r.services, r.listener)
	}
	if cfg.polls() {
		var discover func(context.Context)
		if r.namespaces.all {
			discover = r.discoverNamespaces
		}
		r.services = append(r.services, newPoller(pollerConfig{Interval: cfg.PollInterval, Jitter: cfg.jitter},
			r.claimer, discover, r.ListenerConnected))
	}
	if cfg.Retention.Enabled && !cfg.Retention.keepsAll() {
		r.services = append(r.services, r.retainer)
	}
	r.services = append(r.services, r.dispatcher, r.completer, newMaintainer(maintainerConfig{
		LeaseFor: cfg.LeaseFor, HeartbeatInterval: cfg.HeartbeatInterval, Sweep: !cfg.polls(), Now: cfg.Now,
	}, r.dispatcher, poolMaintainerStore{db: r.pool, workerID: cfg.WorkerID}, r.claimer, r.log))
	if cfg.Endpoints != nil {
		r.services = append(r.services, &endpointWatcher{endpoints: cfg.Endpoints, reload: r.reloadEndpoints})
	}
}

func (r *Runner) newListener() *listener {
	deps := listenerDeps{
		connect: func(ctx context.Context) (*pgx.Conn, error) {
			cc := r.pool.Config().ConnConfig.Copy()
			cc.RuntimeParams["application_name"] = ListenerApplicationName(r.cfg.WorkerID)
			return pgx.ConnectConfig(ctx, cc)
		},
		namespaces: r.namespaces, waker: r.claimer, stats: &r.stats, log: r.log,
	}
	if r.cfg.Endpoints != nil {
		deps.reloadEndpoints = r.reloadEndpoints
	}
	return newListener(listenerConfig{
		ReconnectInitial: r.cfg.ReconnectInitial, ReconnectMax: r.cfg.ReconnectMax,
		Jitter: r.cfg.jitter, Observer: r.cfg.Observer,
	}, deps)
}

// ridingClaim returns the namespaces a write's claim may take steps from,
// or false once the runner stops claiming.
func (r *Runner) ridingClaim() ([]string, bool) {
	if r.stopped.Load() || !r.claimer.claiming() {
		return nil, false
	}
	return r.namespaces.current(), true
}

// discoverNamespaces adds the namespaces created since the last look.
func (r *Runner) discoverNamespaces(ctx context.Context) { r.namespaces.discover(ctx, r.pool) }

func (r *Runner) reloadEndpoints(ctx context.Context) {
	if err := r.cfg.Endpoints.Reload(ctx); err != nil && ctx.Err() == nil {
		r.log.Error("reloading handler endpoints; keeping the previous set", "err", err)
	}
}
