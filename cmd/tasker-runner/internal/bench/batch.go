package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
)

// Scenario (f) of issue 6: a batch workflow, one task per run. analyze
// (batchable) splits the rows into cursors; one batch worker step per
// cursor processes its rows a slice at a time, yielding a checkpoint after
// each slice, so every worker is called several times and resumes from its
// checkpoint; aggregate (deferred convergence) adds the workers' totals up.
// The rows are generated from their ids, so the bench computes the right
// totals without the runner and fails the scenario when the workflow's
// differ. It runs the size (100,000 rows in 100 cursors) and the
// size of Tasker's published figure (1,000 rows in 10 cursors).

const (
	benchBatchRowsDefault       = 100_000
	benchBatchRowsQuick         = 50_000 // still several calls per worker
	benchBatchCursorsDefault    = 100
	benchBatchRunsDefault       = 5
	benchBatchRunsQuick         = 3
	benchBatchCheckpointDefault = 250
	// The comparison size, also the warm-up task's.
	benchBatchSmallRows    = 1_000
	benchBatchSmallCursors = 10
	// taskerBatchRowsPerSec is what Tasker's Rust worker reports for its
	// batch workflow of 1,000 rows.
	taskerBatchRowsPerSec = 2_800
)

const (
	etlAnalyzeCallable   = "bench.batch.analyze"
	etlProcessCallable   = "bench.batch.process"
	etlAggregateCallable = "bench.batch.aggregate"
)

func etlTemplate(ns string) string {
	return fmt.Sprintf(`name: batch_etl
namespace_name: %s
version: 1.0.0
steps:
  - name: analyze
    type: batchable
    handler: {callable: %s}
    batch_config: {batch_size: 1000, worker_template: process, failure_strategy: fail_fast}
  - name: process
    type: batch_worker
    dependencies: [analyze]
    handler: {callable: %s}
    retry: {max_attempts: 1}
  - name: aggregate
    type: deferred_convergence
    dependencies: [process]
    handler: {callable: %s}
`, ns, etlAnalyzeCallable, etlProcessCallable, etlAggregateCallable)
}

// etlRow is one generated row.
type etlRow struct {
	ID          int64  `json:"id"`
	Customer    string `json:"customer"`
	AmountCents int64  `json:"amount_cents"`
}

func etlRowOf(id int64) etlRow {
	return etlRow{ID: id, Customer: "cust-" + strconv.FormatInt(id%10_007, 10), AmountCents: 100 + id*7_919%100_000}
}

// etlTotals are running totals over rows. The checksum XORs each row's
// FNV-64a, so it does not depend on how the rows were split; the count
// catches a row processed twice (which the XOR would cancel).
type etlTotals struct {
	Count    int64  `json:"count"`
	SumCents int64  `json:"sum_cents"`
	Checksum uint64 `json:"checksum,string"` // a string: exact in every JSON reader
}

// add does the per-row work: encode the row as JSON and fold it in.
func (t *etlTotals) add(id int64) error {
	row := etlRowOf(id)
	b, err := json.Marshal(row)
	if err != nil {
		return fmt.Errorf("row %d: %w", id, err)
	}
	h := fnv.New64a()
	_, _ = h.Write(b)
	t.Count++
	t.SumCents += row.AmountCents
	t.Checksum ^= h.Sum64()
	return nil
}

// etlAggregate is the aggregate step's result.
type etlAggregate struct {
	Workers int `json:"workers"`
	etlTotals
}

// etlContext is the task's context.
type etlContext struct {
	Rows    int64 `json:"rows"`
	Cursors int   `json:"cursors"`
}

