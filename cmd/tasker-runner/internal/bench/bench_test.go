package bench

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// runBenchJSON runs `bench --json args...` against the test server and
// decodes stdout, which must be exactly one results object.
func runBenchJSON(t *testing.T, args ...string) (benchResults, clitest.Result) {
	t.Helper()
	r := clitest.RunWithin(t, 4*time.Minute, map[string]string{"DATABASE_URL": pgtest.URL(t)}, append([]string{"bench"}, args...)...)
	if r.Code != 0 {
		t.Fatalf("bench failed:\n%s", r)
	}
	var res benchResults
	dec := json.NewDecoder(strings.NewReader(r.Stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("stdout is not the results JSON: %v\n%s", err, r)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value:\n%s", r)
	}
	return res, r
}

// TestBenchJSON runs the bench with tiny sizes against the test server and
// checks that stdout is one JSON object with sane figures. It checks shape,
// not speed: timed assertions belong to `make bench`, not to unit tests.
func TestBenchJSON(t *testing.T) {
	// The history, scale and DAG-size scenarios have tests of their own.
	res, r := runBenchJSON(t, "--json", "--steps", "300", "--duration", "1s", "--rate", "50", "--concurrency", "100", "--http-steps", "100",
		"--batch-rows", "600", "--batch-cursors", "3", "--batch-runs", "1", "--latency-history", "7", "--history=false", "--scale=false", "--dag-sizes=false")
	if !strings.Contains(r.Stderr, "FIGURE") {
		t.Errorf("with --json the table should go to stderr:\n%s", r)
	}

	b, l := res.Backlog, res.Latency
	if b == nil || l == nil || res.HTTP == nil || res.Batch == nil {
		t.Fatalf("missing scenarios: backlog %v, latency %v, http %v, batch %v", b != nil, l != nil, res.HTTP != nil, res.Batch != nil)
	}
	if b.Steps != 300 || !(b.StepsPerSec > 0) || !(b.InsertTasksPerSec > 0) || !(b.WorkDownSeconds > 0) {
		t.Errorf("backlog figures: %+v", *b)
	}
	if b.Failed != 0 || b.ClaimQueries < 1 || b.Flushes < 1 {
		t.Errorf("backlog counters: %+v", *b)
	}
	if !(b.Memory.PeakGoHeapMB > 0) {
		t.Errorf("no peak Go heap: %+v", b.Memory)
	}
	if _, err := os.Stat("/proc/self/status"); err == nil && !(b.Memory.PeakRSSMB > 0) {
		t.Errorf("no peak RSS: %+v", b.Memory)
	}
	if l.HistoryTasks != 7 {
		t.Errorf("history run before the latency measurement: %d tasks, want --latency-history's 7", l.HistoryTasks)
	}
	if l.TasksMeasured < 1 || l.TasksSubmitted < l.TasksMeasured {
		t.Errorf("latency task counts: submitted %d, measured %d", l.TasksSubmitted, l.TasksMeasured)
	}
	for name, p := range map[string]percentiles{"end to end": l.EndToEndMs, "enqueue to start": l.EnqueueToStartMs} {
		if !(p.P50 > 0) || p.P95 < p.P50 || p.P99 < p.P95 || p.Max < p.P99 || p.N < 1 {
			t.Errorf("%s percentiles are not sane: %+v", name, p)
		}
	}
	// Four steps per task: every measured task contributes four samples.
	if l.EnqueueToStartMs.N != 4*l.TasksMeasured {
		t.Errorf("enqueue-to-start samples: %d for %d tasks", l.EnqueueToStartMs.N, l.TasksMeasured)
	}
	if res.Machine.Postgres.Version == "" || res.Machine.Cores < 1 || res.Machine.Go == "" || res.Timestamp == "" {
		t.Errorf("machine info incomplete: %+v (timestamp %q)", res.Machine, res.Timestamp)
	}
	if res.Machine.Postgres.Source != "DATABASE_URL" {
		t.Errorf("postgres source %q, want DATABASE_URL", res.Machine.Postgres.Source)
	}
	if len(res.Figures) == 0 {
		t.Fatal("no figures")
	}
	for _, f := range res.Figures {
		if f.Name == "" || f.Unit == "" || f.How == "" || !(f.Value > 0) {
			t.Errorf("figure not sane: %+v", f)
		}
	}
}

// TestBenchHTTPJSON runs the HTTP callout scenarios (work-down unbatched and
// batched through a loopback handler service, and its raw rate) with tiny
// sizes and checks the figures are there and positive.
func TestBenchHTTPJSON(t *testing.T) {
	res, r := runBenchJSON(t, "--json", "--http-only", "--http-steps", "200", "--concurrency", "50", "--batch-max", "10")
	if res.Backlog != nil || res.Latency != nil {
		t.Errorf("--http-only ran other scenarios: backlog %v, latency %v", res.Backlog != nil, res.Latency != nil)
	}
	h := res.HTTP
	if h == nil || h.Unbatched == nil || h.Batched == nil || h.Raw == nil {
		t.Fatalf("missing HTTP scenarios: %+v", h)
	}
	for name, b := range map[string]*backlogResult{"unbatched": h.Unbatched, "batched": h.Batched} {
		if b.Steps != 200 || !(b.StepsPerSec > 0) || b.Failed != 0 || b.HandlerRequests < 1 || !(b.MeanBatchSize >= 1) {
			t.Errorf("%s figures: %+v", name, *b)
		}
	}
	if h.Unbatched.HandlerRequests != 200 || h.Unbatched.MeanBatchSize != 1 {
		t.Errorf("unbatched: %d requests for 200 steps", h.Unbatched.HandlerRequests)
	}
	if h.Batched.HandlerRequests >= 200 || h.Batched.MeanBatchSize > 10 {
		t.Errorf("batched: %d requests, %.1f steps each (batch_max 10)", h.Batched.HandlerRequests, h.Batched.MeanBatchSize)
	}
	if h.Raw.Requests != 200 || h.Raw.Concurrency != 50 || !(h.Raw.ReqPerSec > 0) || h.Raw.Failed != 0 || h.Raw.EnvelopeBytes < 100 {
		t.Errorf("raw figures: %+v", *h.Raw)
	}
	if !(h.UnbatchedToRaw > 0) || !(h.BatchedToRaw > 0) || h.BatchMax != 10 || h.Note == "" {
		t.Errorf("ratios: %+v", h)
	}
	names := map[string]bool{}
	for _, f := range res.Figures {
		names[f.Name] = true
		if f.Name == "" || f.Unit == "" || f.How == "" || !(f.Value > 0) {
			t.Errorf("figure not sane: %+v", f)
		}
	}
	for _, want := range []string{"HTTP callout work-down, unbatched", "HTTP callout work-down, batch_max 10", "raw handler service rate", "HTTP unbatched / raw", "HTTP batched / raw"} {
		if !names[want] {
			t.Errorf("no figure %q", want)
		}
	}
	if !strings.Contains(r.Stderr, "in this process") {
		t.Errorf("the table does not say the handler service is in-process:\n%s", r.Stderr)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--steps", "0"},
		{"bench", "--rate", "-1"},
		{"bench", "--duration", "1ms"},
		{"bench", "--latency-history", "-1"},
		{"bench", "--latency-history", "1000001"},
		{"bench", "extra"},
		{"bench", "--http-only", "--backlog-only"},
		{"bench", "--batch-only", "--latency-only"},
		{"bench", "--batch-rows", "0"},
		{"bench", "--batch-cursors", "0"},
		{"bench", "--batch-cursors", "10001"},
		{"bench", "--batch-runs", "0"},
		{"bench", "--batch-checkpoint", "0"},
		{"bench", "--http-steps", "0"},
		{"bench", "--batch-max", "1"},
		{"bench", "--cpuprofile-of", "nope"},
		{"bench", "--soak", "10ms"},
		{"bench", "--soak", "1m", "--http-only"},
		{"bench", "--soak", "1m", "--repeat", "2"},
		{"bench", "--soak", "1m", "--soak-rate", "0"},
		{"bench", "--memprofile", "heap.pprof"},
		{"bench", "--vs-river", "--latency-only"},
		{"bench", "--vs-river", "--soak", "1m"},
		{"bench", "--history-steps", "0"},
		{"bench", "--history-only", "--scale-only"},
		{"bench", "--dag-only", "--http-only"},
		{"bench", "--scale-processes", "1"},
		{"bench", "--scale-processes", "17"},
		{"bench", "--dag-chains", "1"},
		{"bench", "--dag-chains", "10,1001"},
		{"bench", "--dag-chains", "ten"},
		{"bench", "--dag-fanout", "999"},
		{"bench", "--dag-fanout", "-1"},
		{"bench", "--dag-only", "--dag-chains", "", "--dag-fanout", "0"},
	} {
		r := clitest.Run(t, nil, args...)
		if r.Code != 2 {
			t.Errorf("%v: want exit 2, got:\n%s", args, r)
		}
	}
}

// TestBenchBatchJSON runs the batch workflow scenario in quick mode through
// the CLI, with a large task of 4,000 rows in 8 cursors so that every
// worker is called twice (one checkpoint each), and checks that every run
// was verified and the figures are there. No timing assertions.
func TestBenchBatchJSON(t *testing.T) {
	res, r := runBenchJSON(t, "--json", "--quick", "--batch-only", "--batch-rows", "4000", "--batch-cursors", "8")
	if res.Backlog != nil || res.Latency != nil || res.HTTP != nil {
		t.Errorf("--batch-only ran other scenarios: backlog %v, latency %v, http %v", res.Backlog != nil, res.Latency != nil, res.HTTP != nil)
	}
	b := res.Batch
	if b == nil {
		t.Fatalf("no batch results:\n%s", r)
	}
	if s := res.Settings; s.BatchRows != 4000 || s.BatchCursors != 8 || s.BatchRuns != benchBatchRunsQuick || s.BatchCheckpointRows != benchBatchCheckpointDefault {
		t.Errorf("settings: %+v", s)
	}
	for _, c := range []struct {
		name                                  string
		s                                     etlSizeResult
		rows, cursors, workers, calls, yields int
	}{
		{"large", b.Large, 4000, 8, 8, 16, 8},
		{"small", b.Small, benchBatchSmallRows, benchBatchSmallCursors, 10, 10, 0},
	} {
		s := c.s
		if s.Rows != c.rows || s.Cursors != c.cursors || s.Workers != c.workers || s.WorkerCalls != c.calls || s.Yields != c.yields {
			t.Errorf("%s: %d rows / %d cursors, %d workers, %d calls, %d yields; want %d / %d, %d, %d, %d",
				c.name, s.Rows, s.Cursors, s.Workers, s.WorkerCalls, s.Yields, c.rows, c.cursors, c.workers, c.calls, c.yields)
		}
		if len(s.Runs) != benchBatchRunsQuick {
			t.Fatalf("%s: %d runs, want %d", c.name, len(s.Runs), benchBatchRunsQuick)
		}
		for i, x := range s.Runs {
			if !x.Verified || x.WorkerCalls != c.calls || x.Yields != c.yields || x.Checkpoints != c.yields ||
				!(x.EndToEndMs > 0) || !(x.RowsPerSec > 0) || !(x.FanOutMs > 0) || !(x.WorkersStartedMs > 0) {
				t.Errorf("%s run %d: %+v", c.name, i+1, x)
			}
		}
		for name, sp := range map[string]spread{"rows/s": s.RowsPerSec, "end to end": s.EndToEndMs, "fan-out": s.FanOutMs} {
			if !(sp.Min > 0) || sp.Median < sp.Min || sp.Max < sp.Median {
				t.Errorf("%s %s spread: %+v", c.name, name, sp)
			}
		}
		if !(s.TaskerRatio > 0) {
			t.Errorf("%s: no ratio to Tasker's figure", c.name)
		}
	}
	names := map[string]bool{}
	for _, f := range res.Figures {
		names[f.Name] = true
		if f.Name == "" || f.Unit == "" || f.How == "" || !(f.Value > 0) {
			t.Errorf("figure not sane: %+v", f)
		}
	}
	for _, want := range []string{
		"batch 4,000 rows / 8 cursors, rows/s", "batch 4,000 rows / 8 cursors, end to end", "batch 4,000 rows / 8 cursors, fan-out",
		"batch 1,000 rows / 10 cursors, rows/s", "batch 1,000 rows / 10 cursors, end to end", "batch 1,000 rows / 10 cursors, vs Tasker's published figure (other hardware)",
	} {
		if !names[want] {
			t.Errorf("no figure %q", want)
		}
	}
	if n := strings.Count(r.Stderr, "; totals verified\n"); n != 2*benchBatchRunsQuick {
		t.Errorf("%d runs reported verified totals, want %d:\n%s", n, 2*benchBatchRunsQuick, r.Stderr)
	}
}

// TestBenchBatchVerificationFails checks that the batch scenario's
// verification is not vacuous: the same task checked against totals off by
// one bit fails with errETLVerification.
func TestBenchBatchVerificationFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	env := &cli.Env{Stdout: io.Discard, Stderr: io.Discard, Lookup: envconfig.MapLookuper(nil), Logger: slog.New(slog.DiscardHandler)}
	o := benchOptions{databaseURL: pgtest.URL(t), progress: io.Discard, poolSize: 4, concurrency: 50,
		batchCheckpoint: benchBatchCheckpointDefault, scenarioTime: 20 * time.Second}
	srv, err := openBenchServer(ctx, env, o)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close(env)
	run, stop, err := startETL(ctx, env, srv, o)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	e, err := etlExpectFor(600, 3, benchBatchCheckpointDefault) // 200 rows per worker: one call each
	if err != nil {
		t.Fatal(err)
	}
	if x, err := run.once(ctx, e); err != nil || !x.Verified || x.WorkerCalls != 3 {
		t.Fatalf("the honest check failed: %+v, %v", x, err)
	}
	e.totals.Checksum ^= 1
	if _, err := run.once(ctx, e); !errors.Is(err, errETLVerification) {
		t.Errorf("checked against wrong totals: err = %v, want %v", err, errETLVerification)
	}
}

