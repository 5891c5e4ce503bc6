package app

import (
	"log/slog"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/config"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// RunnerConfig is the runner configuration of [ServerConfig] with handlers
// resolving every callable, for a program that runs a [runner.Runner]
// itself (the bench, with its in-process functions).
func RunnerConfig(cfg config.Config, log *slog.Logger, handlers callout.Resolver) runner.Config {
	return ServerConfig(cfg, log).RunnerConfig(handlers)
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

func breaker(cfg config.Config) callout.BreakerSettings {
	b := cfg.Worker.Callout.Breaker
	return callout.BreakerSettings{
		ConsecutiveFailures: uint32(b.ConsecutiveFailures),
		OpenTimeout:         time.Duration(b.OpenTimeoutSeconds) * time.Second,
		Interval:            time.Duration(b.IntervalSeconds) * time.Second,
		MaxRequests:         uint32(b.MaxRequests),
	}
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
