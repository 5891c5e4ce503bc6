package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/app"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
)

// The soak scenario (opt-in: --soak DURATION) checks the second half of
// the README's memory target, "no growth over a 10-minute soak". One
// runner gets a steady mixed load for the whole duration: a paced
// submitter offers a fixed rate of single-step tasks, 4-step linear
// workflows and 4-step diamonds, with in-process no-op Go handlers of which
// one first attempt in benchSoakRetryEvery fails (retryable), so the retry
// path (waiting_for_retry, backoff, wake-up) runs too. The process's RSS,
// Go heap, goroutines and the runner's in-flight steps are sampled every
// few seconds; growth is judged on the samples after the warm-up.
//
// The bench keeps no per-task state (counters only), so its own memory is
// flat by construction; completed tasks stay in PostgreSQL, which grows,
// and its size is sampled too so that the two are seen apart.

const (
	benchSoakRateDefault    = 500 // steps/s: a fraction of a 2-core machine's capacity
	benchSoakRetryEvery     = 50  // one first attempt in this many fails, retryably
	benchSoakRetryBackoffMs = 100
	benchSoakWarmupFraction = 0.10
	benchSoakSampleMax      = 5 * time.Second
	benchSoakSampleMin      = 100 * time.Millisecond
	benchSoakSamplesWanted  = 100 // samples per run when the duration allows
	benchSoakTick           = 20 * time.Millisecond
	benchSoakSubmitMax      = 1_000 // tasks per SubmitMany when catching up
	benchSoakDrainMax       = time.Minute
	benchSoakCallable       = "bench.soak"
	benchSoakHistoryTasks   = 1_200 // at most: 200 rounds of the mix, run before the clock starts
	// benchSoakMemProfileRate is the heap profile's sampling rate with
	// --memprofile: the default (one sample per 512 KB allocated) cannot
	// show a growth of a few hundred KB.
	benchSoakMemProfileRate = 4 << 10
)

// Targets of the soak. The README's target says "no growth"; these say how much
// counts as none. A leak of a few hundred bytes per step at 500 steps/s is
// about 10 MB/min and clears the slope threshold by far.
const (
	targetSoakHeapSlopeMBPerMin = 0.5 // live Go heap, least squares after the warm-up
	targetSoakRSSGrowthPct      = 10  // RSS at the end vs at the end of the warm-up
	targetSoakCompletedPct      = 99  // steps completed by the end / steps offered
)

// The mix: per round of benchSoakMix tasks, 4 single-step tasks, one
// linear-4 and one diamond: 12 steps, a third of them in each shape.
var benchSoakMix = []struct {
	template string
	steps    int
}{{"single", 1}, {"single", 1}, {"single", 1}, {"single", 1}, {"linear4", 4}, {"diamond", 4}}

const soakRetry = "    retry: {max_attempts: 3, backoff: fixed, backoff_base_ms: %d}\n"

func soakTemplates(ns string) []string {
	step := func(name string, deps ...string) string {
		s := fmt.Sprintf("  - name: %s\n    handler: {callable: %s}\n"+soakRetry, name, benchSoakCallable, benchSoakRetryBackoffMs)
		if len(deps) > 0 {
			s += "    dependencies: ["
			for i, d := range deps {
				if i > 0 {
					s += ", "
				}
				s += d
			}
			s += "]\n"
		}
		return s
	}
	head := func(name string) string {
		return fmt.Sprintf("name: %s\nnamespace_name: %s\nversion: 1.0.0\nsteps:\n", name, ns)
	}
	return []string{
		head("single") + step("only"),
		head("linear4") + step("s1") + step("s2", "s1") + step("s3", "s2") + step("s4", "s3"),
		head("diamond") + step("a") + step("b", "a") + step("c", "a") + step("d", "b", "c"),
	}
}

// soakSample is one reading of the process and the runner.
type soakSample struct {
	T     float64 `json:"t_seconds"`
	RSSMB float64 `json:"rss_mb"`
	// HeapLiveMB is the heap marked live by the last GC (/gc/heap/live);
	// HeapObjectsMB adds what was allocated since (garbage not yet swept).
	HeapLiveMB    float64 `json:"heap_live_mb"`
	HeapObjectsMB float64 `json:"heap_objects_mb"`
	Goroutines    int     `json:"goroutines"`
	InFlight      int     `json:"in_flight"`
	// StepsOffered are the steps of the tasks submitted so far,
	// StepsCompleted the steps written complete so far.
	StepsOffered   int64 `json:"steps_offered"`
	StepsCompleted int64 `json:"steps_completed"`
	// DatabaseMB is pg_database_size of the scenario's database: it grows,
	// as completed tasks are kept.
	DatabaseMB float64 `json:"database_mb,omitempty"`
}