// TestBenchSoakJSON runs a tiny soak (3s at 120 steps/s) through the CLI and
// checks that it ran alone, that every offered step completed, that the
// retry path ran, and that the figures and the raw samples are there and
// consistent. No timing or growth assertions: those belong to `make bench`.
func TestBenchSoakJSON(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "heap.pprof")
	res, r := runBenchJSON(t, "--json", "--soak", "3s", "--soak-rate", "120", "--concurrency", "50", "--memprofile", prof)
	if res.Backlog != nil || res.Latency != nil || res.HTTP != nil || res.Batch != nil {
		t.Errorf("--soak ran other scenarios: backlog %v, latency %v, http %v, batch %v", res.Backlog != nil, res.Latency != nil, res.HTTP != nil, res.Batch != nil)
	}
	s := res.Soak
	if s == nil {
		t.Fatalf("no soak results:\n%s", r)
	}
	if res.Settings.SoakSeconds != 3 || res.Settings.SoakRateStepsPerSec != 120 {
		t.Errorf("settings: %+v", res.Settings)
	}
	if s.DurationSeconds != 3 || s.OfferedStepsPerSec != 120 || s.Concurrency != 50 || s.RetryEvery != benchSoakRetryEvery ||
		!(s.WarmupSeconds > 0) || s.WarmupSeconds >= s.DurationSeconds || !(s.SampleEverySeconds > 0) || s.Mix == "" || s.HistoryTasks < 1 {
		t.Errorf("soak parameters: %+v", *s)
	}

	checkSoakWork(t, s)
	checkSoakSamples(t, s)
	checkSoakMemory(t, s, prof)
	names := map[string]bool{}
	for _, f := range res.Figures {
		names[f.Name] = true
		if f.Name == "" || f.Unit == "" || f.How == "" || math.IsNaN(f.Value) {
			t.Errorf("figure not sane: %+v", f)
		}
	}
	for _, want := range []string{"soak live heap slope", "soak RSS slope", "soak RSS after warm-up", "soak RSS at end", "soak peak RSS", "soak goroutines at end", "soak steps completed"} {
		if !names[want] {
			t.Errorf("no figure %q", want)
		}
	}
	if !strings.Contains(r.Stderr, "soak detail: ") || !strings.Contains(r.Stderr, "--soak 3s") {
		t.Errorf("the table has no soak detail or title:\n%s", r.Stderr)
	}
}

