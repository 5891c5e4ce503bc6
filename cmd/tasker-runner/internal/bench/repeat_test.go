package bench

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// TestMedianRun: the run with the median key, the lower middle one for an
// even count, ties in their order; the input is not reordered.
func TestMedianRun(t *testing.T) {
	type run struct {
		id  string
		key float64
	}
	for _, tc := range []struct {
		name string
		runs []run
		want string
	}{
		{"one", []run{{"a", 5}}, "a"},
		{"odd", []run{{"a", 3}, {"b", 1}, {"c", 2}}, "c"},
		{"even: the lower middle", []run{{"a", 4}, {"b", 1}, {"c", 3}, {"d", 2}}, "d"},
		{"two", []run{{"a", 9}, {"b", 1}}, "b"},
		{"ties keep their order", []run{{"a", 1}, {"b", 1}, {"c", 1}}, "b"},
		{"five", []run{{"a", 50}, {"b", 10}, {"c", 40}, {"d", 20}, {"e", 30}}, "e"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]run(nil), tc.runs...)
			got := medianRun(tc.runs, func(r run) float64 { return r.key })
			if got.id != tc.want {
				t.Errorf("median run %q, want %q", got.id, tc.want)
			}
			if !reflect.DeepEqual(tc.runs, before) {
				t.Errorf("runs reordered: %v, was %v", tc.runs, before)
			}
		})
	}
}

// The aggregates of --repeat report one whole run: every field equals that
// run's (only MedianOf is added), whichever figure would have had another
// run's median. Each synthetic run's secondary figures are ordered against
// its main figure, so a per-figure median would mix runs.
func TestRepeatReportsOneRun(t *testing.T) {
	backlog := func(stepsPerSec, insert, cpu, rss float64) backlogResult {
		return backlogResult{Steps: 1000, StepsPerSec: stepsPerSec, InsertTasksPerSec: insert, RunnerCPUMicrosPerStep: cpu,
			WorkDownSeconds: 1000 / stepsPerSec, Memory: memory{PeakRSSMB: rss, PeakGoHeapMB: rss / 2}}
	}
	pct := func(p50 float64) percentiles {
		return percentiles{P50: p50, P95: p50 * 2, P99: p50 * 3, Max: p50 * 4, N: int(p50 * 10)}
	}
	latency := func(e2e, e2s float64, tasks int) latencyResult {
		return latencyResult{EndToEndMs: pct(e2e), EnqueueToStartMs: pct(e2s), SubmitMs: pct(e2s / 2), TasksMeasured: tasks, AchievedStepsPerSec: float64(tasks)}
	}
	http := func(unbatched, batched, raw, rawCPU float64) httpResult {
		u, b := backlog(unbatched, 1, 300, 40), backlog(batched, 1, 200, 50)
		h := httpResult{Unbatched: &u, Batched: &b, Raw: &rawResult{ReqPerSec: raw, CPUMicrosPerRequest: rawCPU, Seconds: 1000 / raw}}
		h.ratios()
		return h
	}
	etl := func(large, small, cpu float64) etlResult {
		e := etlResult{
			Large: etlSizeResult{Rows: 100, Runs: []etlRun{{RowsPerSec: large, EndToEndMs: 100 / large}, {RowsPerSec: large + 1, EndToEndMs: 100 / (large + 1)}}, RunnerCPUMicrosPerRow: cpu},
			Small: etlSizeResult{Rows: 10, Runs: []etlRun{{RowsPerSec: small, EndToEndMs: 10 / small}}},
		}
		e.Large.summarize()
		e.Small.summarize()
		return e
	}

	for _, tc := range []struct {
		name string
		runs []any
		want int // index of the run that must be reported
		agg  func([]any) any
	}{
		{
			name: "backlog: median steps/s, its memory and insert rate too",
			runs: []any{backlog(900, 10, 100, 90), backlog(1100, 30, 300, 70), backlog(1000, 50, 200, 80)},
			want: 2,
			agg:  func(rs []any) any { return medianBacklog(conv[backlogResult](rs)) },
		},
		{
			name: "backlog, even count: the lower middle run, not a mean",
			runs: []any{backlog(1200, 1, 1, 1), backlog(900, 2, 2, 2), backlog(1000, 3, 3, 3), backlog(1100, 4, 4, 4)},
			want: 2,
			agg:  func(rs []any) any { return medianBacklog(conv[backlogResult](rs)) },
		},
		{
			name: "latency: median end to end p50, every percentile of it",
			runs: []any{latency(30, 3, 100), latency(10, 9, 300), latency(20, 1, 200)},
			want: 2,
			agg:  func(rs []any) any { return medianLatency(conv[latencyResult](rs)) },
		},
		{
			name: "HTTP: median unbatched steps/s, its batched, raw and ratios",
			runs: []any{http(500, 9000, 7000, 10), http(700, 1000, 9000, 30), http(600, 5000, 8000, 20)},
			want: 2,
			agg:  func(rs []any) any { return medianHTTP(conv[httpResult](rs)) },
		},
		{
			name: "batch: median large rows/s, its small task and CPU",
			runs: []any{etl(300, 10, 5), etl(100, 30, 1), etl(200, 20, 9)},
			want: 2,
			agg:  func(rs []any) any { return medianETL(conv[etlResult](rs)) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.agg(tc.runs)
			want := withMedianOf(tc.runs[tc.want], len(tc.runs))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("reported\n  %+v\nwant run %d whole\n  %+v", got, tc.want, want)
			}
		})
	}
}