type soakResult struct {
	DurationSeconds    float64 `json:"duration_seconds"`
	WarmupSeconds      float64 `json:"warmup_seconds"`
	SampleEverySeconds float64 `json:"sample_every_seconds"`
	OfferedStepsPerSec float64 `json:"offered_steps_per_sec"`
	Mix                string  `json:"mix"`
	RetryEvery         int     `json:"retry_every"`
	Concurrency        int     `json:"max_concurrent_steps"`

	// PlannedSteps is rate × duration; StepsOffered what the submitter got
	// in (less when submitting fell behind).
	PlannedSteps   int64 `json:"planned_steps"`
	TasksSubmitted int64 `json:"tasks_submitted"`
	StepsOffered   int64 `json:"steps_offered"`
	// StepsCompleted were written complete by the end of the run;
	// StepsCompletedAfterDrain once the last submitted task finished.
	StepsCompleted           int64   `json:"steps_completed"`
	StepsCompletedAfterDrain int64   `json:"steps_completed_after_drain"`
	TasksCompleted           int64   `json:"tasks_completed"`
	AchievedStepsPerSec      float64 `json:"achieved_steps_per_sec"`
	CompletedPct             float64 `json:"completed_pct"`
	Sustained                bool    `json:"sustained"`
	Retries                  int64   `json:"retries"`
	Failed                   int64   `json:"failed"`
	MaxOutstandingSteps      int64   `json:"max_outstanding_steps"`
	MaxInFlight              int     `json:"max_in_flight"`
	DrainSeconds             float64 `json:"drain_seconds"`
	// HistoryTasks were run (and the tables analysed) before the clock
	// started, as in the latency scenario.
	HistoryTasks int `json:"history_tasks"`

	RSSSource             string  `json:"rss_source"`
	BaselineRSSMB         float64 `json:"baseline_rss_mb"`
	RSSWarmupMB           float64 `json:"rss_warmup_mb"`
	RSSEndMB              float64 `json:"rss_end_mb"`
	RSSMaxMB              float64 `json:"rss_max_mb"`
	RSSGrowthPct          float64 `json:"rss_growth_pct"`
	RSSSlopeMBPerMin      float64 `json:"rss_slope_mb_per_min"`
	HeapLiveWarmupMB      float64 `json:"heap_live_warmup_mb"`
	HeapLiveEndMB         float64 `json:"heap_live_end_mb"`
	HeapLiveMaxMB         float64 `json:"heap_live_max_mb"`
	HeapLiveSlopeMBPerMin float64 `json:"heap_live_slope_mb_per_min"`
	HeapObjSlopeMBPerMin  float64 `json:"heap_objects_slope_mb_per_min"`
	GoroutinesStart       int     `json:"goroutines_start"`
	GoroutinesWarmup      int     `json:"goroutines_warmup"`
	GoroutinesEnd         int     `json:"goroutines_end"`
	GoroutinesMax         int     `json:"goroutines_max"`
	DatabaseStartMB       float64 `json:"database_start_mb,omitempty"`
	DatabaseEndMB         float64 `json:"database_end_mb,omitempty"`
	SlopeSamples          int     `json:"slope_samples"`
	NoGrowth              bool    `json:"no_growth"`
	HeapProfiles          string  `json:"heap_profiles,omitempty"`

	CPU     cpuUsage     `json:"cpu"`
	Note    string       `json:"note"`
	Samples []soakSample `json:"samples"`
}

// soakSampleEvery spreads about benchSoakSamplesWanted samples over d.
func soakSampleEvery(d time.Duration) time.Duration {
	return min(benchSoakSampleMax, max(benchSoakSampleMin, d/benchSoakSamplesWanted))
}

func soakWarmup(d time.Duration) time.Duration {
	return time.Duration(float64(d) * benchSoakWarmupFraction)
}

