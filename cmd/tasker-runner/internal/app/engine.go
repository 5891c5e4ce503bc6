package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/config"
	"github.com/tasker-runner/tasker-runner/openapi"
	"github.com/tasker-runner/tasker-runner/runner"
)

// Engine is what `serve` runs besides the API: the handler registry, the
// runner and a client for templates and tasks.
type Engine struct {
	funcs    *callout.Funcs
	Registry *callout.Registry
	runner   *runner.Runner
	Client   *runner.Client
}

// NewEngine builds the engine from the configuration. funcs holds the
// in-process Go handlers (the dev example registers some); onEvent, when
// set, sees every step outcome.
func NewEngine(pool *pgxpool.Pool, cfg config.Config, log *slog.Logger, funcs *callout.Funcs, onEvent func(runner.Event), metrics *openapi.Metrics) (*Engine, error) {
	if funcs == nil {
		funcs = &callout.Funcs{}
	}
	w := cfg.Worker
	policy := urlPolicy(cfg)
	// Endpoints from the file are registrations too: refuse them before
	// anything starts, as the API would.
	var refused []error
	for i, h := range w.Handlers {
		if h.Protocol != config.ProtocolGo && h.URL != "" {
			if err := policy.Check(h.URL); err != nil {
				refused = append(refused, fmt.Errorf("worker.handlers[%d].url: %w", i, err))
			}
		}
	}
	if err := errors.Join(refused...); err != nil {
		return nil, err
	}
	reg := callout.NewRegistry(callout.RegistryConfig{
		Funcs:    funcs,
		Observer: metrics.CalloutObserver(),
		Client: callout.NewClient(callout.NewTransport(callout.TransportOptions{
			MaxIdleConnsPerHost: w.Callout.MaxIdleConnsPerHost,
			URLPolicy:           policy,
		})),
		URLPolicy:        policy,
		MaxResponseBytes: int64(w.Callout.MaxResponseBytes),
		Breaker: callout.BreakerSettings{
			ConsecutiveFailures: uint32(w.Callout.Breaker.ConsecutiveFailures),
			OpenTimeout:         time.Duration(w.Callout.Breaker.OpenTimeoutSeconds) * time.Second,
			Interval:            time.Duration(w.Callout.Breaker.IntervalSeconds) * time.Second,
			MaxRequests:         uint32(w.Callout.Breaker.MaxRequests),
		},
	})
	static := make([]callout.Endpoint, 0, len(w.Handlers))
	for _, h := range w.Handlers {
		ep := callout.Endpoint{
			Namespace:      h.Namespace,
			Pattern:        h.Pattern,
			URL:            h.URL,
			Protocol:       string(h.Protocol),
			Timeout:        h.Timeout(),
			MaxConcurrency: h.MaxConcurrency,
			BatchMax:       h.BatchMax,
			BatchWindow:    h.BatchWindow(),
			Headers:        h.Headers,
		}
		if h.Secret != "" {
			ep.Secrets = []string{h.Secret}
		}
		static = append(static, ep)
	}

	r, err := runner.New(pool, RunnerConfig(cfg, RunnerDeps{
		Handlers:  reg,
		Endpoints: &runner.Endpoints{Registry: reg, Static: static, DB: pool, SecretDirs: w.Callout.SecretDirs, Logger: log},
		Logger:    log,
		OnEvent:   onEvent,
		Observer:  metrics.RunnerObserver(),
	}))
	if err != nil {
		reg.Close()
		return nil, err
	}
	client := runner.NewClient(pool, runner.ClientConfig{RetryDefaults: retryDefaults(cfg)})
	metrics.SetRunner(r)
	metrics.SetEndpoints(reg)
	return &Engine{funcs: funcs, Registry: reg, runner: r, Client: client}, nil
}

// urlPolicy builds the handler URL policy of worker.callout.url_policy.
// serve always has one: the library default (none) is for embedding and
// tests, the configuration's default is strict.
func urlPolicy(cfg config.Config) *callout.URLPolicy {
	u := cfg.Worker.Callout.URLPolicy
	return &callout.URLPolicy{
		AllowLoopback:  u.AllowLoopback,
		AllowHosts:     u.AllowHosts,
		AllowCIDRs:     u.CIDRs(),
		AllowedSchemes: u.AllowedSchemes,
	}
}

// listenerCheck reports the LISTEN connection's health for readiness.
func (e *Engine) listenerCheck(mode string) func(context.Context) error {
	return func(context.Context) error {
		if mode == runner.ModePollingOnly || e.runner.ListenerConnected() {
			return nil
		}
		return fmt.Errorf("LISTEN connection is down (reconnecting; the poller keeps work moving in hybrid mode)")
	}
}