// etlFuncs returns the three handlers; every is the rows per worker call.
func etlFuncs(every int64) *callout.Funcs {
	var h callout.Funcs
	h.Register(etlAnalyzeCallable, func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		var in etlContext
		if err := json.Unmarshal(env.Task.Context, &in); err != nil {
			return contracts.StepResult{}, callout.Permanent(fmt.Errorf("task context: %w", err))
		}
		cursors := contracts.EvenCursors(in.Rows, in.Cursors)
		if len(cursors) == 0 {
			return contracts.NoBatches().Result(nil), nil
		}
		return contracts.CreateBatches("process", cursors, in.Rows).Result(nil), nil
	})
	h.Register(etlProcessCallable, func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		res, err := etlProcessCall(env, every)
		if err != nil {
			return contracts.StepResult{}, callout.Permanent(err)
		}
		return res, nil
	})
	h.Register(etlAggregateCallable, func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		var a etlAggregate
		for name, r := range env.DependencyResults {
			if !strings.HasPrefix(name, "process_") {
				continue // analyze
			}
			if !r.Success {
				return contracts.StepResult{}, callout.Permanent(fmt.Errorf("worker %s failed", name))
			}
			var t etlTotals
			if err := json.Unmarshal(r.Result, &t); err != nil {
				return contracts.StepResult{}, callout.Permanent(fmt.Errorf("worker %s: result: %w", name, err))
			}
			a.Workers++
			a.Count += t.Count
			a.SumCents += t.SumCents
			a.Checksum ^= t.Checksum
		}
		out, err := json.Marshal(a)
		if err != nil {
			return contracts.StepResult{}, err
		}
		return contracts.StepResult{Success: true, Result: out}, nil
	})
	return &h
}

// etlProcessCall is one call of a worker: up to every rows from where the
// last checkpoint left off, then a checkpoint, or the totals at the end.
func etlProcessCall(env *contracts.StepEnvelope, every int64) (contracts.StepResult, error) {
	w, err := env.BatchWorker()
	if err != nil {
		return contracts.StepResult{}, err
	}
	if w.IsNoOp {
		return contracts.StepResult{Success: true}, nil
	}
	start, end, err := w.Cursor.IntRange()
	if err != nil {
		return contracts.StepResult{}, err
	}
	from, acc := start, etlTotals{}
	cp, resumed, err := env.ResumeFrom()
	if err != nil {
		return contracts.StepResult{}, err
	}
	if resumed {
		if from, err = cp.IntCursor(); err != nil {
			return contracts.StepResult{}, err
		}
		if err := json.Unmarshal(cp.AccumulatedResults, &acc); err != nil {
			return contracts.StepResult{}, fmt.Errorf("checkpoint accumulated_results: %w", err)
		}
		// The checkpoint must be the one this worker wrote last.
		if from < start || from > end || acc.Count != from-start || cp.ItemsProcessed != acc.Count {
			return contracts.StepResult{}, fmt.Errorf("batch %s [%d, %d): inconsistent checkpoint: cursor %d, %d items processed, totals over %d rows",
				w.Cursor.BatchID, start, end, from, cp.ItemsProcessed, acc.Count)
		}
	}
	stop := min(end, from+every)
	for id := from; id < stop; id++ {
		if err := acc.add(id); err != nil {
			return contracts.StepResult{}, err
		}
	}
	out, err := json.Marshal(acc)
	if err != nil {
		return contracts.StepResult{}, err
	}
	if stop < end {
		return contracts.Yield(contracts.Checkpoint{
			Cursor: strconv.AppendInt(nil, stop, 10), ItemsProcessed: acc.Count, AccumulatedResults: out,
		}), nil
	}
	return contracts.StepResult{Success: true, Result: out}, nil
}

// etlExpect is what a task of one size must produce, computed without the
// runner: the totals over every row id, and the worker calls the cursors
// and the checkpoint interval imply.
type etlExpect struct {
	rows    int64
	cursors int // asked for
	workers int // made: EvenCursors never makes more than there are rows
	calls   int
	totals  etlTotals
}

func etlExpectFor(rows int64, cursors int, every int64) (etlExpect, error) {
	e := etlExpect{rows: rows, cursors: cursors}
	for id := range rows {
		if err := e.totals.add(id); err != nil {
			return e, err
		}
	}
	for _, c := range contracts.EvenCursors(rows, cursors) {
		e.workers++
		e.calls += max(1, int((int64(c.BatchSize)+every-1)/every))
	}
	return e, nil
}

