package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// TestBenchJSON runs the bench with tiny sizes against the test server and
// checks that stdout is one JSON object with sane figures. It checks shape,
// not speed: timed assertions belong to `make bench`, not to unit tests.
func TestBenchJSON(t *testing.T) {
	vars := map[string]string{"DATABASE_URL": pgtest.URL(t)}
	r := runCLI(t, vars, "bench", "--json", "--steps", "300", "--duration", "1s", "--rate", "50", "--concurrency", "100", "--http-steps", "100")
	if r.code != 0 {
		t.Fatalf("bench failed:\n%s", r)
	}
	var res benchResults
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("stdout is not the results JSON: %v\n%s", err, r)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value:\n%s", r)
	}
	if !strings.Contains(r.stderr, "FIGURE") {
		t.Errorf("with --json the table should go to stderr:\n%s", r)
	}

	b, l := res.Backlog, res.Latency
	if b == nil || l == nil || res.HTTP == nil {
		t.Fatalf("missing scenarios: backlog %v, latency %v, http %v", b != nil, l != nil, res.HTTP != nil)
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
	if l.HistoryTasks < 1 {
		t.Errorf("no history run before the latency measurement")
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
	vars := map[string]string{"DATABASE_URL": pgtest.URL(t)}
	r := runCLI(t, vars, "bench", "--json", "--http-only", "--http-steps", "200", "--concurrency", "50", "--batch-max", "10")
	if r.code != 0 {
		t.Fatalf("bench failed:\n%s", r)
	}
	var res benchResults
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("stdout is not the results JSON: %v\n%s", err, r)
	}
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
	if !strings.Contains(r.stderr, "in this process") {
		t.Errorf("the table does not say the handler service is in-process:\n%s", r.stderr)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--steps", "0"},
		{"bench", "--rate", "-1"},
		{"bench", "--duration", "1ms"},
		{"bench", "extra"},
		{"bench", "--http-only", "--backlog-only"},
		{"bench", "--http-steps", "0"},
		{"bench", "--batch-max", "1"},
		{"bench", "--cpuprofile-of", "nope"},
	} {
		r := runCLI(t, nil, args...)
		if r.code != 2 {
			t.Errorf("%v: want exit 2, got:\n%s", args, r)
		}
	}
}