// checkSoakWork: everything offered completed, nothing failed, some steps
// retried.
func checkSoakWork(t *testing.T, s *soakResult) {
	t.Helper()
	if s.TasksSubmitted < 1 || s.StepsOffered < s.TasksSubmitted || s.PlannedSteps < 1 {
		t.Errorf("offered: %d tasks, %d steps, %d planned", s.TasksSubmitted, s.StepsOffered, s.PlannedSteps)
	}
	if s.StepsCompletedAfterDrain != s.StepsOffered || s.TasksCompleted != s.TasksSubmitted || s.StepsCompleted > s.StepsOffered || s.Failed != 0 {
		t.Errorf("completed %d (%d after the drain) of %d steps, %d of %d tasks, %d failed",
			s.StepsCompleted, s.StepsCompletedAfterDrain, s.StepsOffered, s.TasksCompleted, s.TasksSubmitted, s.Failed)
	}
	// Every step has one first attempt, and one first attempt in
	// benchSoakRetryEvery fails: the count is known to within one.
	if want := s.StepsOffered / benchSoakRetryEvery; s.Retries < max(1, want-1) || s.Retries > want+1 {
		t.Errorf("%d retries for %d steps, want about %d", s.Retries, s.StepsOffered, want)
	}
	if !(s.CompletedPct > 0) || s.CompletedPct > 100 || !(s.AchievedStepsPerSec > 0) {
		t.Errorf("rate: %.1f%% completed, %.1f steps/s", s.CompletedPct, s.AchievedStepsPerSec)
	}

}