func (e etlExpect) label() string {
	return fmt.Sprintf("%s rows / %d cursors", groupThousands(e.rows), e.cursors)
}

// etlTrack follows one task through the runner's events.
type etlTrack struct {
	submitted       time.Time
	analyzeReturned time.Time            // analyze's handler returned
	fannedOut       time.Time            // analyze's outcome, worker steps included, was written
	firstStart      map[string]time.Time // worker step -> its first call's start
	calls, yields   int
	failure         string
	aggregate       contracts.StepResult
	taskState       string
	finished        time.Time
	done            chan struct{}
}

// etlTracker routes the runner's events to the task they belong to.
type etlTracker struct {
	mu    sync.Mutex
	tasks map[uuid.UUID]*etlTrack // by correlation id
}

func (tr *etlTracker) onEvent(ev runner.Event) {
	now := time.Now()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	t := tr.tasks[ev.Step.CorrelationID]
	if t == nil || t.taskState != "" {
		return
	}
	switch ev.Step.TemplateStepName {
	case "analyze":
		t.analyzeReturned, t.fannedOut = ev.Finished, now
	case "process":
		t.calls++
		if ev.State == contracts.StepStateEnqueued && ev.Result.Status == contracts.StatusYielded {
			t.yields++
		}
		if _, seen := t.firstStart[ev.Step.Name]; !seen {
			t.firstStart[ev.Step.Name] = ev.Started
		}
	case "aggregate":
		t.aggregate = ev.Result
	}
	if t.failure == "" {
		switch {
		case ev.Stale:
			t.failure = fmt.Sprintf("step %s: the runner lost its lease", ev.Step.Name)
		case ev.State == contracts.StepStateError || ev.State == contracts.StepStateWaitingForRetry:
			msg := "no error given"
			if ev.Result.Error != nil {
				msg = ev.Result.Error.Message
			}
			t.failure = fmt.Sprintf("step %s: %s: %s", ev.Step.Name, ev.State, msg)
		}
	}
	if ev.TaskState != "" {
		t.taskState, t.finished = string(ev.TaskState), now
		close(t.done)
	}
}

// errETLVerification marks a batch task whose results or counts differ
// from what the bench computed without the runner.
var errETLVerification = errors.New("VERIFICATION FAILED")

// etlRun is one measured task.
type etlRun struct {
	EndToEndMs float64 `json:"end_to_end_ms"`
	RowsPerSec float64 `json:"rows_per_sec"`
	// FanOutMs runs from analyze's handler returning to the runner's event
	// for the write of its outcome, which creates the worker steps (workers
	// may already be running by then: the event comes after the commit).
	FanOutMs float64 `json:"fan_out_ms"`
	// WorkersStartedMs runs from analyze's handler returning to the last
	// worker's first call starting.
	WorkersStartedMs float64 `json:"all_workers_started_ms"`
	WorkerCalls      int     `json:"worker_calls"`
	Yields           int     `json:"yields"`
	// Checkpoints are the checkpoints the task's steps have stored.
	Checkpoints int  `json:"checkpoints_stored"`
	Verified    bool `json:"verified"`
}

// spread is the median, lowest and highest of a figure over runs.
type spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func spreadOf[T any](runs []T, f func(T) float64) spread {
	if len(runs) == 0 {
		return spread{}
	}
	xs := make([]float64, len(runs))
	for i, r := range runs {
		xs[i] = f(r)
	}
	return spread{Median: median(xs), Min: slices.Min(xs), Max: slices.Max(xs)}
}

