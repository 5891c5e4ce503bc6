package bench

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/runner"
)

// The history scenario (issue 18): the backlog and latency scenarios run
// again on copies of a database that already holds --history-steps
// finished single-step tasks, and each figure is reported as a ratio to
// the empty-database figure of the same run. The database is built once,
// through the public path only (Client.SubmitMany, and an in-process
// runner working the tasks down): the schema is being rewritten, so no
// statement here names a tasker table. It is then kept as a template
// database and copied (CREATE DATABASE ... TEMPLATE) for each scenario.

// benchHistoryChunk is how many tasks one SubmitMany transaction creates
// while seeding: big transactions, so that the commits do not dominate.
const benchHistoryChunk = 25_000

// Targets: the backlog keeps 90% of its empty-database rate, and the
// enqueue-to-start p99 at most doubles.
const (
	targetHistoryBacklogRatio = 0.9
	targetHistoryE2SP99Ratio  = 2.0
)

type historyResult struct {
	FinishedSteps int `json:"finished_steps"`
	SubmitBatch   int `json:"seed_submit_batch"`
	// SeedSeconds runs from creating the template database to its being
	// ready to copy: submitting, working down (the two overlap) and
	// VACUUM ANALYZE.
	SeedSeconds         float64 `json:"seed_seconds"`
	SeedSubmitSeconds   float64 `json:"seed_submit_seconds"`
	SeedWorkDownSeconds float64 `json:"seed_work_down_seconds"`
	SeedVacuumSeconds   float64 `json:"seed_vacuum_seconds"`
	DatabaseMB          float64 `json:"template_database_mb"`
	// The scenarios in copies of the template database.
	Backlog *backlogResult `json:"backlog,omitempty"`
	Latency *latencyResult `json:"latency,omitempty"`
	// Ratios to the empty-database figures of the same run.
	BacklogRatio float64 `json:"backlog_to_empty_ratio,omitempty"`
	E2SP50Ratio  float64 `json:"enqueue_to_start_p50_to_empty_ratio,omitempty"`
	E2SP99Ratio  float64 `json:"enqueue_to_start_p99_to_empty_ratio,omitempty"`
	// Skipped says why the scenario did not run.
	Skipped string `json:"skipped,omitempty"`
}

// runHistory seeds the template database, then runs the backlog and
// latency scenarios (those this bench runs) in copies of it.
func runHistory(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions) (historyResult, error) {
	res := historyResult{FinishedSteps: o.historySteps, SubmitBatch: benchHistoryChunk}
	if srv.shared {
		res.Skipped = "the role may not create databases, and the scenario copies a template database"
		fmt.Fprintf(o.progress, "bench: history scenario skipped: %s\n", res.Skipped)
		return res, nil
	}
	fmt.Fprintf(o.progress, "bench: history: building a database holding %s finished single-step tasks (SubmitMany, %s per transaction, while a runner works them down)\n",
		groupThousands(int64(o.historySteps)), groupThousands(benchHistoryChunk))
	from, err := seedHistory(ctx, env, srv, o, &res)
	if err != nil {
		return res, fmt.Errorf("seeding: %w", err)
	}
	defer srv.dropDatabase(ctx, env, from.template)
	fmt.Fprintf(o.progress, "bench:   seeded in %.1fs (submit %.1fs, work-down %.1fs, VACUUM ANALYZE %.1fs); %.0f MB\n",
		res.SeedSeconds, res.SeedSubmitSeconds, res.SeedWorkDownSeconds, res.SeedVacuumSeconds, res.DatabaseMB)

	if !o.skipBacklog {
		fmt.Fprintf(o.progress, "bench: history: backlog work-down of %d single-step tasks in a copy of it\n", o.steps)
		funcs := &callout.Funcs{}
		funcs.Register(noopCallable, noopHandler)
		b, err := runBacklogWith(ctx, env, srv, o, backlogSpec{label: "histbacklog", steps: o.steps, handlers: funcs, from: from}, nil)
		if err != nil {
			return res, fmt.Errorf("backlog: %w", err)
		}
		fmt.Fprintf(o.progress, "bench:   worked down in %.2fs: %.0f steps/s\n", b.WorkDownSeconds, b.StepsPerSec)
		res.Backlog = &b
	}
	if !o.skipLatency {
		fmt.Fprintf(o.progress, "bench: history: linear-4 latency, %.0f steps/s offered for %s, in a copy of it\n", o.rate, o.duration)
		l, err := runLatencyOn(ctx, env, srv, o, "histlatency", from)
		if err != nil {
			return res, fmt.Errorf("latency: %w", err)
		}
		fmt.Fprintf(o.progress, "bench:   %d tasks measured: enqueue to start p50 %.2f ms, p99 %.2f ms\n", l.TasksMeasured, l.EnqueueToStartMs.P50, l.EnqueueToStartMs.P99)
		res.Latency = &l
	}
	return res, nil
}