// checkSoakSamples: present, in time order, and sane.
func checkSoakSamples(t *testing.T, s *soakResult) {
	t.Helper()
	if len(s.Samples) < 3 {
		t.Fatalf("%d samples", len(s.Samples))
	}
	for i, x := range s.Samples {
		if !(x.RSSMB > 0) || !(x.HeapLiveMB > 0) || !(x.HeapObjectsMB > 0) || x.Goroutines < 1 || x.InFlight < 0 || x.StepsCompleted < 0 || x.StepsOffered < 0 {
			t.Errorf("sample %d: %+v", i, x)
		}
		if !(x.DatabaseMB > 0) {
			t.Errorf("sample %d has no database size: %+v", i, x)
		}
		if i > 0 {
			p := s.Samples[i-1]
			if x.T < p.T || x.StepsOffered < p.StepsOffered || x.StepsCompleted < p.StepsCompleted {
				t.Errorf("sample %d goes back: %+v after %+v", i, x, p)
			}
		}
	}
}

// checkSoakMemory: the end figures are the last sample's, the memory
// figures and slopes are sane, and the heap profiles were written.
func checkSoakMemory(t *testing.T, s *soakResult, prof string) {
	t.Helper()
	last := s.Samples[len(s.Samples)-1]
	if last.StepsOffered != s.StepsOffered || last.StepsCompleted != s.StepsCompleted || last.RSSMB != s.RSSEndMB || last.Goroutines != s.GoroutinesEnd {
		t.Errorf("the end figures are not the last sample's: %+v vs %+v", last, *s)
	}
	if s.SlopeSamples < 2 || s.SlopeSamples > len(s.Samples) {
		t.Errorf("%d samples after the warm-up of %d", s.SlopeSamples, len(s.Samples))
	}
	if s.RSSMaxMB < s.RSSEndMB || s.RSSMaxMB < s.RSSWarmupMB || !(s.RSSWarmupMB > 0) || !(s.BaselineRSSMB > 0) || s.RSSSource == "" ||
		s.HeapLiveMaxMB < s.HeapLiveEndMB || !(s.HeapLiveWarmupMB > 0) || s.GoroutinesStart < 1 || s.GoroutinesMax < s.GoroutinesEnd {
		t.Errorf("memory figures: %+v", *s)
	}
	for name, v := range map[string]float64{"RSS": s.RSSSlopeMBPerMin, "live heap": s.HeapLiveSlopeMBPerMin, "heap objects": s.HeapObjSlopeMBPerMin} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("%s slope is %v", name, v)
		}
	}
	if s.NoGrowth != (s.HeapLiveSlopeMBPerMin < targetSoakHeapSlopeMBPerMin && s.RSSGrowthPct <= targetSoakRSSGrowthPct) {
		t.Errorf("no_growth %v does not follow from the figures", s.NoGrowth)
	}
	for _, p := range []string{prof + ".warmup", prof} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("heap profile %s: %v", p, err)
		}
	}

}

