package app

import (
	"log/slog"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/config"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// RunnerDeps are what a runner is wired to besides its configuration.
type RunnerDeps struct {
	// Handlers resolve callables: serve's handler registry, or the
	// bench's in-process functions.
	Handlers callout.Resolver
	// Endpoints loads the endpoint rows; nil loads none.
	Endpoints *runner.Endpoints
	Logger    *slog.Logger
	// OnEvent, when set, sees every step outcome.
	OnEvent func(runner.Event)
	// Observer receives measurements for metrics; nil: none.
	Observer runner.Observer
}

// RunnerConfig maps the configuration (worker.*) to the runner's: the one
// mapping serve, dev and the bench share.
func RunnerConfig(cfg config.Config, deps RunnerDeps) runner.Config {
	w := cfg.Worker
	es := w.EventSystems.Worker
	return runner.Config{
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
		Handlers:           deps.Handlers,
		Endpoints:          deps.Endpoints,
		Logger:             deps.Logger,
		Version:            cli.BuildVersion(),
		OnEvent:            deps.OnEvent,
		Observer:           deps.Observer,
		Retention:          retention(cfg),
	}
}

// runnerMode is the deployment mode, less what the file turned off.
func runnerMode(cfg config.Config) string {
	es := cfg.Worker.EventSystems.Worker
	mode := string(es.DeploymentMode)
	if mode == runner.ModeHybrid && !es.Metadata.PushConsumer.Enabled {
		mode = runner.ModePollingOnly
	}
	if mode == runner.ModeHybrid && !es.Metadata.FallbackPoller.Enabled {
		mode = runner.ModeEventDrivenOnly
	}
	return mode
}

// shutdownTimeout is worker.shutdown_timeout_seconds; 0 in the file means
// "release at once", which the runner spells -1.
func shutdownTimeout(cfg config.Config) time.Duration {
	if d := cfg.Worker.ShutdownTimeout(); d != 0 {
		return d
	}
	return -1
}

func retryDefaults(cfg config.Config) workflow.RetryDefaults {
	r := cfg.Worker.Retry
	return workflow.RetryDefaults{MaxAttempts: r.MaxAttempts, BackoffBaseMs: r.BackoffBaseMS, MaxBackoffMs: r.MaxBackoffMS}
}

func retention(cfg config.Config) runner.RetentionConfig {
	r := cfg.Worker.Retention
	return runner.RetentionConfig{
		Enabled:          r.Enabled,
		CompleteAfter:    r.CompleteAfter(),
		FailedAfter:      r.FailedAfter(),
		CancelledAfter:   r.CancelledAfter(),
		Interval:         r.Interval(),
		BatchSize:        r.BatchSize,
		BatchMaxSteps:    r.BatchMaxSteps,
		MaxBatchesPerRun: r.MaxBatchesPerRun,
	}
}