func conv[T any](rs []any) []T {
	out := make([]T, len(rs))
	for i, r := range rs {
		out[i] = r.(T)
	}
	return out
}

func withMedianOf(r any, n int) any {
	switch r := r.(type) {
	case backlogResult:
		r.MedianOf = n
		return r
	case latencyResult:
		r.MedianOf = n
		return r
	case httpResult:
		r.MedianOf = n
		return r
	case etlResult:
		r.MedianOf = n
		return r
	}
	panic("unknown run type")
}

// The backlog's how says that VACUUM ANALYZE runs before the work-down (it
// does: runBacklogWith); the batch figures compare with Tasker's published
// figure without a target or an ok/MISSED flag, and say it is from other
// hardware.
func TestBenchReportHonesty(t *testing.T) {
	b := backlogResult{Steps: 1000, StepsPerSec: 1000, InsertTasksPerSec: 5000}
	e := etlResult{
		Large: etlSizeResult{Rows: 100_000, Cursors: 100, Workers: 100, Runs: []etlRun{{RowsPerSec: 1000, EndToEndMs: 100}}},
		Small: etlSizeResult{Rows: 1000, Cursors: 10, Workers: 10, Runs: []etlRun{{RowsPerSec: 100, EndToEndMs: 10}}},
	}
	e.Large.summarize()
	e.Small.summarize()
	r := &benchResults{Backlog: &b, Batch: &e}
	r.Figures = figures(r)

	byName := map[string]figure{}
	for _, f := range r.Figures {
		byName[f.Name] = f
	}
	if f := byName["backlog work-down"]; !strings.Contains(f.How, "VACUUM ANALYZE tasker.steps, tasker.tasks") || !strings.Contains(f.How, backlogVacuum) {
		t.Errorf("the backlog's how does not name the VACUUM ANALYZE run before the work-down: %q", f.How)
	}
	var tasker int
	for _, f := range r.Figures {
		if !strings.HasPrefix(f.Name, "batch ") {
			continue
		}
		if f.Met != nil || f.Target != "" {
			t.Errorf("batch figure %q has a target %q / met %v: Tasker's figure is from other hardware", f.Name, f.Target, f.Met)
		}
		if strings.Contains(f.Name, "vs Tasker") {
			tasker++
			if !strings.Contains(f.Name, "published figure (other hardware)") || !strings.Contains(f.How, "not on this machine") {
				t.Errorf("the Tasker ratio is not labelled as against its published figure on other hardware: %+v", f)
			}
		}
	}
	if tasker != 2 {
		t.Errorf("%d Tasker ratios, want 2 (one per size): %+v", tasker, r.Figures)
	}

	var out bytes.Buffer
	printBenchTable(&out, r)
	for line := range strings.Lines(out.String()) {
		if strings.HasPrefix(line, "batch ") && (strings.Contains(line, "MISSED") || strings.HasSuffix(strings.TrimSpace(line), " ok")) {
			t.Errorf("a batch line of the table carries an ok/MISSED flag: %q", line)
		}
	}
	// The backlog's target is its ratio to River in the same run, not an
	// absolute rate: its own line carries no flag.
	for line := range strings.Lines(out.String()) {
		if strings.HasPrefix(line, "backlog work-down ") && (strings.Contains(line, "MISSED") || strings.HasSuffix(strings.TrimSpace(line), " ok")) {
			t.Errorf("the backlog's line carries an absolute target: %q", line)
		}
	}
	if !strings.Contains(out.String(), "backlog work-down") {
		t.Errorf("the table lost the backlog:\n%s", out.String())
	}
}