// seedHistory builds the template database and returns where scenarios
// copy it from; the caller drops it.
func seedHistory(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions, res *historyResult) (_ scenarioFrom, err error) {
	start := time.Now()
	sc, err := srv.scenario(ctx, env, "histseed", o.poolSize)
	if err != nil {
		return scenarioFrom{}, err
	}
	defer func() {
		if err != nil {
			sc.cleanup()
		}
	}()
	if err := workDownHistory(ctx, env, o, sc, res); err != nil {
		return scenarioFrom{}, err
	}
	// What autovacuum would have done by now in a long-lived database:
	// the copies start with statistics and a visibility map. The whole
	// database, so that no table is named.
	vacuumStart := time.Now()
	if _, err := sc.pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return scenarioFrom{}, fmt.Errorf("VACUUM ANALYZE: %w", err)
	}
	res.SeedVacuumSeconds = time.Since(vacuumStart).Seconds()
	var size int64
	if err := sc.pool.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&size); err != nil {
		return scenarioFrom{}, err
	}
	res.DatabaseMB = float64(size) / (1 << 20)
	// A template database must have no sessions when it is copied.
	sc.pool.Close()
	res.SeedSeconds = time.Since(start).Seconds()
	return scenarioFrom{template: sc.database, namespace: sc.namespace}, nil
}

// workDownHistory submits the history's tasks while a runner works them
// down, and returns once every one is complete.
func workDownHistory(ctx context.Context, env *cli.Env, o benchOptions, sc *scenarioDB, res *historyResult) error {
	client := runner.NewClient(sc.pool, runner.ClientConfig{})
	tpl, err := client.RegisterTemplate(ctx, []byte(singleStepTemplate(sc.namespace)))
	if err != nil {
		return err
	}
	var completed, failed atomic.Int64
	allDone := newDoneSignal()
	target := int64(o.historySteps)
	onEvent := func(ev runner.Event) {
		if ev.TaskState == "" {
			return
		}
		if ev.TaskState != "complete" {
			failed.Add(1)
		}
		if completed.Add(1) == target {
			allDone.close()
		}
	}
	_, stop, err := startListeningRunner(ctx, sc.pool, runnerConfig(env, o, sc, "histseed", onEvent))
	if err != nil {
		return err
	}
	defer func() { _ = stop() }()

	start := time.Now()
	every := max(benchHistoryChunk, o.historySteps/5) // a progress line per fifth
	next := every
	err = submitBacklog(ctx, client, tpl, o.historySteps, benchHistoryChunk, func(done int) {
		if done >= next && done < o.historySteps {
			fmt.Fprintf(o.progress, "bench:   %s submitted, %s complete\n", groupThousands(int64(done)), groupThousands(completed.Load()))
			next += every
		}
	})
	if err != nil {
		return err
	}
	res.SeedSubmitSeconds = time.Since(start).Seconds()
	timeout := time.NewTimer(o.scenarioTime)
	defer timeout.Stop()
	select {
	case <-allDone.ch:
	case <-timeout.C:
		return fmt.Errorf("%w after %s with %d of %d tasks complete", errBenchTimeout, o.scenarioTime, completed.Load(), target)
	case <-ctx.Done():
		return ctx.Err()
	}
	res.SeedWorkDownSeconds = time.Since(start).Seconds()
	if err := stop(); err != nil {
		return err
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d tasks failed with a no-op handler", n)
	}
	return nil
}