// TestSoakSummary checks the soak's arithmetic on made-up samples: the
// warm-up reading, the least-squares slopes and the verdicts.
func TestSoakSummary(t *testing.T) {
	res := soakResult{StepsOffered: 1000, StepsCompleted: 995, PlannedSteps: 1000}
	for i := range 11 { // one sample a minute; warm-up is the first minute
		x := float64(i)
		res.Samples = append(res.Samples, soakSample{T: 60 * x, RSSMB: 40 + x, HeapLiveMB: 4 + 0.25*x, HeapObjectsMB: 5, Goroutines: 20 + i})
	}
	summarizeSoak(&res, time.Minute, 10*time.Minute)
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(res.RSSSlopeMBPerMin, 1) || !near(res.HeapLiveSlopeMBPerMin, 0.25) || !near(res.HeapObjSlopeMBPerMin, 0) {
		t.Errorf("slopes: RSS %v, live heap %v, heap objects %v", res.RSSSlopeMBPerMin, res.HeapLiveSlopeMBPerMin, res.HeapObjSlopeMBPerMin)
	}
	if res.RSSWarmupMB != 41 || res.RSSEndMB != 50 || res.RSSMaxMB != 50 || res.SlopeSamples != 10 || res.GoroutinesStart != 20 || res.GoroutinesWarmup != 21 || res.GoroutinesEnd != 30 {
		t.Errorf("readings: %+v", res)
	}
	if !near(res.RSSGrowthPct, 100*9.0/41) || res.NoGrowth {
		t.Errorf("RSS grew %.1f%%: no_growth %v", res.RSSGrowthPct, res.NoGrowth)
	}
	if !res.Sustained || !near(res.CompletedPct, 99.5) || !near(res.AchievedStepsPerSec, 995.0/600) {
		t.Errorf("rate: sustained %v, %.2f%%, %.3f steps/s", res.Sustained, res.CompletedPct, res.AchievedStepsPerSec)
	}
	flat := soakResult{Samples: []soakSample{{T: 0, RSSMB: 30, HeapLiveMB: 3}, {T: 60, RSSMB: 31, HeapLiveMB: 3.1}, {T: 120, RSSMB: 31, HeapLiveMB: 3}}}
	summarizeSoak(&flat, 30*time.Second, 2*time.Minute)
	if !flat.NoGrowth || flat.SlopeSamples != 2 || !near(flat.HeapLiveSlopeMBPerMin, -0.1) {
		t.Errorf("flat run judged %+v", flat)
	}
}

// figureNames returns the figures by name, and checks each has a name, a
// unit and a how text.
func figureNames(t *testing.T, res benchResults) map[string]figure {
	t.Helper()
	names := map[string]figure{}
	for _, f := range res.Figures {
		names[f.Name] = f
		if f.Name == "" || f.Unit == "" || f.How == "" || math.IsNaN(f.Value) || f.Value < 0 {
			t.Errorf("figure not sane: %+v", f)
		}
	}
	return names
}

// wantFigures checks that each figure is there with a positive value, and
// with the given target ("" for none).
func wantFigures(t *testing.T, names map[string]figure, want map[string]string) {
	t.Helper()
	for name, target := range want {
		f, ok := names[name]
		switch {
		case !ok:
			t.Errorf("no figure %q", name)
		case !(f.Value > 0):
			t.Errorf("figure %q: value %v", name, f.Value)
		case f.Target != target:
			t.Errorf("figure %q: target %q, want %q", name, f.Target, target)
		case (target != "") != (f.Met != nil):
			t.Errorf("figure %q: target %q but met %v", name, f.Target, f.Met)
		}
	}
}

// near reports whether a and b agree to within a millionth (ratios
// recomputed from the figures they divide).
func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(math.Abs(a), math.Abs(b)) }

