package bench

import (
	"math"
	"slices"
	"testing"
	"time"
)

func msDurations(ms ...float64) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m * float64(time.Millisecond))
	}
	return out
}

// percentilesOf uses the nearest rank: the p-th percentile of n sorted
// values is the ceil(p*n/100)-th, whatever the input order.
func TestPercentilesOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []time.Duration
		want percentiles
	}{
		{"empty", nil, percentiles{}},
		{"one value", msDurations(7), percentiles{P50: 7, P95: 7, P99: 7, Max: 7, N: 1}},
		{"two values", msDurations(9, 1), percentiles{P50: 1, P95: 9, P99: 9, Max: 9, N: 2}},
		{"odd count, unsorted", msDurations(5, 3, 1, 4, 2), percentiles{P50: 3, P95: 5, P99: 5, Max: 5, N: 5}},
		{"even count, unsorted", msDurations(4, 2, 3, 1), percentiles{P50: 2, P95: 4, P99: 4, Max: 4, N: 4}},
		{"sub-millisecond", msDurations(0.25, 1.5), percentiles{P50: 0.25, P95: 1.5, P99: 1.5, Max: 1.5, N: 2}},
		{"equal values", msDurations(2, 2, 2), percentiles{P50: 2, P95: 2, P99: 2, Max: 2, N: 3}},
	} {
		in := slices.Clone(tc.in)
		if got := percentilesOf(tc.in); got != tc.want {
			t.Errorf("%s: percentilesOf(%v) = %+v, want %+v", tc.name, tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("%s: percentilesOf reordered its input", tc.name)
		}
	}

	// Boundaries: for n = 1..1000 values 1..n ms in reverse order, each
	// percentile is exactly its nearest rank (no off-by-one at p*n whole,
	// no float rounding pushing a rank up or down).
	for n := 1; n <= 1000; n++ {
		ds := make([]time.Duration, n)
		for i := range ds {
			ds[i] = time.Duration(n-i) * time.Millisecond
		}
		rank := func(p int) float64 { return float64((p*n + 99) / 100) } // ceil(p*n/100), value = rank
		got := percentilesOf(ds)
		want := percentiles{P50: rank(50), P95: rank(95), P99: rank(99), Max: float64(n), N: n}
		if got != want {
			t.Fatalf("n=%d: %+v, want %+v", n, got, want)
		}
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []float64
		want float64
	}{
		{"empty", nil, 0},
		{"one value", []float64{3.5}, 3.5},
		{"odd count, unsorted", []float64{9, 1, 5}, 5},
		{"even count, unsorted: mean of the middle two", []float64{10, 1, 4, 2}, 3},
		{"two values", []float64{1, 2}, 1.5},
		{"negative and duplicate", []float64{-1, -1, 7}, -1},
	} {
		in := slices.Clone(tc.in)
		if got := median(tc.in); got != tc.want {
			t.Errorf("%s: median(%v) = %v, want %v", tc.name, tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("%s: median reordered its input", tc.name)
		}
	}
}

func TestMedianBacklog(t *testing.T) {
	t.Parallel()
	run := func(id int, stepsPerSec, insert, rss, heap float64) backlogResult {
		return backlogResult{Steps: id, StepsPerSec: stepsPerSec, InsertTasksPerSec: insert,
			Memory: memory{PeakRSSMB: rss, PeakGoHeapMB: heap}}
	}

	// One run: returned unchanged.
	one := run(1, 100, 10, 50, 5)
	if got := medianBacklog([]backlogResult{one}); got != one {
		t.Errorf("one run: %+v, want it unchanged %+v", got, one)
	}

	// Odd count, unsorted: every figure, memory included, from the run
	// with the median throughput.
	runs := []backlogResult{run(1, 300, 30, 40, 4), run(2, 100, 50, 90, 3), run(3, 200, 10, 60, 8)}
	orig := slices.Clone(runs)
	got := medianBacklog(runs)
	want := runs[2]
	want.MedianOf = 3
	if got != want {
		t.Errorf("three runs: %+v, want run 3 whole %+v", got, want)
	}
	if !slices.Equal(runs, orig) {
		t.Error("medianBacklog reordered its input")
	}

	// Even count: the lower-middle run by throughput, whole (no mean of
	// two runs).
	runs = []backlogResult{run(1, 400, 40, 10, 1), run(2, 100, 10, 10, 1), run(3, 300, 30, 10, 1), run(4, 200, 20, 70, 9)}
	got = medianBacklog(runs)
	want = runs[3]
	want.MedianOf = 4
	if got != want {
		t.Errorf("four runs: %+v, want run 4 whole %+v", got, want)
	}
}

func TestCPUBetween(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	snap := func(at time.Duration, busy, self, server time.Duration) cpuSnapshot {
		return cpuSnapshot{at: t0.Add(at), busy: busy, self: self, server: server, hasProc: true}
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	for _, tc := range []struct {
		name string
		a, b cpuSnapshot
		want cpuUsage
	}{
		{"no time passed", snap(0, 0, 0, 0), snap(0, time.Second, time.Second, 0), cpuUsage{}},
		{"clock went backwards", snap(time.Second, 0, 0, 0), snap(0, time.Second, 0, 0), cpuUsage{}},
		{"no /proc before", cpuSnapshot{at: t0}, snap(time.Second, time.Second, 0, 0), cpuUsage{}},
		{"no /proc after", snap(0, 0, 0, 0), cpuSnapshot{at: t0.Add(time.Second)}, cpuUsage{}},
		{
			"server unknown",
			snap(0, 10*time.Second, time.Second, 0), snap(2*time.Second, 13*time.Second, 2*time.Second, 0),
			cpuUsage{MachineCores: 1.5, RunnerCores: 0.5, known: true},
		},
		{
			"server known: the rest is other processes",
			snap(0, 0, 0, time.Second), snap(4*time.Second, 6*time.Second, 2*time.Second, 3*time.Second),
			cpuUsage{MachineCores: 1.5, RunnerCores: 0.5, ServerCores: 0.5, OtherCores: 0.5, known: true, serverKnown: true},
		},
		{
			"others never negative",
			snap(0, 0, 0, time.Second), snap(time.Second, time.Second, time.Second, 2*time.Second),
			cpuUsage{MachineCores: 1, RunnerCores: 1, ServerCores: 1, OtherCores: 0, known: true, serverKnown: true},
		},
		{
			"server restarted (its counter went down): unknown",
			snap(0, 0, 0, 5*time.Second), snap(time.Second, time.Second, 0, time.Second),
			cpuUsage{MachineCores: 1, known: true},
		},
	} {
		got := cpuBetween(tc.a, tc.b)
		if got.known != tc.want.known || got.serverKnown != tc.want.serverKnown ||
			!near(got.MachineCores, tc.want.MachineCores) || !near(got.RunnerCores, tc.want.RunnerCores) ||
			!near(got.ServerCores, tc.want.ServerCores) || !near(got.OtherCores, tc.want.OtherCores) {
			t.Errorf("%s: cpuBetween = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
