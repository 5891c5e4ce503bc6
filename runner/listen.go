package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// listen keeps one dedicated LISTEN connection (outside the pool, so it never
// holds a pooled connection) open for the served namespaces, reconnecting
// with capped exponential backoff. It wakes the claim loop after every
// (re)connect, because notifications sent while disconnected are lost.
func (r *Runner) listen(ctx context.Context) {
	backoff := r.cfg.ReconnectInitial
	for {
		connected, err := r.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if connected {
			backoff = r.cfg.ReconnectInitial
		}
		r.stats.listenerReconnects.Add(1)
		r.cfg.Observer.ListenerReconnect()
		wait := r.cfg.jitter(backoff, 0.2)
		r.log.Warn("LISTEN connection lost; reconnecting", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, r.cfg.ReconnectMax)
	}
}

// ListenerApplicationName is the application_name of a runner's LISTEN
// connection, as seen in pg_stat_activity.
func ListenerApplicationName(workerID string) string {
	return "tasker-runner-listener:" + workerID
}

func (r *Runner) listenOnce(ctx context.Context) (connected bool, err error) {
	cc := r.pool.Config().ConnConfig.Copy()
	cc.RuntimeParams["application_name"] = ListenerApplicationName(r.cfg.WorkerID)
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return false, fmt.Errorf("connecting: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	listenTo := func(ch string) error {
		_, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize())
		return err
	}
	if r.allNS {
		if err := listenTo(store.NamespacesChannel); err != nil {
			return false, fmt.Errorf("LISTEN: %w", err)
		}
		// Namespaces created while we were away.
		if ns, err := store.ListNamespaces(ctx, conn); err == nil {
			for _, n := range ns {
				r.addNamespace(n)
			}
		}
	}
	for _, ns := range r.namespaceList() {
		if err := listenTo(store.Channel(ns)); err != nil {
			return false, fmt.Errorf("LISTEN: %w", err)
		}
	}
	if r.cfg.Endpoints != nil {
		if err := listenTo(store.EndpointsChannel); err != nil {
			return false, fmt.Errorf("LISTEN: %w", err)
		}
		// Changes made while disconnected were not announced to us.
		r.reloadEndpoints(ctx)
	}
	r.listenerUp.Store(true)
	defer r.listenerUp.Store(false)
	r.wake()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		if n.Channel == store.EndpointsChannel {
			r.reloadEndpoints(ctx)
			continue
		}
		if n.Channel == store.NamespacesChannel {
			if r.addNamespace(n.Payload) {
				if err := listenTo(store.Channel(n.Payload)); err != nil {
					return true, fmt.Errorf("LISTEN: %w", err)
				}
			}
		}
		r.wake()
	}
}

// poll wakes the claim loop at jittered intervals, so work is found even
// without notifications (polling_only, a lost LISTEN connection, due
// retries). When serving every namespace it also picks up new namespaces.
func (r *Runner) poll(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.cfg.jitter(r.cfg.PollInterval, 0.2)):
		}
		if r.allNS && !r.listenerUp.Load() {
			if ns, err := store.ListNamespaces(ctx, r.pool); err == nil {
				for _, n := range ns {
					r.addNamespace(n)
				}
			}
		}
		r.wake()
	}
}

// recheckEndpoints reloads the endpoints every RecheckInterval while one
// of them is unusable, so that a secret that becomes resolvable (a file
// mounted late, a rotated variable) is picked up without a restart or a
// NOTIFY (which polling_only runners do not hear).
func (r *Runner) recheckEndpoints(ctx context.Context) {
	tick := time.NewTicker(r.cfg.Endpoints.recheckInterval())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if r.cfg.Endpoints.anyUnusable() {
			r.reloadEndpoints(ctx)
		}
	}
}

func (r *Runner) reloadEndpoints(ctx context.Context) {
	if err := r.cfg.Endpoints.Reload(ctx); err != nil && ctx.Err() == nil {
		r.log.Error("reloading handler endpoints; keeping the previous set", "err", err)
	}
}
