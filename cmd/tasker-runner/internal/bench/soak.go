package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tasker-runner/tasker-runner/contracts"
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