// etlSizeResult is one size's runs and their spreads.
type etlSizeResult struct {
	Rows             int      `json:"rows"`
	Cursors          int      `json:"cursors"`
	Workers          int      `json:"workers"`
	WorkerCalls      int      `json:"worker_calls"`
	Yields           int      `json:"yields"`
	RowsPerSec       spread   `json:"rows_per_sec"`
	EndToEndMs       spread   `json:"end_to_end_ms"`
	FanOutMs         spread   `json:"fan_out_ms"`
	WorkersStartedMs spread   `json:"all_workers_started_ms"`
	TaskerRatio      float64  `json:"rows_per_sec_vs_tasker"`
	Runs             []etlRun `json:"runs"`
	// CPU per row over all runs of this size: this process (runner and
	// handlers) and the local PostgreSQL server.
	RunnerCPUMicrosPerRow float64  `json:"runner_cpu_us_per_row,omitempty"`
	ServerCPUMicrosPerRow float64  `json:"postgres_cpu_us_per_row,omitempty"`
	CPU                   cpuUsage `json:"cpu"`
}

func (s *etlSizeResult) summarize() {
	s.RowsPerSec = spreadOf(s.Runs, func(r etlRun) float64 { return r.RowsPerSec })
	s.EndToEndMs = spreadOf(s.Runs, func(r etlRun) float64 { return r.EndToEndMs })
	s.FanOutMs = spreadOf(s.Runs, func(r etlRun) float64 { return r.FanOutMs })
	s.WorkersStartedMs = spreadOf(s.Runs, func(r etlRun) float64 { return r.WorkersStartedMs })
	s.TaskerRatio = s.RowsPerSec.Median / taskerBatchRowsPerSec
}

type etlResult struct {
	Note             string        `json:"note"`
	CheckpointEvery  int           `json:"checkpoint_every_rows"`
	WarmupRows       int           `json:"warmup_rows"`
	TaskerRowsPerSec float64       `json:"tasker_rows_per_sec"`
	Large            etlSizeResult `json:"large"`
	Small            etlSizeResult `json:"small"`
	// MedianOf is the number of --repeat iterations this one is the median
	// of (0: one iteration).
	MedianOf int `json:"median_of,omitempty"`
}

const etlNote = "one task per run on a warm runner (one 1,000-row task run first, then the tables analysed); handlers are in-process Go: each row is generated from its id, JSON-encoded and folded into an FNV-64a checksum; the aggregate's totals are checked against totals computed without the runner"

// runBatchETL runs the batch scenario once: a warm-up task, then the runs
// of the large size, then those of the small one, all on one runner.
func runBatchETL(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions, profile *os.File) (etlResult, error) {
	res := etlResult{Note: etlNote, CheckpointEvery: o.batchCheckpoint, WarmupRows: benchBatchSmallRows, TaskerRowsPerSec: taskerBatchRowsPerSec}
	every := int64(o.batchCheckpoint)
	large, err := etlExpectFor(int64(o.batchRows), o.batchCursors, every)
	if err != nil {
		return res, err
	}
	small, err := etlExpectFor(benchBatchSmallRows, benchBatchSmallCursors, every)
	if err != nil {
		return res, err
	}

	run, stop, err := startETL(ctx, env, srv, o)
	if err != nil {
		return res, err
	}
	defer stop()
	if _, err := run.once(ctx, small); err != nil {
		return res, fmt.Errorf("warm-up (%s): %w", small.label(), err)
	}
	// The statistics autovacuum would have gathered in a live database.
	if _, err := run.sc.pool.Exec(ctx, "VACUUM ANALYZE tasker.steps, tasker.tasks, tasker.step_edges, tasker.step_transitions, tasker.task_transitions"); err != nil {
		return res, err
	}

	for _, size := range []struct {
		exp     etlExpect
		dst     *etlSizeResult
		profile *os.File
	}{{large, &res.Large, profile}, {small, &res.Small, nil}} {
		e := size.exp
		out := size.dst
		*out = etlSizeResult{Rows: int(e.rows), Cursors: e.cursors, Workers: e.workers, WorkerCalls: e.calls, Yields: e.calls - e.workers}
		stopProfile, err := startProfile(size.profile)
		if err != nil {
			return res, err
		}
		cpu0 := takeCPUSnapshot(srv.postmaster)
		for i := range o.batchRuns {
			x, err := run.once(ctx, e)
			if err != nil {
				stopProfile()
				return res, fmt.Errorf("%s, run %d: %w", e.label(), i+1, err)
			}
			fmt.Fprintf(o.progress, "bench:   %s run %d/%d: %.0f ms end to end, %.0f rows/s; %d worker calls (%d yields), fan-out %.2f ms, all workers started after %.2f ms; totals verified\n",
				e.label(), i+1, o.batchRuns, x.EndToEndMs, x.RowsPerSec, x.WorkerCalls, x.Yields, x.FanOutMs, x.WorkersStartedMs)
			out.Runs = append(out.Runs, x)
		}
		cpu1 := takeCPUSnapshot(srv.postmaster)
		stopProfile()
		rows := float64(e.rows) * float64(o.batchRuns)
		if cpu := cpu1.self - cpu0.self; cpu > 0 {
			out.RunnerCPUMicrosPerRow = float64(cpu.Microseconds()) / rows
		}
		if cpu := cpu1.server - cpu0.server; srv.postmaster > 0 && cpu > 0 {
			out.ServerCPUMicrosPerRow = float64(cpu.Microseconds()) / rows
		}
		out.CPU = cpuBetween(cpu0, cpu1)
		out.summarize()
	}
	return res, nil
}

