package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// The bench command measures the engine against the targets of the
// README's performance section: (a) work-down of a backlog of single-step tasks, (b) end-to-end and
// enqueue-to-start latency of a 4-step linear workflow offered at a fixed
// light rate, (c) the runner's peak memory during (a); and, opt-in with
// --soak, (e) the runner's memory under a steady mixed load for a long
// run (bench_soak.go). The runner runs in
// this process with in-process Go no-op handlers; PostgreSQL is a throwaway
// cluster with fsync on, or the server named by DATABASE_URL.

// Bench defaults. For the concurrency, 200, 500, 1000 and 2000 were tried on
// a 2-core machine: at the runner's default flush batch they were within
// the noise of each other, so the bench measures the runner's default.
const (
	benchStepsDefault        = 100_000
	benchStepsQuick          = 20_000
	benchRateDefault         = 200 // steps/s: 50 linear-4 tasks/s
	benchDurationDefault     = 20 * time.Second
	benchDurationQuick       = 5 * time.Second
	benchConcurrencyDefault  = runner.MaxConcurrentStepsDefault
	benchPoolDefault         = 8
	benchSubmitChunk         = 5_000
	benchWarmupMax           = 2 * time.Second
	benchLatencyHistoryMax   = 1_000 // linear-4 tasks run before the latency measurement, by default
	benchLatencyHistoryLimit = 1_000_000
)

// Targets of the README's performance section. Throughput targets are
// ratios measured in the same run (backlog / River, HTTP / backlog), since
// absolute figures move with the machine.
const (
	targetE2EP50Ms = 8
	targetE2SP50Ms = 1.5
	targetE2SP99Ms = 10
	targetRSSMB    = 150
	// HTTP batched >= 0.95x the in-process backlog; unbatched >= 0.85x
	// the combined limit 1 / (1/raw + 1/backlog).
	targetHTTPBatchedToBacklog = 0.95
	targetHTTPUnbatchedToLimit = 0.85
)

type benchOptions struct {
	out          string
	jsonOut      bool
	quick        bool
	steps        int
	concurrency  int
	rate         float64
	duration     time.Duration
	history      int
	repeat       int
	poolSize     int
	flushBatch   int
	flushWriters int
	// noRideClaims turns off claims riding on outcome writes.
	noRideClaims bool
	flushEvery   time.Duration
	cpuProfile   string
	databaseURL  string
	progress     io.Writer
	skipLatency  bool
	skipBacklog  bool
	skipHTTP     bool
	skipBatch    bool
	httpSteps    int
	batchMax     int
	batchWindow  time.Duration
	profileOf    string        // the scenario --cpuprofile covers
	scenarioTime time.Duration // upper bound for one scenario

	// The batch workflow scenario (bench_batch.go).
	batchRows       int
	batchCursors    int
	batchRuns       int
	batchCheckpoint int

	// The soak scenario (bench_soak.go); soak 0 means not run.
	soak       time.Duration
	soakRate   float64
	memProfile string

	// River next to the backlog (bench_river.go).
	vsRiver  bool
	riverDir string
	// The history scenario (bench_history.go).
	runHistory   bool
	historySteps int
	// The scale scenario (bench_scale.go): runner processes.
	runScale   bool
	scaleProcs int
	// The DAG-size scenario (bench_dag.go).
	runDAG    bool
	dagChains []int
	dagFanout int
}

// Command is `tasker-runner bench`, the benchmark (make bench).
var Command = cli.Command{
	Name: "bench", Run: runBench,
	Summary: "measure throughput, latency and memory against the targets (make bench)",
	Usage:   "[--quick] [--json] [--out PATH] [--soak DURATION] [flags]",
}