// TestBenchVsRiverJSON runs the backlog with --vs-river in a tiny size:
// riverbench is built with go build and run before and after the backlog
// in fresh databases on the same server, and the ratio is reported with
// both raw figures. It needs the go command, and skips without it.
func TestBenchVsRiverJSON(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("--vs-river builds cmd/riverbench with the go command, which is not on PATH")
	}
	res, r := runBenchJSON(t, "--json", "--backlog-only", "--vs-river", "--steps", "300", "--concurrency", "50")
	rv, b := res.River, res.Backlog
	if rv == nil || b == nil {
		t.Fatalf("no River or backlog results:\n%s", r)
	}
	if !res.Settings.VsRiver || res.History != nil || res.Scale != nil || res.DAG != nil || res.Latency != nil {
		t.Errorf("--backlog-only --vs-river ran other scenarios, or does not say it compared: %+v", res.Settings)
	}
	for name, run := range map[string]*riverRun{"before": rv.Before, "after": rv.After} {
		if run == nil || run.Jobs != 300 || !(run.JobsPerSec > 0) || !(run.Seconds > 0) {
			t.Errorf("River run %s: %+v", name, run)
		}
	}
	if rv.Before == nil || rv.After == nil {
		t.FailNow()
	}
	if !near(rv.MeanJobsPerSec, (rv.Before.JobsPerSec+rv.After.JobsPerSec)/2) || !near(rv.Ratio, b.StepsPerSec/rv.MeanJobsPerSec) || rv.BacklogStepsPerSec != b.StepsPerSec {
		t.Errorf("mean %v and ratio %v do not follow from the runs %v, %v and the backlog's %v", rv.MeanJobsPerSec, rv.Ratio, rv.Before.JobsPerSec, rv.After.JobsPerSec, b.StepsPerSec)
	}
	if !strings.HasPrefix(rv.River, "v") || rv.MaxWorkers < 1 || !(rv.BuildSeconds > 0) || !strings.HasSuffix(rv.Source, filepath.Join("cmd", "riverbench")) {
		t.Errorf("River's provenance: %+v", rv)
	}
	wantFigures(t, figureNames(t, res), map[string]string{
		"River work-down, before the backlog": "", "River work-down, after the backlog": "", "River work-down, mean": "",
		"backlog / River": ">= 1.0x River (goal 1.3x)",
	})
	// The order of the work: River, the backlog, River.
	before, backlog, after := strings.Index(r.Stderr, "River work-down before"), strings.Index(r.Stderr, "bench: backlog work-down 1/1"), strings.Index(r.Stderr, "River work-down after")
	if before < 0 || backlog < before || after < backlog {
		t.Errorf("River should run right before and right after the backlog:\n%s", r.Stderr)
	}
	if !regexp.MustCompile(`backlog / River +[0-9.]+ ratio +>= 1\.0x River \(goal 1\.3x\)`).MatchString(r.Stderr) {
		t.Errorf("the table has no backlog / River line with its target:\n%s", r.Stderr)
	}
}

// TestBenchVsRiverNoSource checks the error when the riverbench source is
// not where --river-dir says.
func TestBenchVsRiverNoSource(t *testing.T) {
	dir := t.TempDir()
	r := clitest.Run(t, map[string]string{"DATABASE_URL": pgtest.URL(t)}, "bench", "--backlog-only", "--vs-river", "--river-dir", dir, "--steps", "10")
	if r.Code != 1 || !strings.Contains(r.Stderr, "no riverbench source in "+dir) || !strings.Contains(r.Stderr, "--river-dir") {
		t.Errorf("want exit 1 naming the directory and --river-dir, got:\n%s", r)
	}
}

// TestBenchVsRiverNoGo checks the error when the go command, which builds
// riverbench, is not on PATH.
func TestBenchVsRiverNoGo(t *testing.T) {
	url := pgtest.URL(t) // before PATH goes: the test server may need it to start
	t.Setenv("PATH", t.TempDir())
	r := clitest.Run(t, map[string]string{"DATABASE_URL": url}, "bench", "--backlog-only", "--vs-river", "--steps", "10")
	if r.Code != 1 || !strings.Contains(r.Stderr, "needs the go command, which is not on PATH") {
		t.Errorf("want exit 1 saying the go command is missing, got:\n%s", r)
	}
}

// TestFindModuleRoot finds the repository from this package's directory,
// as --vs-river does, and fails clearly outside it.
func TestFindModuleRoot(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := findModuleRoot(wd, benchModule)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "riverbench", "go.mod")); err != nil {
		t.Errorf("found %s, which has no cmd/riverbench: %v", root, err)
	}
	// cmd/riverbench's own go.mod names another module: not a match.
	if got, err := findModuleRoot(filepath.Join(root, "cmd", "riverbench"), benchModule); err != nil || got != root {
		t.Errorf("from cmd/riverbench: %q, %v; want %q", got, err, root)
	}
	if _, err := findModuleRoot(t.TempDir(), benchModule); err == nil || !strings.Contains(err.Error(), benchModule) {
		t.Errorf("outside the module: %v", err)
	}
}