// compare sets the ratios to the empty-database figures of the same run.
func (h *historyResult) compare(empty *backlogResult, emptyLat *latencyResult) {
	if b := h.Backlog; b != nil && empty != nil && empty.StepsPerSec > 0 {
		h.BacklogRatio = b.StepsPerSec / empty.StepsPerSec
	}
	if l := h.Latency; l != nil && emptyLat != nil {
		if emptyLat.EnqueueToStartMs.P50 > 0 {
			h.E2SP50Ratio = l.EnqueueToStartMs.P50 / emptyLat.EnqueueToStartMs.P50
		}
		if emptyLat.EnqueueToStartMs.P99 > 0 {
			h.E2SP99Ratio = l.EnqueueToStartMs.P99 / emptyLat.EnqueueToStartMs.P99
		}
	}
}

func historyFigures(h *historyResult) []figure {
	if h.Skipped != "" {
		return nil
	}
	n := groupThousands(int64(h.FinishedSteps))
	copied := fmt.Sprintf("in a copy (CREATE DATABASE ... TEMPLATE) of a database holding %s finished single-step tasks, in their namespace and with their template", n)
	fs := []figure{{Name: "history seeding", Value: h.SeedSeconds, Unit: "s",
		How: fmt.Sprintf("%s single-step tasks submitted by Client.SubmitMany (up to %s per transaction) while an in-process runner with a no-op handler worked them down, then VACUUM ANALYZE of the whole database (what autovacuum would have done by then); the result, %.0f MB, is kept as a template database for the history figures",
			n, groupThousands(int64(h.SubmitBatch)), h.DatabaseMB)}}
	if b := h.Backlog; b != nil {
		fs = append(fs, figure{Name: "backlog work-down, " + n + " finished steps", Value: b.StepsPerSec, Unit: "steps/s",
			How: "as backlog work-down, " + copied})
	}
	if h.BacklogRatio > 0 {
		fs = append(fs, figure{Name: "backlog with history / empty", Value: h.BacklogRatio, Unit: "ratio",
			Target: fmt.Sprintf(">= %.1fx", targetHistoryBacklogRatio), Met: atLeast(h.BacklogRatio, targetHistoryBacklogRatio),
			How: "backlog work-down with the history ÷ backlog work-down in an empty database, same run"})
	}
	if l := h.Latency; l != nil {
		fs = append(fs,
			figure{Name: "enqueue to handler start p50, " + n + " finished steps", Value: l.EnqueueToStartMs.P50, Unit: "ms",
				How: fmt.Sprintf("as enqueue to handler start p50 (%d steps), %s", l.EnqueueToStartMs.N, copied)},
			figure{Name: "enqueue to handler start p99, " + n + " finished steps", Value: l.EnqueueToStartMs.P99, Unit: "ms", How: "as p50"},
		)
	}
	if h.E2SP99Ratio > 0 {
		fs = append(fs, figure{Name: "enqueue to start p99 with history / empty", Value: h.E2SP99Ratio, Unit: "ratio",
			Target: fmt.Sprintf("<= %.1fx", targetHistoryE2SP99Ratio), Met: atMost(h.E2SP99Ratio, targetHistoryE2SP99Ratio),
			How: fmt.Sprintf("enqueue to handler start p99 with the history ÷ in an empty database, same run (p50: %.2fx)", h.E2SP50Ratio)})
	}
	return fs
}

func printHistoryDetail(w io.Writer, h *historyResult) {
	if h.Skipped != "" {
		fmt.Fprintf(w, "  history: skipped: %s\n", h.Skipped)
		return
	}
	fmt.Fprintf(w, "  history detail: %s finished steps seeded in %.1fs (submit %.1fs and work-down %.1fs, side by side; VACUUM ANALYZE %.1fs), %.0f MB",
		groupThousands(int64(h.FinishedSteps)), h.SeedSeconds, h.SeedSubmitSeconds, h.SeedWorkDownSeconds, h.SeedVacuumSeconds, h.DatabaseMB)
	if b := h.Backlog; b != nil {
		fmt.Fprintf(w, "; backlog in the copy: insert %.2fs, work-down %.2fs, %d claims (%.0f steps each)", b.InsertSeconds, b.WorkDownSeconds, b.ClaimQueries, b.MeanClaimSize)
	}
	if l := h.Latency; l != nil {
		fmt.Fprintf(w, "; latency in the copy: end to end p50 %.2f / p99 %.2f ms", l.EndToEndMs.P50, l.EndToEndMs.P99)
	}
	fmt.Fprintln(w)
}