func runBench(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet("bench")
	o := benchOptions{}
	only := addBenchFlags(fs, &o)
	if err := cli.ParseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", cli.ErrUsage, fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		applyQuick(&o, only.more, set)
	}
	if problems := checkBenchOptions(&o, only, set); len(problems) > 0 {
		return fmt.Errorf("%w: %s", cli.ErrUsage, strings.Join(problems, "; "))
	}
	o.databaseURL, _ = env.Lookup.Lookup("DATABASE_URL")
	o.progress = env.Stderr
	o.scenarioTime = 10*time.Minute + time.Duration(max(o.steps, o.httpSteps)/500)*time.Second
	if o.runHistory {
		o.scenarioTime = max(o.scenarioTime, 10*time.Minute+time.Duration(o.historySteps/500)*time.Second)
	}

	res, err := bench(ctx, env, o)
	if err != nil {
		return err
	}
	return writeBenchResults(env, o, res)
}

// writeBenchResults prints the table (to stderr with --json) and writes the
// JSON where --json and --out say.
func writeBenchResults(env *cli.Env, o benchOptions, res *benchResults) error {
	table := env.Stdout
	if o.jsonOut {
		table = env.Stderr
	}
	printBenchTable(table, res)
	if o.jsonOut || o.out != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding the results: %w", err)
		}
		b = append(b, '\n')
		if o.out != "" {
			if err := os.WriteFile(o.out, b, 0o644); err != nil {
				return fmt.Errorf("writing the results: %w", err)
			}
			fmt.Fprintf(table, "results written to %s\n", o.out)
		}
		if o.jsonOut {
			if _, err := env.Stdout.Write(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// bench runs the scenarios and gathers the results.
func bench(ctx context.Context, env *cli.Env, o benchOptions) (*benchResults, error) {
	started := time.Now()
	srv, err := openBenchServer(ctx, env, o)
	if err != nil {
		return nil, err
	}
	defer srv.close(env)
	res := newBenchResults(o, started, srv)

	var profile *os.File
	if o.cpuProfile != "" {
		if profile, err = os.Create(o.cpuProfile); err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		defer profile.Close()
	}
	var river *riverBench
	if o.vsRiver {
		if river, err = prepareRiver(ctx, srv, o); err != nil {
			return nil, fmt.Errorf("--vs-river: %w", err)
		}
		defer river.close()
	}
	rounds := &benchRounds{env: env, srv: srv, o: o, profile: profile, river: river}
	for i := range o.repeat {
		if err := rounds.run(ctx, i); err != nil {
			return nil, err
		}
	}
	if o.soak > 0 {
		if res.Soak, err = benchSoak(ctx, env, srv, o, profile); err != nil {
			return nil, err
		}
	}
	rounds.medians(res)
	if river != nil {
		res.River = river.compare(res.Backlog)
	}
	if err := runMoreScenarios(ctx, env, srv, o, res); err != nil {
		return nil, err
	}
	res.Figures = figures(res)
	res.Measured = describe(res, srv)
	res.TotalSeconds = time.Since(started).Seconds()
	return res, nil
}

// newBenchResults starts the results: when, on what, with which settings.
func newBenchResults(o benchOptions, started time.Time, srv *benchServer) *benchResults {
	res := &benchResults{
		Timestamp: started.UTC().Format(time.RFC3339),
		Version:   cli.BuildVersion(),
		Quick:     o.quick,
		Machine:   machineInfo(),
		Settings: benchSettings{
			Steps: o.steps, Concurrency: o.concurrency, RateStepsPerSec: o.rate,
			DurationSeconds: o.duration.Seconds(), WarmupSeconds: warmupFor(o.duration).Seconds(),
			Repeat: o.repeat, PoolMaxConns: o.poolSize,
			FlushBatch:      cmpOr(o.flushBatch, runner.FlushBatchDefault),
			FlushWriters:    cmpOr(o.flushWriters, runner.FlushWritersDefault),
			FlushIntervalMs: float64(cmpOr(o.flushEvery, runner.FlushIntervalDefault)) / float64(time.Millisecond),
			Mode:            runner.ModeHybrid,
		},
	}
	if !o.skipHTTP {
		res.Settings.HTTPSteps, res.Settings.BatchMax = o.httpSteps, o.batchMax
		res.Settings.BatchWindowMs = float64(o.batchWindow) / float64(time.Millisecond)
	}
	if !o.skipBatch {
		res.Settings.BatchRows, res.Settings.BatchCursors = o.batchRows, o.batchCursors
		res.Settings.BatchRuns, res.Settings.BatchCheckpointRows = o.batchRuns, o.batchCheckpoint
	}
	if o.soak > 0 {
		res.Settings.SoakSeconds, res.Settings.SoakRateStepsPerSec = o.soak.Seconds(), o.soakRate
	}
	res.Machine.Postgres = srv.info
	moreSettings(&res.Settings, o)
	return res
}

// benchRounds runs the repeated scenarios (--repeat rounds) and keeps
// their results.
type benchRounds struct {
	env     *cli.Env
	srv     *benchServer
	o       benchOptions
	profile *os.File
	river   *riverBench

	backlogs  []backlogResult
	latencies []latencyResult
	https     []httpResult
	batches   []etlResult
}

// run runs round i of the scenarios that are not skipped; River's figures
// are taken before the first backlog run and after the last.
func (r *benchRounds) run(ctx context.Context, i int) error {
	o := r.o
	if r.river != nil && i == 0 {
		if err := r.river.measure(ctx, r.env, r.srv, o, riverBefore); err != nil {
			return fmt.Errorf("--vs-river, before the backlog scenario: %w", err)
		}
	}
	if !o.skipBacklog {
		if err := r.backlog(ctx, i); err != nil {
			return err
		}
	}
	if r.river != nil && i == o.repeat-1 {
		if err := r.river.measure(ctx, r.env, r.srv, o, riverAfter); err != nil {
			return fmt.Errorf("--vs-river, after the backlog scenario: %w", err)
		}
	}
	if !o.skipLatency {
		if err := r.latency(ctx, i); err != nil {
			return err
		}
	}
	if !o.skipHTTP {
		if err := r.http(ctx, i); err != nil {
			return err
		}
	}
	if !o.skipBatch {
		if err := r.batch(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

func (r *benchRounds) backlog(ctx context.Context, i int) error {
	o := r.o
	fmt.Fprintf(o.progress, "bench: backlog work-down %d/%d: %d single-step tasks, max_concurrent_steps %d\n", i+1, o.repeat, o.steps, o.concurrency)
	b, err := runBacklog(ctx, r.env, r.srv, o, profileIf(r.profile, i == 0 && o.profileOf == "backlog"))
	if err != nil {
		return fmt.Errorf("backlog scenario: %w", err)
	}
	fmt.Fprintf(o.progress, "bench:   worked down in %.2fs: %.0f steps/s, runner CPU %.0f µs per step, peak RSS %.1f MB\n",
		b.WorkDownSeconds, b.StepsPerSec, b.RunnerCPUMicrosPerStep, b.Memory.PeakRSSMB)
	r.backlogs = append(r.backlogs, b)
	return nil
}

func (r *benchRounds) latency(ctx context.Context, i int) error {
	o := r.o
	fmt.Fprintf(o.progress, "bench: linear-4 latency %d/%d: %.0f steps/s offered for %s (first %s discarded)\n", i+1, o.repeat, o.rate, o.duration, warmupFor(o.duration))
	l, err := runLatency(ctx, r.env, r.srv, o)
	if err != nil {
		return fmt.Errorf("latency scenario: %w", err)
	}
	fmt.Fprintf(o.progress, "bench:   %d tasks measured: end to end p50 %.2f ms, p99 %.2f ms; enqueue to start p50 %.2f ms, p99 %.2f ms\n",
		l.TasksMeasured, l.EndToEndMs.P50, l.EndToEndMs.P99, l.EnqueueToStartMs.P50, l.EnqueueToStartMs.P99)
	r.latencies = append(r.latencies, l)
	return nil
}

func (r *benchRounds) http(ctx context.Context, i int) error {
	o := r.o
	fmt.Fprintf(o.progress, "bench: HTTP callouts %d/%d: no-op handler service on loopback, in this process; max_concurrent_steps %d\n", i+1, o.repeat, o.concurrency)
	profiles := map[string]*os.File{}
	if i == 0 && r.profile != nil {
		profiles[o.profileOf] = r.profile
	}
	h, err := runHTTP(ctx, r.env, r.srv, o, profiles)
	if err != nil {
		return fmt.Errorf("HTTP callout scenario: %w", err)
	}
	r.https = append(r.https, h)
	return nil
}

func (r *benchRounds) batch(ctx context.Context, i int) error {
	o := r.o
	fmt.Fprintf(o.progress, "bench: batch workflow %d/%d: %s rows in %d cursors and %s rows in %d cursors, %d runs each, checkpoint every %d rows\n",
		i+1, o.repeat, groupThousands(int64(o.batchRows)), o.batchCursors, groupThousands(benchBatchSmallRows), benchBatchSmallCursors, o.batchRuns, o.batchCheckpoint)
	b, err := runBatchETL(ctx, r.env, r.srv, o, profileIf(r.profile, i == 0 && o.profileOf == "batch"))
	if err != nil {
		return fmt.Errorf("batch workflow scenario: %w", err)
	}
	r.batches = append(r.batches, b)
	return nil
}

// medians reports each scenario's median run, and every run when there
// was more than one.
func (r *benchRounds) medians(res *benchResults) {
	reportRuns(r.backlogs, medianBacklog, &res.Backlog, &res.BacklogRuns)
	reportRuns(r.latencies, medianLatency, &res.Latency, &res.LatencyRuns)
	reportRuns(r.https, medianHTTP, &res.HTTP, &res.HTTPRuns)
	reportRuns(r.batches, medianETL, &res.Batch, &res.BatchRuns)
}

// reportRuns sets *median to the median of runs (by medianOf) and, when
// there is more than one, *all to runs; with no runs it sets neither.
func reportRuns[T any](runs []T, medianOf func([]T) T, median **T, all *[]T) {
	if len(runs) == 0 {
		return
	}
	m := medianOf(runs)
	*median = &m
	if len(runs) > 1 {
		*all = runs
	}
}

// benchSoak runs the soak scenario and prints its summary.
func benchSoak(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions, profile *os.File) (*soakResult, error) {
	fmt.Fprintf(o.progress, "bench: soak: %.0f steps/s offered for %s (single-step, linear-4 and diamond tasks; first %s is warm-up), memory sampled every %s\n",
		o.soakRate, o.soak, soakWarmup(o.soak), soakSampleEvery(o.soak))
	s, err := runSoak(ctx, env, srv, o, profileIf(profile, o.profileOf == "soak"))
	if err != nil {
		return nil, fmt.Errorf("soak scenario: %w", err)
	}
	fmt.Fprintf(o.progress, "bench:   %d steps completed (%.1f%% of offered); RSS %.1f MB after warm-up, %.1f MB at end, max %.1f MB; live heap slope %.3f MB/min\n",
		s.StepsCompleted, s.CompletedPct, s.RSSWarmupMB, s.RSSEndMB, s.RSSMaxMB, s.HeapLiveSlopeMBPerMin)
	return &s, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func profileIf(f *os.File, ok bool) *os.File {
	if ok {
		return f
	}
	return nil
}

// startProfile starts a CPU profile into f when f is set and returns its stop.
func startProfile(f *os.File) (func(), error) {
	if f == nil {
		return func() {}, nil
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return pprof.StopCPUProfile, nil
}

// warmupFor is the part of a latency run that is discarded.
func warmupFor(d time.Duration) time.Duration { return min(benchWarmupMax, d/5) }

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// median returns the median of xs (the mean of the middle two for an even
// count); xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[(len(s)-1)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianRun returns the run whose main figure, key, is the median: the
// lower middle one for an even count (a real run, not the mean of two). The
// aggregates of --repeat report that run whole, so that every figure of a
// scenario comes from the same run rather than from medians of different
// runs. runs is not modified; ties keep their order.
func medianRun[T any](runs []T, key func(T) float64) T {
	s := slices.Clone(runs)
	slices.SortStableFunc(s, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
	return s[(len(s)-1)/2]
}

// medianBacklog reports the run with the median throughput (steps/s),
// every figure of it (memory included) from that one run.
func medianBacklog(runs []backlogResult) backlogResult {
	if len(runs) == 1 {
		return runs[0]
	}
	m := medianRun(runs, func(r backlogResult) float64 { return r.StepsPerSec })
	m.MedianOf = len(runs)
	return m
}

// medianLatency reports the run with the median end-to-end p50, every
// percentile of it from that one run.
func medianLatency(runs []latencyResult) latencyResult {
	if len(runs) == 1 {
		return runs[0]
	}
	m := medianRun(runs, func(r latencyResult) float64 { return r.EndToEndMs.P50 })
	m.MedianOf = len(runs)
	return m
}

var errBenchTimeout = errors.New("timed out")

func goVersion() string { return runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH }

// Defaults of the history, scale and DAG-size scenarios (issue 18).
const (
	benchHistoryStepsDefault = 1_000_000
	benchHistoryStepsQuick   = 100_000
	benchScaleProcsDefault   = 3
	benchScaleProcsMax       = 16
	benchDAGChainsDefault    = "10,100,1000"
	benchDAGChainsQuick      = "10,100" // the 1,000-step chain is skipped
	// A template holds at most workflow.MaxSteps steps: the root and the
	// join take two of them.
	benchDAGFanoutDefault = workflow.MaxSteps - 2
	benchDAGFanoutQuick   = 100
)

// moreScenarioFlags are the -only flags of the history, scale and DAG-size
// scenarios, and --dag-chains before it is parsed.
type moreScenarioFlags struct {
	onlyHistory, onlyScale, onlyDAG bool
	dagChains                       string
}

func addMoreScenarioFlags(fs *flag.FlagSet, o *benchOptions) *moreScenarioFlags {
	m := &moreScenarioFlags{}
	fs.BoolVar(&o.vsRiver, "vs-river", false, "compare with River: build cmd/riverbench (a Go module of its own, so River stays out of this binary) with the go command, run it on the same server right before and right after the backlog scenario, each time in a fresh database with --steps jobs, and report backlog / River (make bench passes it)")
	fs.StringVar(&o.riverDir, "river-dir", "", "--vs-river: the riverbench source `DIR` (default: cmd/riverbench of the tasker-runner module found in the working directory or above it)")
	fs.BoolVar(&o.runHistory, "history", true, "history scenario: the backlog and latency scenarios again, on copies of a database that already holds --history-steps finished steps, as ratios to the empty-database figures (--history=false skips it)")
	fs.IntVar(&o.historySteps, "history-steps", benchHistoryStepsDefault, fmt.Sprintf("history scenario: finished single-step tasks in the database (--quick: %d)", benchHistoryStepsQuick))
	fs.BoolVar(&o.runScale, "scale", true, "scale scenario: --scale-processes runner processes (this binary, started again) work one --steps backlog down, against one runner process measured the same way (--scale=false skips it)")
	fs.IntVar(&o.scaleProcs, "scale-processes", benchScaleProcsDefault, "scale scenario: runner processes of the many-process run")
	fs.BoolVar(&o.runDAG, "dag-sizes", true, "DAG-size scenario: linear chains (--dag-chains) and a fan-out/fan-in (--dag-fanout), each submitted alone over HTTP to the management API (in this process, on loopback) and run with an HTTP no-op handler service; submit time and time per step (--dag-sizes=false skips it)")
	fs.StringVar(&m.dagChains, "dag-chains", benchDAGChainsDefault, "DAG-size scenario: comma-separated chain lengths (--quick: "+benchDAGChainsQuick+")")
	fs.IntVar(&o.dagFanout, "dag-fanout", benchDAGFanoutDefault, fmt.Sprintf("DAG-size scenario: middle steps of the fan-out/fan-in between its root and its join, at most %d (a template's most steps less those two); 0: none (--quick: %d)", workflow.MaxSteps-2, benchDAGFanoutQuick))
	fs.BoolVar(&m.onlyHistory, "history-only", false, "run only the backlog and latency scenarios, and the history scenario on them")
	fs.BoolVar(&m.onlyScale, "scale-only", false, "run only the scale scenario")
	fs.BoolVar(&m.onlyDAG, "dag-only", false, "run only the DAG-size scenario")
	return m
}

func (m *moreScenarioFlags) count() int {
	return btoi(m.onlyHistory) + btoi(m.onlyScale) + btoi(m.onlyDAG)
}

// only applies the one -only flag given: the history, scale and DAG-size
// scenarios not named by it are off, unless their own flag says otherwise.
func (m *moreScenarioFlags) only(o *benchOptions, set map[string]bool) {
	if !set["history"] {
		o.runHistory = m.onlyHistory
	}
	if !set["scale"] {
		o.runScale = m.onlyScale
	}
	if !set["dag-sizes"] {
		o.runDAG = m.onlyDAG
	}
}

// check validates these flags, and parses --dag-chains into o.
func (m *moreScenarioFlags) check(o *benchOptions) []string {
	var problems []string
	if o.vsRiver && o.skipBacklog {
		problems = append(problems, "--vs-river compares River with the backlog scenario, which this run skips")
	}
	if o.historySteps < 1 {
		problems = append(problems, fmt.Sprintf("--history-steps must be at least 1, got %d", o.historySteps))
	}
	if o.scaleProcs < 2 || o.scaleProcs > benchScaleProcsMax {
		problems = append(problems, fmt.Sprintf("--scale-processes must be from 2 to %d, got %d", benchScaleProcsMax, o.scaleProcs))
	}
	o.dagChains = nil
	for f := range strings.SplitSeq(m.dagChains, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 2 || n > workflow.MaxSteps {
			problems = append(problems, fmt.Sprintf("--dag-chains: each length must be from 2 to %d (a template's most steps), got %q", workflow.MaxSteps, f))
			continue
		}
		o.dagChains = append(o.dagChains, n)
	}
	if o.dagFanout < 0 || o.dagFanout > workflow.MaxSteps-2 {
		problems = append(problems, fmt.Sprintf("--dag-fanout must be from 0 to %d (a template's most steps, less the root and the join), got %d", workflow.MaxSteps-2, o.dagFanout))
	}
	if o.runDAG && len(o.dagChains) == 0 && o.dagFanout == 0 {
		problems = append(problems, "--dag-sizes with no --dag-chains and --dag-fanout 0 has nothing to run")
	}
	return problems
}

// moreSettings records the settings of the scenarios that run.
func moreSettings(s *benchSettings, o benchOptions) {
	s.VsRiver = o.vsRiver
	if o.runHistory {
		s.HistorySteps = o.historySteps
	}
	if o.runScale {
		s.ScaleProcesses = o.scaleProcs
	}
	if o.runDAG {
		s.DAGChains, s.DAGFanout = o.dagChains, o.dagFanout
	}
}

// runMoreScenarios runs the history, scale and DAG-size scenarios, once
// each (--repeat applies to the others), after the rest.
func runMoreScenarios(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions, res *benchResults) error {
	if o.runHistory && (!o.skipBacklog || !o.skipLatency) {
		h, err := runHistory(ctx, env, srv, o)
		if err != nil {
			return fmt.Errorf("history scenario: %w", err)
		}
		h.compare(res.Backlog, res.Latency)
		res.History = &h
	}
	if o.runScale {
		sc, err := runScale(ctx, env, srv, o)
		if err != nil {
			return fmt.Errorf("scale scenario: %w", err)
		}
		res.Scale = &sc
	}
	if o.runDAG {
		d, err := runDAG(ctx, env, srv, o)
		if err != nil {
			return fmt.Errorf("DAG-size scenario: %w", err)
		}
		res.DAG = &d
	}
	return nil
}