// doneSignal is a channel closed once.
type doneSignal struct {
	ch   chan struct{}
	once sync.Once
}

func newDoneSignal() *doneSignal { return &doneSignal{ch: make(chan struct{})} }

func (d *doneSignal) close() { d.once.Do(func() { close(d.ch) }) }

// soakHandler is the no-op handler; every benchSoakRetryEvery-th first
// attempt fails with a retryable error.
type soakHandler struct{ firsts atomic.Int64 }

func (h *soakHandler) handle(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
	if env.Step.Attempts <= 1 && h.firsts.Add(1)%benchSoakRetryEvery == 0 {
		return contracts.Failure(contracts.ErrorTypeHandler, "soak: planned first-attempt failure", true), nil
	}
	return contracts.StepResult{Success: true}, nil
}

// memReader reads the process's memory figures.
type memReader struct {
	samples []metrics.Sample
	proc    bool // VmRSS is readable
}

func newMemReader() *memReader {
	return &memReader{
		samples: []metrics.Sample{
			{Name: "/gc/heap/live:bytes"},
			{Name: "/memory/classes/heap/objects:bytes"},
			{Name: "/memory/classes/total:bytes"},
			{Name: "/memory/classes/heap/released:bytes"},
		},
		proc: procStatusMB("VmRSS") > 0,
	}
}

func (m *memReader) source() string {
	if m.proc {
		return "VmRSS of this process (/proc/self/status; the runner is in-process)"
	}
	return "Go runtime's mapped memory less released (runtime/metrics; no /proc): an estimate of RSS"
}

// read returns RSS, live heap and heap objects in MB.
func (m *memReader) read() (rss, live, objects float64) {
	metrics.Read(m.samples)
	mb := func(i int) float64 {
		if m.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return float64(m.samples[i].Value.Uint64()) / (1 << 20)
	}
	live, objects = mb(0), mb(1)
	if m.proc {
		rss = procStatusMB("VmRSS")
	} else {
		rss = mb(2) - mb(3)
	}
	return rss, live, objects
}

