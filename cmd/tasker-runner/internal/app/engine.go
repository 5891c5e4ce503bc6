package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/config"
	"github.com/tasker-runner/tasker-runner/openapi"
	"github.com/tasker-runner/tasker-runner/runner"
)

// Engine is what `serve` runs besides the API: a [runner.Server] built from
// the configuration, the same front door a Go program embeds.
type Engine struct {
	Server *runner.Server
	// Client registers templates and submits tasks (the Server's).
	Client *runner.Client
}

// NewEngine builds the engine from the configuration; onEvent, when set,
// sees every step outcome.
func NewEngine(pool *pgxpool.Pool, cfg config.Config, log *slog.Logger, onEvent func(runner.Event), metrics *openapi.Metrics) (*Engine, error) {
	// Endpoints from the file are registrations too: refuse them before
	// anything starts, as the API would, named as the file names them.
	policy := urlPolicy(cfg)
	var refused []error
	for i, h := range cfg.Worker.Handlers {
		if h.Protocol != config.ProtocolGo && h.URL != "" {
			if err := policy.Check(h.URL); err != nil {
				refused = append(refused, fmt.Errorf("worker.handlers[%d].url: %w", i, err))
			}
		}
	}
	if err := errors.Join(refused...); err != nil {
		return nil, err
	}
	sc := ServerConfig(cfg, log)
	sc.OnEvent = onEvent
	sc.Observer = metrics.RunnerObserver()
	sc.CallObserver = metrics.CalloutObserver()
	srv, err := runner.NewServer(pool, sc)
	if err != nil {
		return nil, err
	}
	metrics.SetRunner(srv)
	metrics.SetEndpoints(srv)
	return &Engine{Server: srv, Client: srv.Client()}, nil
}

// ServerConfig maps the configuration (worker.*) to the front door's: the
// one mapping serve, dev and the bench share.
func ServerConfig(cfg config.Config, log *slog.Logger) runner.ServerConfig {
	w := cfg.Worker
	es := w.EventSystems.Worker
	return runner.ServerConfig{
		WorkerID:           w.WorkerID,
		Namespaces:         w.Namespaces,
		Mode:               runnerMode(cfg),
		MaxConcurrentSteps: es.Metadata.PushConsumer.MaxConcurrentSteps,
		PollInterval:       es.Metadata.FallbackPoller.Interval(),
		ReconnectInitial:   es.Metadata.Listener.ReconnectInitial(),
		ReconnectMax:       es.Metadata.Listener.ReconnectMax(),
		LeaseFor:           w.Leases.VisibilityTimeout(),
		HeartbeatInterval:  w.Leases.HeartbeatInterval(),
		FlushInterval:      w.Completion.FlushInterval(),
		FlushBatch:         w.Completion.MaxBatch,
		FlushWriters:       w.Completion.Writers,
		ShutdownTimeout:    shutdownTimeout(cfg),
		StepTimeout:        w.Callout.DefaultTimeout(),
		RetryDefaults:      retryDefaults(cfg),
		MaxStepsPerOutcome: w.Dynamic.MaxStepsPerOutcome,
		MaxStepsPerTask:    w.Dynamic.MaxStepsPerTask,
		MaxYieldsPerStep:   w.Dynamic.MaxYieldsPerStep,
		Retention:          retention(cfg),
		Version:            cli.BuildVersion(),
		Callout: runner.CalloutConfig{
			MaxIdleConnsPerHost: w.Callout.MaxIdleConnsPerHost,
			URLPolicy:           urlPolicy(cfg),
			MaxResponseBytes:    int64(w.Callout.MaxResponseBytes),
			Breaker:             breaker(cfg),
		},
		Endpoints:  staticEndpoints(cfg),
		SecretDirs: w.Callout.SecretDirs,
		Logger:     log,
	}
}

// staticEndpoints are worker.handlers.
func staticEndpoints(cfg config.Config) []runner.StaticEndpoint {
	out := make([]runner.StaticEndpoint, 0, len(cfg.Worker.Handlers))
	for _, h := range cfg.Worker.Handlers {
		ep := runner.StaticEndpoint{
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
		out = append(out, ep)
	}
	return out
}

// start starts the server. stop stops it gracefully: claiming stops,
// running steps get shutdownTimeout, the rest are given back, every result
// is written.
func (e *Engine) start(ctx context.Context, env *cli.Env, shutdownTimeout time.Duration) (stop func() error, err error) {
	if err := e.Server.Start(ctx); err != nil {
		return nil, errors.Join(StoppedWhileStarting(ctx, env, err), e.Server.Stop(context.WithoutCancel(ctx)))
	}
	return func() error {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout+10*time.Second)
		defer cancel()
		return e.Server.Stop(stopCtx)
	}, nil
}
