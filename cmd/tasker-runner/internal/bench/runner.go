package bench

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/app"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/config"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
)

const noopCallable = "bench.noop"

func noopHandler(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
	return contracts.StepResult{Success: true}, nil
}

func singleStepTemplate(ns string) string {
	return fmt.Sprintf("name: single\nnamespace_name: %s\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: {callable: %s}\n", ns, noopCallable)
}

func linearTemplate(ns string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: linear%d\nnamespace_name: %s\nversion: 1.0.0\nsteps:\n", n, ns)
	for i := range n {
		fmt.Fprintf(&b, "  - name: s%d\n    handler: {callable: %s}\n", i+1, noopCallable)
		if i > 0 {
			fmt.Fprintf(&b, "    dependencies: [s%d]\n", i)
		}
	}
	return b.String()
}

// runnerConfig is the runner configuration every scenario uses: the
// engine's defaults except what the options set.
func runnerConfig(env *cli.Env, o benchOptions, sc *scenarioDB, label string, onEvent func(runner.Event)) runner.Config {
	funcs := &callout.Funcs{}
	funcs.Register(noopCallable, noopHandler)
	return runnerConfigWith(env, o, sc, label, funcs, onEvent)
}

// runnerConfigWith is runnerConfig with the given handlers. It is serve's
// wiring (app.ServerConfig of the configuration's defaults) with the
// bench's settings, then the tuning flags the configuration file has no
// key for.
func runnerConfigWith(env *cli.Env, o benchOptions, sc *scenarioDB, label string, handlers callout.Resolver, onEvent func(runner.Event)) runner.Config {
	rc := app.RunnerConfig(benchConfig(o, sc, label), slog.New(minLevel{env.Logger.Handler(), slog.LevelWarn}), handlers)
	rc.OnEvent = onEvent
	if o.flushBatch > 0 {
		rc.FlushBatch = o.flushBatch
	}
	if o.flushWriters > 0 {
		rc.FlushWriters = o.flushWriters
	}
	if o.flushEvery > 0 {
		rc.FlushInterval = o.flushEvery
	}
	rc.DisableClaimWithCompletions = o.noRideClaims
	return rc
}

// benchConfig is the configuration a scenario's runner runs with: the
// defaults serve runs with, for the scenario's namespace, in hybrid mode
// (listening, with the poller as a fallback), with --concurrency steps at
// once. Retention is off: the history scenario's old rows are what it
// measures against.
func benchConfig(o benchOptions, sc *scenarioDB, label string) config.Config {
	cfg := config.Default()
	w := &cfg.Worker
	w.WorkerID = "bench-" + sc.namespace + "-" + label
	w.Namespaces = []string{sc.namespace}
	w.EventSystems.Worker.DeploymentMode = config.DeploymentModeHybrid
	w.EventSystems.Worker.Metadata.PushConsumer.MaxConcurrentSteps = o.concurrency
	w.Retention.Enabled = false
	return cfg
}

// minLevel drops records below a level: the runner's start and stop
// messages would only clutter the bench's output.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}
func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}
func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}

// stopRunner stops r gracefully, bounded.
func stopRunner(ctx context.Context, r *runner.Runner) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return r.Stop(ctx)
}

// startListeningRunner starts a runner and waits until its LISTEN
// connection is up, so that a scenario measures the event-driven path. stop
// stops it gracefully and waits for it; calls after the first do nothing.
func startListeningRunner(ctx context.Context, pool *pgxpool.Pool, cfg runner.Config) (r *runner.Runner, stop func() error, err error) {
	r, err = runner.New(pool, cfg)
	if err != nil {
		return nil, nil, err
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	if err := r.Start(runCtx); err != nil {
		cancelRun()
		return nil, nil, err
	}
	stop = sync.OnceValue(func() error {
		err := stopRunner(ctx, r)
		cancelRun()
		r.Wait()
		return err
	})
	for deadline := time.Now().Add(10 * time.Second); !r.ListenerConnected(); {
		if time.Now().After(deadline) {
			_ = stop()
			return nil, nil, fmt.Errorf("the runner's LISTEN connection did not come up within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r, stop, nil
}

type percentiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	N   int     `json:"n"`
}

func percentilesOf(ds []time.Duration) percentiles {
	if len(ds) == 0 {
		return percentiles{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) float64 {
		// Nearest rank.
		i := int(q*float64(len(s))+0.999999) - 1
		i = min(max(i, 0), len(s)-1)
		return ms(s[i])
	}
	return percentiles{P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: ms(s[len(s)-1]), N: len(s)}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
