package bench

import (
	"flag"
	"fmt"
	"time"

	"github.com/tasker-runner/tasker-runner/runner"
)

// benchOnly are the -only flags: which single scenario to run.
type benchOnly struct {
	backlog, latency, http, batch bool
	more                          *moreScenarioFlags
}

// addBenchFlags defines the bench's flags into o and returns the -only ones.
func addBenchFlags(fs *flag.FlagSet, o *benchOptions) *benchOnly {
	only := &benchOnly{}
	fs.StringVar(&o.out, "out", "", "write the results as JSON to `PATH`")
	fs.BoolVar(&o.jsonOut, "json", false, "print the results as one JSON object on stdout (the table goes to stderr)")
	fs.BoolVar(&o.quick, "quick", false, fmt.Sprintf("reduced run for fast comparisons: %d-step backlog, %s latency run", benchStepsQuick, benchDurationQuick))
	fs.IntVar(&o.steps, "steps", benchStepsDefault, "backlog size: single-step tasks inserted before the runner starts")
	fs.IntVar(&o.concurrency, "concurrency", benchConcurrencyDefault, "the runner's max_concurrent_steps")
	fs.Float64Var(&o.rate, "rate", benchRateDefault, "steps/s offered in the latency scenario (4 steps per task)")
	fs.DurationVar(&o.duration, "duration", benchDurationDefault, "length of the latency scenario, warm-up included")
	fs.IntVar(&o.history, "latency-history", 0, fmt.Sprintf("latency scenario: linear-4 tasks run (and the tables analysed) before the measurement, for a database with a past (0: one per task the run offers, %d at most)", benchLatencyHistoryMax))
	fs.IntVar(&o.repeat, "repeat", 1, "run every scenario `N` times (each in a fresh database) and report its median run (by its main figure), every figure from that run")
	fs.IntVar(&o.poolSize, "pool", benchPoolDefault, "tuning: the runner's connection pool size")
	fs.IntVar(&o.flushBatch, "flush-batch", 0, "tuning: the completer's most outcomes per write (0: the runner's default)")
	fs.IntVar(&o.flushWriters, "flush-writers", 0, "tuning: the completer's most writes at once (0: the runner's default)")
	fs.BoolVar(&o.noRideClaims, "no-claim-with-completions", false, "tuning: outcome writes do not claim the next steps (the runner's DisableClaimWithCompletions)")
	fs.DurationVar(&o.flushEvery, "flush-interval", 0, "tuning: the completer's longest wait for company (0: the runner's default)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "profiling: write a CPU profile of one scenario (--cpuprofile-of) to `PATH`")
	fs.StringVar(&o.profileOf, "cpuprofile-of", "", "profiling: the scenario --cpuprofile covers: backlog, http, httpbatch, raw, batch or soak (default backlog; http with --http-only, batch with --batch-only, soak with --soak)")
	fs.IntVar(&o.httpSteps, "http-steps", benchHTTPStepsDefault, fmt.Sprintf("HTTP scenarios: backlog size, and requests of the raw run (--quick: %d)", benchHTTPStepsQuick))
	fs.IntVar(&o.batchMax, "batch-max", benchBatchMaxDefault, "HTTP scenarios: the endpoint's batch_max in the batched run")
	fs.DurationVar(&o.batchWindow, "batch-window", benchBatchWindowDefault, "HTTP scenarios: the endpoint's batch_window in the batched run")
	fs.IntVar(&o.batchRows, "batch-rows", benchBatchRowsDefault, fmt.Sprintf("batch workflow: rows of the large task (--quick: %d); a %d-row task is also run, for the comparison with Tasker", benchBatchRowsQuick, benchBatchSmallRows))
	fs.IntVar(&o.batchCursors, "batch-cursors", benchBatchCursorsDefault, "batch workflow: cursors (batch worker steps) of the large task")
	fs.IntVar(&o.batchRuns, "batch-runs", benchBatchRunsDefault, fmt.Sprintf("batch workflow: measured tasks of each size (--quick: %d)", benchBatchRunsQuick))
	fs.IntVar(&o.batchCheckpoint, "batch-checkpoint", benchBatchCheckpointDefault, "batch workflow: rows a worker processes per call before it yields a checkpoint")
	fs.DurationVar(&o.soak, "soak", 0, fmt.Sprintf("run only the soak scenario, for `DURATION` (e.g. 10m): one runner under a steady mixed load (single-step, linear-4 and diamond tasks at --soak-rate, 1 first attempt in %d failing and retried), its RSS, Go heap, goroutines and in-flight steps sampled every few seconds and judged for growth after a %.0f%% warm-up. Opt-in: a plain bench does not run it", benchSoakRetryEvery, 100*benchSoakWarmupFraction))
	fs.Float64Var(&o.soakRate, "soak-rate", benchSoakRateDefault, "soak: steps/s offered (open loop, paced by the clock)")
	fs.StringVar(&o.memProfile, "memprofile", "", "soak: write Go heap profiles at the end of the warm-up (`PATH`.warmup) and at the end (PATH); compare them with go tool pprof -base PATH.warmup PATH (samples every 4 KB allocated)")
	fs.BoolVar(&only.backlog, "backlog-only", false, "run only the backlog scenario")
	fs.BoolVar(&only.latency, "latency-only", false, "run only the latency scenario")
	fs.BoolVar(&only.http, "http-only", false, "run only the HTTP callout scenarios (work-down unbatched and batched, raw handler rate)")
	fs.BoolVar(&only.batch, "batch-only", false, "run only the batch workflow scenario (batchable step, cursor workers with checkpoints, convergence)")
	only.more = addMoreScenarioFlags(fs, o)
	return only
}

// applyQuick shrinks the sizes --quick shrinks, unless set by hand.
func applyQuick(o *benchOptions, more *moreScenarioFlags, set map[string]bool) {
	if !set["steps"] {
		o.steps = benchStepsQuick
	}
	if !set["duration"] {
		o.duration = benchDurationQuick
	}
	if !set["http-steps"] {
		o.httpSteps = benchHTTPStepsQuick
	}
	if !set["batch-rows"] {
		o.batchRows = benchBatchRowsQuick
	}
	if !set["batch-runs"] {
		o.batchRuns = benchBatchRunsQuick
	}
	if !set["history-steps"] {
		o.historySteps = benchHistoryStepsQuick
	}
	if !set["dag-chains"] {
		more.dagChains = benchDAGChainsQuick
	}
	if !set["dag-fanout"] {
		o.dagFanout = benchDAGFanoutQuick
	}
}

// checkBenchOptions checks the options (and settles which scenarios run);
// it returns the problems found.
func checkBenchOptions(o *benchOptions, only *benchOnly, set map[string]bool) []string {
	var problems []string
	problems = append(problems, checkBenchSizes(o)...)
	problems = append(problems, checkBenchSelection(o, only, set)...)
	problems = append(problems, checkBenchHTTPAndBatch(o)...)
	problems = append(problems, checkBenchSoak(o, only, set)...)
	problems = append(problems, only.more.check(o)...)
	return append(problems, settleProfileOf(o, only)...)
}

// checkBenchSizes checks the backlog, latency and tuning flags.
func checkBenchSizes(o *benchOptions) []string {
	var problems []string
	if o.steps < 1 {
		problems = append(problems, fmt.Sprintf("--steps must be at least 1, got %d", o.steps))
	}
	if o.concurrency < 1 {
		problems = append(problems, fmt.Sprintf("--concurrency must be at least 1, got %d", o.concurrency))
	}
	if o.rate <= 0 {
		problems = append(problems, fmt.Sprintf("--rate must be positive, got %g", o.rate))
	}
	if o.duration < 100*time.Millisecond {
		problems = append(problems, fmt.Sprintf("--duration must be at least 100ms, got %s", o.duration))
	}
	if o.history < 0 || o.history > benchLatencyHistoryLimit {
		problems = append(problems, fmt.Sprintf("--latency-history must be between 0 and %d, got %d", benchLatencyHistoryLimit, o.history))
	}
	if o.repeat < 1 {
		problems = append(problems, fmt.Sprintf("--repeat must be at least 1, got %d", o.repeat))
	}
	if o.poolSize < 2 {
		problems = append(problems, fmt.Sprintf("--pool must be at least 2, got %d", o.poolSize))
	}
	if o.flushBatch < 0 || o.flushEvery < 0 || o.flushWriters < 0 {
		problems = append(problems, "--flush-batch, --flush-writers and --flush-interval must not be negative")
	}
	return problems
}

// checkBenchSelection checks that at most one -only flag is set, and
// skips the other scenarios when one is.
func checkBenchSelection(o *benchOptions, only *benchOnly, set map[string]bool) []string {
	var problems []string
	if n := btoi(only.backlog) + btoi(only.latency) + btoi(only.http) + btoi(only.batch) + only.more.count(); n > 1 {
		problems = append(problems, "--backlog-only, --latency-only, --http-only, --batch-only, --history-only, --scale-only and --dag-only exclude each other")
	} else if n == 1 {
		// --history-only runs the backlog and latency scenarios too: its
		// figures are ratios to theirs on an empty database.
		o.skipBacklog = !only.backlog && !only.more.onlyHistory
		o.skipLatency = !only.latency && !only.more.onlyHistory
		o.skipHTTP, o.skipBatch = !only.http, !only.batch
		only.more.only(o, set)
	}
	return problems
}

// checkBenchHTTPAndBatch checks the HTTP and batch scenarios' flags.
func checkBenchHTTPAndBatch(o *benchOptions) []string {
	var problems []string
	if o.httpSteps < 1 {
		problems = append(problems, fmt.Sprintf("--http-steps must be at least 1, got %d", o.httpSteps))
	}
	if o.batchMax < 2 {
		problems = append(problems, fmt.Sprintf("--batch-max must be at least 2, got %d", o.batchMax))
	}
	if o.batchWindow < 0 {
		problems = append(problems, "--batch-window must not be negative")
	}
	if o.batchRows < 1 {
		problems = append(problems, fmt.Sprintf("--batch-rows must be at least 1, got %d", o.batchRows))
	}
	if o.batchCursors < 1 || o.batchCursors > runner.MaxStepsPerOutcomeDefault {
		problems = append(problems, fmt.Sprintf("--batch-cursors must be from 1 to %d (the runner's steps per outcome), got %d", runner.MaxStepsPerOutcomeDefault, o.batchCursors))
	}
	if o.batchRuns < 1 {
		problems = append(problems, fmt.Sprintf("--batch-runs must be at least 1, got %d", o.batchRuns))
	}
	if o.batchCheckpoint < 1 {
		problems = append(problems, fmt.Sprintf("--batch-checkpoint must be at least 1, got %d", o.batchCheckpoint))
	}
	return problems
}

// checkBenchSoak checks the soak's flags; --soak runs the soak alone.
func checkBenchSoak(o *benchOptions, only *benchOnly, set map[string]bool) []string {
	var problems []string
	if set["soak"] {
		switch {
		case o.soak < time.Second:
			problems = append(problems, fmt.Sprintf("--soak must be at least 1s, got %s", o.soak))
		case only.backlog || only.latency || only.http || only.batch:
			problems = append(problems, "--soak runs only the soak scenario: it excludes --backlog-only, --latency-only, --http-only and --batch-only")
		case o.repeat > 1:
			problems = append(problems, "--soak runs once: it excludes --repeat")
		}
		if set["vs-river"] && o.vsRiver || set["history"] && o.runHistory || set["scale"] && o.runScale || set["dag-sizes"] && o.runDAG || only.more.count() > 0 {
			problems = append(problems, "--soak runs only the soak scenario: it excludes --vs-river, --history, --scale, --dag-sizes and their -only forms")
		}
		o.skipBacklog, o.skipLatency, o.skipHTTP, o.skipBatch = true, true, true, true
		o.vsRiver, o.runHistory, o.runScale, o.runDAG = false, false, false, false
	} else if o.memProfile != "" {
		problems = append(problems, "--memprofile profiles the soak: it needs --soak")
	}
	if o.soakRate <= 0 {
		problems = append(problems, fmt.Sprintf("--soak-rate must be positive, got %g", o.soakRate))
	}
	return problems
}

// settleProfileOf checks --cpuprofile-of, defaulting it to the scenario
// that runs.
func settleProfileOf(o *benchOptions, only *benchOnly) []string {
	var problems []string
	switch o.profileOf {
	case "":
		o.profileOf = "backlog"
		if only.http {
			o.profileOf = "http"
		}
		if only.batch {
			o.profileOf = "batch"
		}
		if o.soak > 0 {
			o.profileOf = "soak"
		}
	case "backlog", "http", "httpbatch", "raw", "batch", "soak":
	default:
		problems = append(problems, fmt.Sprintf("--cpuprofile-of must be backlog, http, httpbatch, raw, batch or soak, got %q", o.profileOf))
	}
	return problems
}