// startETL prepares a scenario database with the template and starts a
// runner with the handlers on it; stop stops the runner and removes the
// database.
func startETL(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions) (_ *etlRunner, _ func(), err error) {
	sc, err := srv.scenario(ctx, env, "batch", o.poolSize)
	if err != nil {
		return nil, nil, err
	}
	var stops []func()
	stop := func() {
		for _, f := range slices.Backward(stops) {
			f()
		}
	}
	stops = append(stops, sc.cleanup)
	defer func() {
		if err != nil {
			stop()
		}
	}()
	client := runner.NewClient(sc.pool, runner.ClientConfig{})
	tpl, err := client.RegisterTemplate(ctx, []byte(etlTemplate(sc.namespace)))
	if err != nil {
		return nil, nil, err
	}
	tr := &etlTracker{tasks: map[uuid.UUID]*etlTrack{}}
	_, stopRun, err := startListeningRunner(ctx, sc.pool, runnerConfigWith(env, o, sc, "batch", etlFuncs(int64(o.batchCheckpoint)), tr.onEvent))
	if err != nil {
		return nil, nil, err
	}
	stops = append(stops, func() { _ = stopRun() })
	return &etlRunner{sc: sc, client: client, tpl: tpl, tr: tr, timeout: o.scenarioTime}, stop, nil
}

// etlRunner submits tasks to a running runner and checks what they did.
type etlRunner struct {
	sc      *scenarioDB
	client  *runner.Client
	tpl     runner.TemplateInfo
	tr      *etlTracker
	timeout time.Duration
}