// runSoak offers the mix at o.soakRate steps/s to one runner for o.soak and
// samples its memory.
func runSoak(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions, profile *os.File) (soakResult, error) {
	warmup := soakWarmup(o.soak)
	every := soakSampleEvery(o.soak)
	stepsPerRound := 0
	for _, m := range benchSoakMix {
		stepsPerRound += m.steps
	}
	res := soakResult{
		DurationSeconds: o.soak.Seconds(), WarmupSeconds: warmup.Seconds(), SampleEverySeconds: every.Seconds(),
		OfferedStepsPerSec: o.soakRate, RetryEvery: benchSoakRetryEvery, Concurrency: o.concurrency,
		Mix: fmt.Sprintf("per %d tasks: 4 single-step, 1 linear-4 and 1 diamond (a; b, c after a; d after b and c): %d steps", len(benchSoakMix), stepsPerRound),
	}
	sc, err := srv.scenario(ctx, env, "soak", o.poolSize)
	if err != nil {
		return res, err
	}
	defer sc.cleanup()
	client := runner.NewClient(sc.pool, runner.ClientConfig{})
	reqOf := map[string]runner.SubmitRequest{}
	for _, doc := range soakTemplates(sc.namespace) {
		tpl, err := client.RegisterTemplate(ctx, []byte(doc))
		if err != nil {
			return res, err
		}
		reqOf[tpl.Name] = runner.SubmitRequest{Namespace: tpl.Namespace, Name: tpl.Name, Version: tpl.Version}
	}

	var (
		offered, completed, tasksDone, retries, failed atomic.Int64
		submitted                                      atomic.Int64 // tasks
		submitEnd                                      atomic.Bool
		drained                                        atomic.Pointer[doneSignal]
	)
	drained.Store(newDoneSignal())
	checkDrained := func() {
		if submitEnd.Load() && tasksDone.Load() >= submitted.Load() {
			drained.Load().close()
		}
	}
	onEvent := func(ev runner.Event) {
		switch {
		case ev.Stale:
		case ev.State == app.StateComplete:
			completed.Add(1)
		case ev.State == app.StateWaitingForRetry:
			retries.Add(1)
		case ev.State == app.StateError:
			failed.Add(1)
		}
		if ev.TaskState != "" {
			if ev.TaskState != "complete" {
				failed.Add(1)
			}
			tasksDone.Add(1)
			checkDrained()
		}
	}
	if o.memProfile != "" {
		runtime.MemProfileRate = benchSoakMemProfileRate
	}
	handler := &soakHandler{}
	funcs := &callout.Funcs{}
	funcs.Register(benchSoakCallable, handler.handle)
	r, stop, err := startListeningRunner(ctx, sc.pool, runnerConfigWith(env, o, sc, "soak", funcs, onEvent))
	if err != nil {
		return res, err
	}
	defer func() { _ = stop() }()

	// History first, then the statistics autovacuum would have gathered in
	// a live database: without them the claim plans cached while the tables
	// were empty (sequential scans) stay in use while the tables grow, the
	// runner falls behind and its backlog, not a leak, would be measured.
	// Autovacuum keeps the statistics current during the run.
	taskRate := o.soakRate * float64(len(benchSoakMix)) / float64(stepsPerRound)
	historyTasks := min(benchSoakHistoryTasks, max(20*len(benchSoakMix), int(taskRate*o.soak.Seconds())))
	history := make([]runner.SubmitRequest, historyTasks)
	for i := range history {
		history[i] = reqOf[benchSoakMix[i%len(benchSoakMix)].template]
	}
	submitted.Store(int64(len(history)))
	submitEnd.Store(true)
	if _, err := client.SubmitMany(ctx, history); err != nil {
		return res, fmt.Errorf("submitting the history: %w", err)
	}
	checkDrained()
	historyWait := time.NewTimer(2 * time.Minute)
	defer historyWait.Stop()
	select {
	case <-drained.Load().ch:
	case <-historyWait.C:
		return res, fmt.Errorf("%w: the %d history tasks did not complete within 2 minutes", errBenchTimeout, len(history))
	case <-ctx.Done():
		return res, ctx.Err()
	}
	if n := failed.Load(); n > 0 {
		return res, fmt.Errorf("%d steps or tasks of the history failed", n)
	}
	if _, err := sc.pool.Exec(ctx, "VACUUM ANALYZE tasker.steps, tasker.tasks, tasker.step_edges, tasker.step_transitions, tasker.task_transitions"); err != nil {
		return res, err
	}
	res.HistoryTasks = len(history)
	// Every history event has been delivered: start counting afresh.
	drained.Store(newDoneSignal())
	submitEnd.Store(false)
	for _, c := range []*atomic.Int64{&offered, &completed, &tasksDone, &retries, &submitted} {
		c.Store(0)
	}

	// Start the measurement from a clean slate.
	runtime.GC()
	debug.FreeOSMemory()
	mem := newMemReader()
	res.RSSSource = mem.source()
	res.BaselineRSSMB, _, _ = mem.read()

	dbSize := func() float64 {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var n int64
		if err := sc.pool.QueryRow(qctx, "SELECT pg_database_size(current_database())").Scan(&n); err != nil {
			return 0
		}
		return float64(n) / (1 << 20)
	}
	start := time.Now()
	take := func() soakSample {
		rss, live, objs := mem.read()
		s := soakSample{
			T: time.Since(start).Seconds(), RSSMB: rss, HeapLiveMB: live, HeapObjectsMB: objs,
			Goroutines: runtime.NumGoroutine(), InFlight: r.Stats().InFlight,
			StepsOffered: offered.Load(), StepsCompleted: completed.Load(),
		}
		s.DatabaseMB = dbSize()
		return s
	}

	// The sampler: one reading every `every`, plus heap profiles around the
	// warm-up's end when asked for.
	var (
		samples   []soakSample
		sampMu    sync.Mutex
		samplerWG sync.WaitGroup
		stopSamp  = make(chan struct{})
		profErr   error
	)
	samples = append(samples, take())
	samplerWG.Add(1)
	go func() {
		defer samplerWG.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		warmProfiled := o.memProfile == ""
		for {
			select {
			case <-stopSamp:
				return
			case <-t.C:
			}
			if !warmProfiled && time.Since(start) >= warmup {
				warmProfiled = true
				if err := writeHeapProfile(o.memProfile + ".warmup"); err != nil {
					profErr = err
				}
			}
			s := take()
			sampMu.Lock()
			samples = append(samples, s)
			sampMu.Unlock()
		}
	}()
	stopSampler := func() {
		select {
		case <-stopSamp:
		default:
			close(stopSamp)
			samplerWG.Wait()
		}
	}
	defer stopSampler()

	stopProfile, err := startProfile(profile)
	if err != nil {
		return res, err
	}
	cpu0 := takeCPUSnapshot(srv.postmaster)

	// The submitter: open loop, paced by the clock. Task i is due at
	// start + i/taskRate; every tick submits what is due in one transaction,
	// so a slow submission is caught up on the next tick, not dropped.
	end := start.Add(o.soak)
	tick := time.NewTicker(benchSoakTick)
	var (
		next   int64
		reqs   = make([]runner.SubmitRequest, 0, benchSoakSubmitMax)
		subErr error
	)
submit:
	for {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		due := min(int64(now.Sub(start).Seconds()*taskRate)+1, next+benchSoakSubmitMax)
		if due > next {
			reqs = reqs[:0]
			var steps int64
			for i := next; i < due; i++ {
				m := benchSoakMix[i%int64(len(benchSoakMix))]
				reqs = append(reqs, reqOf[m.template])
				steps += int64(m.steps)
			}
			// Count before submitting: the runner may finish them before
			// SubmitMany returns.
			submitted.Add(due - next)
			offered.Add(steps)
			if _, err := client.SubmitMany(ctx, reqs); err != nil {
				submitted.Add(next - due)
				offered.Add(-steps)
				subErr = fmt.Errorf("submitting: %w", err)
				break
			}
			next = due
		}
		select {
		case <-ctx.Done():
			subErr = ctx.Err()
			break submit
		case <-tick.C:
		}
	}
	tick.Stop()
	elapsed := time.Since(start)
	cpu1 := takeCPUSnapshot(srv.postmaster)
	stopProfile()
	res.CPU = cpuBetween(cpu0, cpu1)
	stopSampler()
	last := take()
	samples = append(samples, last)
	if o.memProfile != "" {
		if err := writeHeapProfile(o.memProfile); err != nil && profErr == nil {
			profErr = err
		}
		res.HeapProfiles = fmt.Sprintf("%s.warmup (end of warm-up) and %s (end); go tool pprof -base %s.warmup %s", o.memProfile, o.memProfile, o.memProfile, o.memProfile)
	}
	res.StepsCompleted = last.StepsCompleted
	if subErr != nil {
		return res, subErr
	}
	if profErr != nil {
		return res, fmt.Errorf("--memprofile: %w", profErr)
	}

	// Drain: every submitted task must finish, and none may fail.
	submitEnd.Store(true)
	checkDrained()
	drainStart := time.Now()
	wait := time.NewTimer(benchSoakDrainMax)
	defer wait.Stop()
	select {
	case <-drained.Load().ch:
	case <-wait.C:
		return res, fmt.Errorf("%w: %d of %d tasks complete %s after the last submission", errBenchTimeout, tasksDone.Load(), submitted.Load(), benchSoakDrainMax)
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.DrainSeconds = time.Since(drainStart).Seconds()
	if err := stop(); err != nil {
		return res, err
	}

	res.PlannedSteps = int64(o.soakRate * o.soak.Seconds())
	res.TasksSubmitted = submitted.Load()
	res.StepsOffered = offered.Load()
	res.StepsCompletedAfterDrain = completed.Load()
	res.TasksCompleted = tasksDone.Load()
	res.Retries = retries.Load()
	res.Failed = failed.Load()
	res.Samples = samples
	summarizeSoak(&res, warmup, elapsed)
	res.Note = fmt.Sprintf("whole bench process: the runner plus the paced submitter (its client) and the bench's counters, which hold no per-task state. "+
		"Completed tasks stay in PostgreSQL: the database grew from %.0f to %.0f MB while the runner's memory is judged on its own samples", res.DatabaseStartMB, res.DatabaseEndMB)
	if res.Failed > 0 {
		return res, fmt.Errorf("%d steps or tasks failed (a soak step may fail once, never for good)", res.Failed)
	}
	if res.StepsCompletedAfterDrain != res.StepsOffered {
		return res, fmt.Errorf("%d steps completed for %d offered", res.StepsCompletedAfterDrain, res.StepsOffered)
	}
	return res, nil
}

// summarizeSoak computes the figures from the samples.
func summarizeSoak(res *soakResult, warmup, elapsed time.Duration) {
	ss := res.Samples
	if len(ss) == 0 {
		return
	}
	first, last := ss[0], ss[len(ss)-1]
	// The warm-up's reading is the first one at or after its end.
	w := len(ss) - 1
	for i, s := range ss {
		if s.T >= warmup.Seconds() {
			w = i
			break
		}
	}
	post := ss[w:]
	warm := ss[w]
	res.SlopeSamples = len(post)
	res.RSSWarmupMB, res.RSSEndMB = warm.RSSMB, last.RSSMB
	res.HeapLiveWarmupMB, res.HeapLiveEndMB = warm.HeapLiveMB, last.HeapLiveMB
	res.GoroutinesStart, res.GoroutinesWarmup, res.GoroutinesEnd = first.Goroutines, warm.Goroutines, last.Goroutines
	res.DatabaseStartMB, res.DatabaseEndMB = first.DatabaseMB, last.DatabaseMB
	for _, s := range ss {
		res.RSSMaxMB = max(res.RSSMaxMB, s.RSSMB)
		res.HeapLiveMaxMB = max(res.HeapLiveMaxMB, s.HeapLiveMB)
		res.GoroutinesMax = max(res.GoroutinesMax, s.Goroutines)
		res.MaxInFlight = max(res.MaxInFlight, s.InFlight)
		res.MaxOutstandingSteps = max(res.MaxOutstandingSteps, s.StepsOffered-s.StepsCompleted)
	}
	if warm.RSSMB > 0 {
		res.RSSGrowthPct = 100 * (last.RSSMB - warm.RSSMB) / warm.RSSMB
	}
	res.RSSSlopeMBPerMin = 60 * slope(post, func(s soakSample) float64 { return s.RSSMB })
	res.HeapLiveSlopeMBPerMin = 60 * slope(post, func(s soakSample) float64 { return s.HeapLiveMB })
	res.HeapObjSlopeMBPerMin = 60 * slope(post, func(s soakSample) float64 { return s.HeapObjectsMB })
	if elapsed > 0 {
		res.AchievedStepsPerSec = float64(res.StepsCompleted) / elapsed.Seconds()
	}
	if res.StepsOffered > 0 {
		res.CompletedPct = 100 * float64(res.StepsCompleted) / float64(res.StepsOffered)
	}
	res.Sustained = res.CompletedPct >= targetSoakCompletedPct &&
		float64(res.StepsOffered) >= float64(res.PlannedSteps)*targetSoakCompletedPct/100
	res.NoGrowth = res.HeapLiveSlopeMBPerMin < targetSoakHeapSlopeMBPerMin && res.RSSGrowthPct <= targetSoakRSSGrowthPct
}

// slope is the least-squares slope of f over the samples, per second; 0
// for fewer than two distinct times.
func slope(ss []soakSample, f func(soakSample) float64) float64 {
	n := float64(len(ss))
	if n < 2 {
		return 0
	}
	var mt, my float64
	for _, s := range ss {
		mt += s.T
		my += f(s)
	}
	mt, my = mt/n, my/n
	var num, den float64
	for _, s := range ss {
		num += (s.T - mt) * (f(s) - my)
		den += (s.T - mt) * (s.T - mt)
	}
	if den == 0 || math.IsNaN(num) {
		return 0
	}
	return num / den
}

func writeHeapProfile(path string) error {
	runtime.GC() // the profile's in-use figures are as of the last GC
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func soakFigures(s *soakResult) []figure {
	d := time.Duration(s.DurationSeconds * float64(time.Second)).Round(time.Second)
	how := fmt.Sprintf("%s soak, %.0f steps/s offered (%s; 1 first attempt in %d fails and is retried), one runner, max_concurrent_steps %d; sampled every %gs, the first %.0fs are warm-up",
		d, s.OfferedStepsPerSec, s.Mix, s.RetryEvery, s.Concurrency, s.SampleEverySeconds, s.WarmupSeconds)
	return []figure{
		{Name: "soak live heap slope", Value: s.HeapLiveSlopeMBPerMin, Unit: "MB/min",
			Target: fmt.Sprintf("< %g", float64(targetSoakHeapSlopeMBPerMin)), Met: below(s.HeapLiveSlopeMBPerMin, targetSoakHeapSlopeMBPerMin),
			How: fmt.Sprintf("least-squares slope of the Go heap marked live by the last GC (runtime/metrics /gc/heap/live) over the %d samples after the warm-up (%.1f -> %.1f MB, max %.1f); %s",
				s.SlopeSamples, s.HeapLiveWarmupMB, s.HeapLiveEndMB, s.HeapLiveMaxMB, how)},
		{Name: "soak RSS slope", Value: s.RSSSlopeMBPerMin, Unit: "MB/min",
			How: fmt.Sprintf("least-squares slope of the RSS over the same samples (%s); heap objects incl. unswept garbage %.2f MB/min", s.RSSSource, s.HeapObjSlopeMBPerMin)},
		{Name: "soak RSS after warm-up", Value: s.RSSWarmupMB, Unit: "MB",
			How: fmt.Sprintf("the first sample at or after %.0fs; %.1f MB before the load started", s.WarmupSeconds, s.BaselineRSSMB)},
		{Name: "soak RSS at end", Value: s.RSSEndMB, Unit: "MB",
			Target: fmt.Sprintf("<= +%d%%", targetSoakRSSGrowthPct), Met: ptr(s.RSSGrowthPct <= targetSoakRSSGrowthPct),
			How: fmt.Sprintf("the last sample, when the submitter stopped: %+.1f%% against the RSS after warm-up; includes the submitter and the bench's counters", s.RSSGrowthPct)},
		{Name: "soak peak RSS", Value: s.RSSMaxMB, Unit: "MB",
			Target: fmt.Sprintf("< %d", targetRSSMB), Met: below(s.RSSMaxMB, targetRSSMB),
			How: "highest sampled RSS over the whole soak, warm-up included"},
		{Name: "soak goroutines at end", Value: float64(s.GoroutinesEnd), Unit: "goroutines",
			How: fmt.Sprintf("runtime.NumGoroutine: %d before the load, %d after warm-up, max %d; the runner reuses its step workers (at most max_concurrent_steps) and ends one only after 10s idle, so the count keeps the history burst's workers", s.GoroutinesStart, s.GoroutinesWarmup, s.GoroutinesMax)},
		{Name: "soak steps completed", Value: float64(s.StepsCompleted), Unit: "steps",
			Target: fmt.Sprintf(">= %d%% of offered", targetSoakCompletedPct), Met: ptr(s.Sustained),
			How: fmt.Sprintf("steps written complete by the end of the run: %.1f%% of the %d offered (%d tasks; %d planned at the offered rate), %.0f steps/s achieved; %d retries, %d failed; at most %d steps outstanding and %d in flight at a sample; the rest finished %.1fs later",
				s.CompletedPct, s.StepsOffered, s.TasksSubmitted, s.PlannedSteps, s.AchievedStepsPerSec, s.Retries, s.Failed, s.MaxOutstandingSteps, s.MaxInFlight, s.DrainSeconds)},
	}
}

func ptr[T any](v T) *T { return &v }

func printSoakDetail(w io.Writer, s *soakResult) {
	printCPU(w, "soak", s.CPU)
	verdict := "no growth"
	if !s.NoGrowth {
		verdict = "GROWTH"
	}
	fmt.Fprintf(w, "  soak detail: %s (live heap slope %.3f MB/min < %g, RSS %.1f -> %.1f MB, %+.1f%% <= %d%%); RSS slope %.2f MB/min, max %.1f MB; goroutines %d -> %d -> %d; %d samples (%d after warm-up); database %.0f -> %.0f MB (completed tasks are kept)",
		verdict, s.HeapLiveSlopeMBPerMin, float64(targetSoakHeapSlopeMBPerMin), s.RSSWarmupMB, s.RSSEndMB, s.RSSGrowthPct, targetSoakRSSGrowthPct,
		s.RSSSlopeMBPerMin, s.RSSMaxMB, s.GoroutinesStart, s.GoroutinesWarmup, s.GoroutinesEnd, len(s.Samples), s.SlopeSamples, s.DatabaseStartMB, s.DatabaseEndMB)
	if s.HeapProfiles != "" {
		fmt.Fprintf(w, "; heap profiles: %s", s.HeapProfiles)
	}
	fmt.Fprintln(w)
}