// TestBenchHistoryJSON runs the history scenario in a tiny size: a
// template database with 400 finished steps, then the backlog and latency
// scenarios in copies of it, as ratios to the same run's empty-database
// figures.
func TestBenchHistoryJSON(t *testing.T) {
	res, r := runBenchJSON(t, "--json", "--history-only", "--history-steps", "400", "--steps", "200", "--duration", "1s", "--rate", "50",
		"--latency-history", "5", "--concurrency", "50")
	h := res.History
	if h == nil || res.Backlog == nil || res.Latency == nil {
		t.Fatalf("--history-only: history %v, backlog %v, latency %v:\n%s", h != nil, res.Backlog != nil, res.Latency != nil, r)
	}
	if res.HTTP != nil || res.Batch != nil || res.Scale != nil || res.DAG != nil || res.Settings.HistorySteps != 400 {
		t.Errorf("--history-only ran other scenarios or lost its size: %+v", res.Settings)
	}
	if h.Skipped != "" || h.FinishedSteps != 400 || h.SubmitBatch != benchHistoryChunk || !(h.SeedSeconds > 0) || !(h.SeedSubmitSeconds > 0) ||
		h.SeedWorkDownSeconds < h.SeedSubmitSeconds || h.SeedSeconds < h.SeedWorkDownSeconds || !(h.DatabaseMB > 0) {
		t.Errorf("seeding: %+v", *h)
	}
	if hb := h.Backlog; hb == nil || hb.Steps != 200 || !(hb.StepsPerSec > 0) || hb.Failed != 0 {
		t.Fatalf("backlog in the copy: %+v", hb)
	}
	if hl := h.Latency; hl == nil || hl.TasksMeasured < 1 || hl.HistoryTasks != 5 || !(hl.EnqueueToStartMs.P99 > 0) {
		t.Fatalf("latency in the copy: %+v", hl)
	}
	if !near(h.BacklogRatio, h.Backlog.StepsPerSec/res.Backlog.StepsPerSec) ||
		!near(h.E2SP99Ratio, h.Latency.EnqueueToStartMs.P99/res.Latency.EnqueueToStartMs.P99) ||
		!near(h.E2SP50Ratio, h.Latency.EnqueueToStartMs.P50/res.Latency.EnqueueToStartMs.P50) {
		t.Errorf("ratios do not follow from the figures: %+v", *h)
	}
	wantFigures(t, figureNames(t, res), map[string]string{
		"history seeding": "", "backlog work-down, 400 finished steps": "", "backlog with history / empty": ">= 0.9x",
		"enqueue to handler start p50, 400 finished steps": "", "enqueue to handler start p99, 400 finished steps": "",
		"enqueue to start p99 with history / empty": "<= 2.0x",
	})
	if !strings.Contains(r.Stderr, "history detail: 400 finished steps seeded in") {
		t.Errorf("the table has no history detail:\n%s", r.Stderr)
	}
}

// TestBenchScaleJSON runs the scale scenario in a tiny size: one, then
// three runner processes (this test binary as bench-worker) each work a
// 400-step backlog down; every task completes exactly once, in some
// process, and the empty claims are counted.
func TestBenchScaleJSON(t *testing.T) {
	res, r := runBenchJSON(t, "--json", "--scale-only", "--steps", "400", "--concurrency", "50")
	s := res.Scale
	if s == nil {
		t.Fatalf("no scale results:\n%s", r)
	}
	if res.Backlog != nil || res.Latency != nil || res.History != nil || res.DAG != nil || res.Settings.ScaleProcesses != 3 {
		t.Errorf("--scale-only ran other scenarios or lost its size: %+v", res.Settings)
	}
	if s.Steps != 400 || s.Concurrency != 50 || s.PoolPerProcess != benchPoolDefault {
		t.Errorf("scale settings: %+v", *s)
	}
	for _, run := range []scaleRun{s.One, s.Many} {
		if len(run.Workers) != run.Processes || !(run.StepsPerSec > 0) || !(run.WorkDownSeconds > 0) || run.ClaimQueries < 1 || !(run.RunnerCPUMicrosPerStep > 0) {
			t.Errorf("%d processes: %+v", run.Processes, run)
		}
		if !run.EmptyClaimsKnown || run.EmptyClaims > run.ClaimQueries {
			t.Errorf("%d processes: the empty claims were not counted: %d of %d (known %v)", run.Processes, run.EmptyClaims, run.ClaimQueries, run.EmptyClaimsKnown)
		}
		var completed, empty, claims int64
		for _, w := range run.Workers {
			completed += w.Completed
			empty += w.EmptyClaims
			claims += w.ClaimQueries
			if w.Failed != 0 || w.Claimed < w.Completed || w.LastDoneUnixNano == 0 && w.Completed > 0 {
				t.Errorf("%d processes: worker %+v", run.Processes, w)
			}
		}
		if completed != 400 || empty != run.EmptyClaims || claims != run.ClaimQueries {
			t.Errorf("%d processes: %d tasks completed, %d empty claims, %d claims; the run says %d, %d", run.Processes, completed, empty, claims, run.EmptyClaims, run.ClaimQueries)
		}
	}
	if s.One.Processes != 1 || s.Many.Processes != 3 || !near(s.Ratio, s.Many.StepsPerSec/s.One.StepsPerSec) {
		t.Errorf("processes %d and %d, ratio %v", s.One.Processes, s.Many.Processes, s.Ratio)
	}
	names := figureNames(t, res)
	wantFigures(t, names, map[string]string{"scale: 1 runner process": "", "scale: 3 runner processes, total": "", "scale: 3 processes / 1": ">= 1.0x"})
	if f, ok := names["scale: empty claims, 3 processes"]; !ok || f.Value != float64(s.Many.EmptyClaims) {
		t.Errorf("empty claims figure: %+v (want %d)", f, s.Many.EmptyClaims)
	}
}