// once runs one task of size e, times it from just before Submit to the
// event of the write that completed it, and verifies it.
func (er *etlRunner) once(ctx context.Context, e etlExpect) (etlRun, error) {
	var run etlRun
	input, err := json.Marshal(etlContext{Rows: e.rows, Cursors: e.cursors})
	if err != nil {
		return run, err
	}
	corr := uuid.New()
	t := &etlTrack{firstStart: map[string]time.Time{}, done: make(chan struct{})}
	er.tr.mu.Lock()
	er.tr.tasks[corr] = t
	t.submitted = time.Now()
	er.tr.mu.Unlock()
	defer func() {
		er.tr.mu.Lock()
		delete(er.tr.tasks, corr)
		er.tr.mu.Unlock()
	}()
	sub, err := er.client.Submit(ctx, runner.SubmitRequest{
		Namespace: er.tpl.Namespace, Name: er.tpl.Name, Version: er.tpl.Version, CorrelationID: corr, Context: input,
	})
	if err != nil {
		return run, fmt.Errorf("submitting: %w", err)
	}
	wait := time.NewTimer(er.timeout)
	defer wait.Stop()
	select {
	case <-t.done:
	case <-wait.C:
		er.tr.mu.Lock()
		defer er.tr.mu.Unlock()
		return run, fmt.Errorf("%w: task %s not finished after %s (%d worker calls seen)", errBenchTimeout, sub.TaskUUID, er.timeout, t.calls)
	case <-ctx.Done():
		return run, ctx.Err()
	}

	// t.done is closed: the tracker no longer writes to t.
	if t.taskState != "complete" {
		return run, fmt.Errorf("task %s ended %s: %s", sub.TaskUUID, t.taskState, cmpOr(t.failure, "no step failure seen"))
	}
	if t.failure != "" {
		return run, fmt.Errorf("task %s: %s", sub.TaskUUID, t.failure)
	}
	e2e := t.finished.Sub(t.submitted)
	run = etlRun{
		EndToEndMs: ms(e2e), RowsPerSec: float64(e.rows) / e2e.Seconds(),
		FanOutMs: ms(t.fannedOut.Sub(t.analyzeReturned)), WorkerCalls: t.calls, Yields: t.yields,
	}
	var lastStart time.Time
	for _, at := range t.firstStart {
		if at.After(lastStart) {
			lastStart = at
		}
	}
	run.WorkersStartedMs = ms(lastStart.Sub(t.analyzeReturned))

	// Verification, outside the timed part.
	if err := er.verify(ctx, e, t, sub.TaskUUID, &run); err != nil {
		return run, err
	}
	run.Verified = true
	return run, nil
}

// verify checks the finished task id of size e against what was computed
// without the runner: its aggregate, its worker calls and checkpoints, and
// its steps in the database (their count goes into run).
func (er *etlRunner) verify(ctx context.Context, e etlExpect, t *etlTrack, id uuid.UUID, run *etlRun) error {
	var got etlAggregate
	if err := json.Unmarshal(t.aggregate.Result, &got); err != nil {
		return fmt.Errorf("task %s: the aggregate's result %s: %w", id, t.aggregate.Result, err)
	}
	if want := (etlAggregate{Workers: e.workers, etlTotals: e.totals}); got != want {
		return fmt.Errorf("%w: task %s aggregated %+v, want %+v computed without the runner: work was lost or repeated", errETLVerification, id, got, want)
	}
	if len(t.firstStart) != e.workers || t.calls != e.calls || t.yields != e.calls-e.workers {
		return fmt.Errorf("%w: task %s: %d workers called %d times with %d yields, want %d workers called %d times",
			errETLVerification, id, len(t.firstStart), t.calls, t.yields, e.workers, e.calls)
	}
	var steps, complete, maxAttempts int
	if err := er.sc.pool.QueryRow(ctx, `
		SELECT count(*), count(*) FILTER (WHERE state = 'complete'),
		       coalesce(sum(jsonb_array_length(checkpoint_history)), 0), coalesce(max(attempts), 0)
		FROM tasker.steps WHERE task_uuid = $1`, id).Scan(&steps, &complete, &run.Checkpoints, &maxAttempts); err != nil {
		return fmt.Errorf("reading task %s's steps: %w", id, err)
	}
	if steps != e.workers+2 || complete != steps || run.Checkpoints != t.yields || maxAttempts != 1 {
		return fmt.Errorf("%w: task %s has %d steps (%d complete), %d checkpoints stored, up to %d attempts; want %d steps, all complete, %d checkpoints, 1 attempt each",
			errETLVerification, id, steps, complete, run.Checkpoints, maxAttempts, e.workers+2, t.yields)
	}
	run.Verified = true
	return nil
}

// medianETL reports the iteration of --repeat with the median main figure
// (the large task's median rows/s; without large runs the small one's),
// whole: its spreads and CPU figures all come from that iteration.
func medianETL(all []etlResult) etlResult {
	if len(all) == 1 {
		return all[0]
	}
	m := medianRun(all, func(e etlResult) float64 {
		if len(e.Large.Runs) > 0 {
			return e.Large.RowsPerSec.Median
		}
		return e.Small.RowsPerSec.Median
	})
	m.MedianOf = len(all)
	return m
}

