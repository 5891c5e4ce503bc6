package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
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
// wiring (app.RunnerConfig of the configuration's defaults) with the
// bench's settings, then the tuning flags the configuration file has no
// key for.
func runnerConfigWith(env *cli.Env, o benchOptions, sc *scenarioDB, label string, handlers callout.Resolver, onEvent func(runner.Event)) runner.Config {
	rc := app.RunnerConfig(benchConfig(o, sc, label), app.RunnerDeps{
		Handlers: handlers,
		Logger:   slog.New(minLevel{env.Logger.Handler(), slog.LevelWarn}),
		OnEvent:  onEvent,
	})
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

type backlogResult struct {
	Steps             int     `json:"steps"`
	InsertSeconds     float64 `json:"insert_seconds"`
	InsertTasksPerSec float64 `json:"insert_tasks_per_sec"`
	InsertBatch       int     `json:"insert_batch"`
	WorkDownSeconds   float64 `json:"work_down_seconds"`
	StepsPerSec       float64 `json:"steps_per_sec"`
	// RunnerCPUSeconds is the CPU time (user+system) this process used
	// during the work-down: the runner's cost, PostgreSQL's not included.
	RunnerCPUSeconds       float64 `json:"runner_cpu_seconds"`
	RunnerCPUMicrosPerStep float64 `json:"runner_cpu_us_per_step"`
	// ServerCPUMicrosPerStep is PostgreSQL's CPU time per step during the
	// work-down; 0 (omitted) unless the server is a local throwaway cluster.
	ServerCPUMicrosPerStep float64  `json:"postgres_cpu_us_per_step,omitempty"`
	CPU                    cpuUsage `json:"cpu"`
	ClaimQueries           int64    `json:"claim_queries"`
	MeanClaimSize          float64  `json:"mean_claim_size"`
	// ClaimedWithCompletions counts the steps claimed by outcome writes
	// (claims riding on completions), not by claim queries.
	ClaimedWithCompletions int64   `json:"claimed_with_completions"`
	Flushes                int64   `json:"flushes"`
	MeanFlushSize          float64 `json:"mean_flush_size"`
	Failed                 int64   `json:"failed_steps"`
	Memory                 memory  `json:"memory"`
	// HandlerRequests and MeanBatchSize are what the handler service saw
	// (HTTP scenarios only).
	HandlerRequests    int64   `json:"handler_requests,omitempty"`
	HandlerConnections int64   `json:"handler_connections,omitempty"`
	MeanBatchSize      float64 `json:"mean_steps_per_request,omitempty"`
	MedianOf           int     `json:"median_of,omitempty"`
}

type memory struct {
	PeakRSSMB     float64 `json:"peak_rss_mb"`
	PeakRSSSource string  `json:"peak_rss_source"`
	BaselineRSSMB float64 `json:"baseline_rss_mb"`
	PeakGoHeapMB  float64 `json:"peak_go_heap_mb"`
	Note          string  `json:"note"`
}

// backlogVacuum runs between the insert of a backlog and the start of the
// runner (runBacklogWith).
const backlogVacuum = "VACUUM ANALYZE tasker.steps, tasker.tasks"

// runBacklog inserts o.steps single-step tasks, then starts one runner and
// times it until every task is complete, as reported by the runner's events.
func runBacklog(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions, profile *os.File) (backlogResult, error) {
	funcs := &callout.Funcs{}
	funcs.Register(noopCallable, noopHandler)
	return runBacklogWith(ctx, env, srv, o, backlogSpec{label: "backlog", steps: o.steps, handlers: funcs}, profile)
}

// backlogSpec is what differs between the backlog work-downs: in-process
// Go handlers (a) or HTTP callouts (d).
type backlogSpec struct {
	label    string
	steps    int
	handlers callout.Resolver
	// from is where the database comes from: fresh and empty unless set
	// (the history scenario's clones).
	from scenarioFrom
}

// submitBacklog submits n single-step tasks of tpl in chunks of chunk, one
// transaction (Client.SubmitMany) each; after calls progress, when set,
// with the count submitted so far.
func submitBacklog(ctx context.Context, client *runner.Client, tpl runner.TemplateInfo, n, chunk int, after func(done int)) error {
	reqs := make([]runner.SubmitRequest, 0, min(chunk, n))
	for done := 0; done < n; {
		k := min(chunk, n-done)
		reqs = reqs[:0]
		for range k {
			reqs = append(reqs, runner.SubmitRequest{Namespace: tpl.Namespace, Name: tpl.Name, Version: tpl.Version})
		}
		if _, err := client.SubmitMany(ctx, reqs); err != nil {
			return fmt.Errorf("inserting the backlog (%d of %d tasks in): %w", done, n, err)
		}
		done += k
		if after != nil {
			after(done)
		}
	}
	return nil
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