// TestBenchWorkersStopped starts three bench-workers (this test binary)
// and checks that stop ends them all, as after an error or a Ctrl-C in the
// middle of a run: gracefully, and once stop returns none is left. A
// worker that cannot connect fails the start, naming it.
func TestBenchWorkersStopped(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	env := &cli.Env{Stdout: io.Discard, Stderr: io.Discard, Lookup: envconfig.MapLookuper(nil), Logger: slog.New(slog.DiscardHandler)}
	o := benchOptions{databaseURL: pgtest.URL(t), progress: io.Discard, poolSize: 2, concurrency: 10}
	srv, err := openBenchServer(ctx, env, o)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close(env)
	sc, err := srv.scenario(ctx, env, "workers", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.cleanup()
	url, err := srv.databaseURL(sc.database)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	g, err := startBenchWorkers(ctx, exe, url, o, sc.namespace, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.start(); err != nil {
		g.stop()
		t.Fatal(err)
	}
	// The run is cut short: nothing will ever complete.
	cut, cutNow := context.WithCancel(ctx)
	cutNow()
	if err := g.waitCompleted(cut, 1, time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("waiting with a cancelled context: %v", err)
	}
	g.stop()
	for _, p := range g.procs {
		select {
		case <-p.done:
		default:
			t.Fatalf("runner process %d still running after stop", p.i)
		}
		if st := p.cmd.ProcessState; st == nil || !st.Exited() || st.ExitCode() != 0 || p.result.Load() == nil {
			t.Errorf("runner process %d did not stop gracefully with its figures: %v, %v", p.i, st, p.result.Load())
		}
	}

	_, err = startBenchWorkers(ctx, exe, "postgres://nobody@127.0.0.1:1/none?connect_timeout=5", o, "ns", 2)
	if err == nil || !strings.Contains(err.Error(), "before it was ready") {
		t.Errorf("workers that cannot connect: %v", err)
	}
}

// TestBenchDAGJSON runs the DAG-size scenario in tiny sizes through the
// management API: chains of 3 and 12 steps and an 8-wide fan-out/fan-in,
// each submitted over HTTP and run by the HTTP no-op handler service, every
// step called once with every earlier step's result.
func TestBenchDAGJSON(t *testing.T) {
	res, r := runBenchJSON(t, "--json", "--dag-only", "--dag-chains", "3,12", "--dag-fanout", "8")
	d := res.DAG
	if d == nil {
		t.Fatalf("no DAG results:\n%s", r)
	}
	if res.Backlog != nil || res.Latency != nil || res.History != nil || res.Scale != nil ||
		!slices.Equal(res.Settings.DAGChains, []int{3, 12}) || res.Settings.DAGFanout != 8 {
		t.Errorf("--dag-only ran other scenarios or lost its sizes: %+v", res.Settings)
	}
	want := []struct {
		shape string
		steps int
	}{{"chain", 3}, {"chain", 12}, {"fan-out/fan-in", 10}}
	if len(d.Shapes) != len(want) {
		t.Fatalf("shapes: %+v", d.Shapes)
	}
	for i, s := range d.Shapes {
		if s.Shape != want[i].shape || s.Steps != want[i].steps {
			t.Errorf("shape %d: %s of %d steps, want %s of %d", i, s.Shape, s.Steps, want[i].shape, want[i].steps)
		}
		if !(s.SubmitMs > 0) || !(s.RunMs > 0) || !near(s.PerStepMs, s.RunMs/float64(s.Steps)) || s.EndToEndMs < s.RunMs || !(s.APIRunMs > 0) {
			t.Errorf("%s of %d: times %+v", s.Shape, s.Steps, s)
		}
		if s.HandlerCalls != s.Steps || s.MostDependencyResults != s.Steps-1 {
			t.Errorf("%s of %d: %d handler calls, at most %d earlier results in one; want %d and %d", s.Shape, s.Steps, s.HandlerCalls, s.MostDependencyResults, s.Steps, s.Steps-1)
		}
	}
	if d.ChainRatio != 0 {
		t.Errorf("a 1,000 / 100 ratio without those chains: %v", d.ChainRatio)
	}
	wantFigures(t, figureNames(t, res), map[string]string{
		"DAG chain of 3 steps: submit": "", "DAG chain of 3 steps: per step": "",
		"DAG chain of 12 steps: submit": "", "DAG chain of 12 steps: per step": "",
		"DAG fan-out/fan-in, 8 wide: submit": "", "DAG fan-out/fan-in, 8 wide: per step": "",
	})
	if !strings.Contains(r.Stderr, "DAG sizes detail") || !strings.Contains(r.Stderr, "management API") {
		t.Errorf("the table does not say how the DAG sizes ran:\n%s", r.Stderr)
	}
}

// TestBenchHelpNewFlags checks that bench --help documents the flags of
// the River comparison and the history, scale and DAG-size scenarios.
func TestBenchHelpNewFlags(t *testing.T) {
	r := clitest.Run(t, nil, "bench", "--help")
	for _, f := range []string{"-vs-river", "-river-dir", "-history", "-history-steps", "-history-only", "-scale", "-scale-processes", "-scale-only",
		"-dag-sizes", "-dag-chains", "-dag-fanout", "-dag-only"} {
		if !regexp.MustCompile(`(?m)^  ` + f + `\b`).MatchString(r.Stdout) {
			t.Errorf("bench --help does not document %s:\n%s", f, r.Stdout)
		}
	}
}