func etlFigures(b *etlResult) []figure {
	var fs []figure
	for _, s := range []*etlSizeResult{&b.Large, &b.Small} {
		if len(s.Runs) == 0 {
			continue
		}
		name := fmt.Sprintf("batch %s rows / %d cursors", groupThousands(int64(s.Rows)), s.Cursors)
		runs := fmt.Sprintf("median of %d runs", len(s.Runs))
		// No target and no ok/MISSED: the only reference is Tasker's
		// published figure, measured on other hardware (the vs line below).
		fs = append(fs,
			figure{Name: name + ", rows/s", Value: s.RowsPerSec.Median, Unit: "rows/s",
				How: fmt.Sprintf("rows / end to end; %s (min %s, max %s); %d workers, checkpoint every %d rows: %d worker calls (%d yields) per task, totals verified",
					runs, formatValue(s.RowsPerSec.Min), formatValue(s.RowsPerSec.Max), s.Workers, b.CheckpointEvery, s.WorkerCalls, s.Yields)},
			figure{Name: name + ", end to end", Value: s.EndToEndMs.Median, Unit: "ms",
				How: fmt.Sprintf("Submit called -> task-complete event (analyze -> %d batch workers -> aggregate); %s (min %s, max %s)",
					s.Workers, runs, formatValue(s.EndToEndMs.Min), formatValue(s.EndToEndMs.Max))},
			figure{Name: name + ", vs Tasker's published figure (other hardware)", Value: s.TaskerRatio, Unit: "x",
				How: fmt.Sprintf("median rows/s / the about %s rows/s Tasker's Rust worker publishes for 1,000 rows, measured on its hardware, not on this machine: a rough comparison, not a target", groupThousands(taskerBatchRowsPerSec))},
		)
		if s.FanOutMs.Median > 0 {
			fs = append(fs, figure{Name: name + ", fan-out", Value: s.FanOutMs.Median, Unit: "ms",
				How: fmt.Sprintf("analyze's handler returned -> the runner's event for the write of its outcome, which creates the %d worker steps; %s (min %s, max %s); the last worker's first call started after %s ms (median)",
					s.Workers, runs, formatValue(s.FanOutMs.Min), formatValue(s.FanOutMs.Max), formatValue(s.WorkersStartedMs.Median))})
		}
		if s.RunnerCPUMicrosPerRow > 0 {
			how := "CPU time of this process (runner, handlers and the bench's checks after each run) over the runs / rows"
			if s.ServerCPUMicrosPerRow > 0 {
				how += fmt.Sprintf("; PostgreSQL %s µs per row", formatValue(s.ServerCPUMicrosPerRow))
			}
			fs = append(fs, figure{Name: name + ", runner CPU per row", Value: s.RunnerCPUMicrosPerRow, Unit: "µs", How: how})
		}
	}
	return fs
}

func printETLDetail(w io.Writer, b *etlResult) {
	fmt.Fprintf(w, "  batch note: %s\n", b.Note)
	if b.MedianOf > 1 {
		fmt.Fprintf(w, "  batch figures: the median iteration of %d (--repeat) by the large task's median rows/s, every figure from it\n", b.MedianOf)
	}
	for _, s := range []*etlSizeResult{&b.Large, &b.Small} {
		if len(s.Runs) == 0 {
			continue
		}
		var e2e []string
		for _, r := range s.Runs {
			e2e = append(e2e, formatValue(r.EndToEndMs))
		}
		fmt.Fprintf(w, "  batch %s rows / %d cursors detail: end to end per run %s ms; %d worker calls, %d yields, %d checkpoints stored per task\n",
			groupThousands(int64(s.Rows)), s.Cursors, strings.Join(e2e, ", "), s.WorkerCalls, s.Yields, s.Runs[0].Checkpoints)
	}
}
