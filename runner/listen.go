package runner

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// ListenerApplicationName is the application_name of a runner's LISTEN
// connection, as seen in pg_stat_activity.
func ListenerApplicationName(workerID string) string {
	return "tasker-runner-listener:" + workerID
}

// listenerConfig configures a [listener].
type listenerConfig struct {
	// ReconnectInitial and ReconnectMax bound the reconnect backoff.
	// Defaults [ReconnectInitialDefault] and [ReconnectMaxDefault].
	ReconnectInitial time.Duration
	ReconnectMax     time.Duration
	// Jitter scales a duration by a random factor in [1-f, 1+f). Default
	// none (d itself).
	Jitter func(d time.Duration, f float64) time.Duration
	// Observer defaults to [NopObserver].
	Observer Observer
}

func (c *listenerConfig) withDefaults() {
	if c.Jitter == nil {
		c.Jitter = noJitter
	}
	c.ReconnectInitial = cmp.Or(c.ReconnectInitial, ReconnectInitialDefault)
	c.ReconnectMax = cmp.Or(c.ReconnectMax, ReconnectMaxDefault)
	if c.Observer == nil {
		c.Observer = NopObserver{}
	}
}

// waker makes the claimer claim now: the [claimer].
type waker interface{ wake() }

// listenerDeps are a [listener]'s collaborators.
type listenerDeps struct {
	// connect opens the dedicated LISTEN connection (outside the pool).
	connect    func(ctx context.Context) (*pgx.Conn, error)
	namespaces *namespaces
	waker      waker
	// reloadEndpoints, when set, reloads the handler endpoints: at every
	// connect and whenever the database announces a change.
	reloadEndpoints func(ctx context.Context)
	stats           *stats
	log             *slog.Logger
}

// listener keeps one dedicated LISTEN connection (outside the pool, so it
// never holds a pooled connection) open for the served namespaces,
// reconnecting with capped exponential backoff. It wakes the claimer after
// every (re)connect, because notifications sent while disconnected are
// lost.
type listener struct {
	cfg listenerConfig
	listenerDeps
	startStop
	up atomic.Bool
}

func newListener(cfg listenerConfig, deps listenerDeps) *listener {
	cfg.withDefaults()
	return &listener{cfg: cfg, listenerDeps: deps}
}

// Start starts listening.
func (l *listener) Start(ctx context.Context) error { return l.start(ctx, l.loop) }

// connected reports whether the LISTEN connection is up.
func (l *listener) connected() bool { return l.up.Load() }

func (l *listener) loop(ctx context.Context) {
	backoff := l.cfg.ReconnectInitial
	for {
		connected, err := l.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if connected {
			backoff = l.cfg.ReconnectInitial
		}
		l.stats.listenerReconnects.Add(1)
		l.cfg.Observer.ListenerReconnect()
		wait := l.cfg.Jitter(backoff, 0.2)
		l.log.Warn("LISTEN connection lost; reconnecting", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, l.cfg.ReconnectMax)
	}
}

func (l *listener) listenOnce(ctx context.Context) (connected bool, err error) {
	conn, err := l.connect(ctx)
	if err != nil {
		return false, fmt.Errorf("connecting: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if err := l.subscribe(ctx, conn); err != nil {
		return false, err
	}
	l.up.Store(true)
	defer l.up.Store(false)
	l.waker.wake()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		if n.Channel == store.EndpointsChannel {
			l.reloadEndpoints(ctx)
			continue
		}
		if n.Channel == store.NamespacesChannel && l.namespaces.add(n.Payload) {
			if err := listenTo(ctx, conn, store.Channel(n.Payload)); err != nil {
				return true, fmt.Errorf("LISTEN: %w", err)
			}
		}
		l.waker.wake()
	}
}

// subscribe listens to every channel the runner needs, catching up on
// what changed while disconnected.
func (l *listener) subscribe(ctx context.Context, conn *pgx.Conn) error {
	if l.namespaces.all {
		if err := listenTo(ctx, conn, store.NamespacesChannel); err != nil {
			return fmt.Errorf("LISTEN: %w", err)
		}
		// Namespaces created while we were away.
		l.namespaces.discover(ctx, conn)
	}
	for _, ns := range l.namespaces.snapshot() {
		if err := listenTo(ctx, conn, store.Channel(ns)); err != nil {
			return fmt.Errorf("LISTEN: %w", err)
		}
	}
	if l.reloadEndpoints != nil {
		if err := listenTo(ctx, conn, store.EndpointsChannel); err != nil {
			return fmt.Errorf("LISTEN: %w", err)
		}
		// Changes made while disconnected were not announced to us.
		l.reloadEndpoints(ctx)
	}
	return nil
}

func listenTo(ctx context.Context, conn *pgx.Conn, ch string) error {
	_, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize())
	return err
}
