package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/openapi/metrics"
	"github.com/tasker-runner/tasker-runner/runner"
)

type fakeRunner struct{ stats runner.Stats }

func (f fakeRunner) Stats() runner.Stats     { return f.stats }
func (f fakeRunner) ListenerConnected() bool { return true }

// scrape GETs the metrics over HTTP and parses the text format.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %s: %s", resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// metric finds the sample of family name with exactly the given labels
// ("k=v" pairs), or nil.
func metric(mfs map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	mf := mfs[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			found := false
			for _, want := range labels {
				if want == l.GetName()+"="+l.GetValue() {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	m := metric(mfs, name, labels...)
	switch {
	case m == nil:
		t.Errorf("%s%v: missing", name, labels)
		return math.NaN()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	t.Errorf("%s%v: not a counter or gauge", name, labels)
	return math.NaN()
}

func histogram(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) (count uint64, sum float64) {
	t.Helper()
	m := metric(mfs, name, labels...)
	if m == nil || m.Histogram == nil {
		t.Errorf("%s%v: missing histogram", name, labels)
		return 0, math.NaN()
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	var queueErr atomic.Pointer[error]
	m := metrics.New(metrics.Config{
		QueueStats: func(ctx context.Context) ([]runner.QueueStat, error) {
			if e := queueErr.Load(); e != nil {
				return nil, *e
			}
			if _, ok := ctx.Deadline(); !ok {
				return nil, errors.New("the queue query has no deadline")
			}
			return []runner.QueueStat{
				{Namespace: "busy", Ready: 5, OldestAge: 12500 * time.Millisecond},
				{Namespace: "idle"},
			}, nil
		},
		Logger: slog.New(slog.DiscardHandler),
	})

	observeRunner(m)
	finish := driveCallouts(t, m)

	mfs := scrape(t, m.Handler())
	checkStepMetrics(t, mfs)
	checkCalloutMetrics(t, mfs)
	finish()
	checkTextFormat(t, m)

	// A failing queue query leaves the queue gauges out; the scrape still
	// succeeds.
	failed := errors.New("database is down")
	queueErr.Store(&failed)
	mfs = scrape(t, m.Handler())
	if got := value(t, mfs, "tasker_queue_stats_up"); got != 0 {
		t.Errorf("tasker_queue_stats_up = %v after a failed query, want 0", got)
	}
	if mfs["tasker_queue_depth"] != nil || mfs["tasker_steps_claimed_total"] == nil {
		t.Error("after a failed queue query: want no queue depth but every other metric")
	}
}

// observeRunner reports to m what the engine would: claims (one with
// clock skew), outcomes of every kind, stale completions, reconnects,
// flushes, retention runs and the runner's live stats.
func observeRunner(m *metrics.Metrics) {
	o := m.RunnerObserver()
	o.StepClaimed("shop", "pay", 2*time.Second)
	o.StepClaimed("shop", "pay", -time.Millisecond) // clock skew counts as 0
	o.StepClaimed("shop", "ship", 500*time.Millisecond)
	o.StepFinished("shop", "pay", contracts.StepStateComplete, 250*time.Millisecond)
	o.StepFinished("shop", "pay", contracts.StepStateWaitingForRetry, 750*time.Millisecond)
	o.StepFinished("shop", "ship", contracts.StepStateError, time.Second)
	o.StepFinished("shop", "ship", contracts.StepStateEnqueued, 0)
	o.StaleCompletions(3)
	o.ListenerReconnect()
	o.ListenerReconnect()
	o.FlushDone(4, 2*time.Millisecond)
	o.FlushDone(60, 8*time.Millisecond)
	o.RetentionDone(map[contracts.TaskState]int{contracts.TaskStateComplete: 40, contracts.TaskStateCancelled: 2}, 3*time.Second)
	o.RetentionDone(map[contracts.TaskState]int{contracts.TaskStateComplete: 5}, 1500*time.Millisecond)
	m.SetRunner(fakeRunner{runner.Stats{InFlight: 7, Active: 3, Rescued: 2, ClaimQueries: 11}})
}

// driveCallouts calls handler endpoints through a real registry observed
// by m: shop/pay answers, flaky fails and then is refused by its open
// breaker, blocked stays in flight until finish is called.
func driveCallouts(t *testing.T, m *metrics.Metrics) (finish func()) {
	t.Helper()
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	handler := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/fail":
			w.WriteHeader(http.StatusInternalServerError)
		case "/block":
			select {
			case <-release:
			case <-r.Context().Done():
			}
			_, _ = io.WriteString(w, `{"success":true}`)
		default:
			_, _ = io.WriteString(w, `{"success":true}`)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(handler))
	t.Cleanup(srv.Close)
	reg := callout.NewRegistry(callout.RegistryConfig{Observer: m.CalloutObserver()})
	t.Cleanup(reg.Close)
	if err := reg.Set([]callout.Endpoint{
		{Namespace: "shop", Pattern: "pay", URL: srv.URL + "/ok"},
		{Pattern: "flaky", URL: srv.URL + "/fail", Breaker: callout.BreakerSettings{ConsecutiveFailures: 1, OpenTimeout: time.Minute}},
		{Pattern: "blocked", URL: srv.URL + "/block"},
		{Pattern: "go.*", Protocol: callout.ProtocolGo},
	}); err != nil {
		t.Fatal(err)
	}
	m.SetEndpoints(reg)
	call := func(callable string) contracts.StepResult {
		inv, ok := reg.Resolve("shop", callable)
		if !ok {
			t.Errorf("%s: not resolved", callable)
			return contracts.StepResult{}
		}
		return inv.Invoke(t.Context(), &contracts.StepEnvelope{
			Step:           contracts.StepInfo{StepUUID: "0190d5a1-7a2b-7c3d-8e4f-0123456789ab"},
			StepDefinition: contracts.StepDefinition{Handler: contracts.HandlerDefinition{Callable: callable}},
		})
	}
	call("pay")
	call("flaky")
	call("flaky") // refused: the breaker is open
	blocked := make(chan struct{})
	go func() { defer close(blocked); call("blocked") }()
	deadline := time.Now().Add(5 * time.Second)
	for inFlight := int64(0); inFlight == 0; {
		for _, e := range reg.Endpoints() {
			if e.Pattern == "blocked" {
				inFlight = e.InFlight
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the blocked call never started")
		}
		time.Sleep(time.Millisecond)
	}
	return func() {
		releaseOnce.Do(func() { close(release) })
		<-blocked
	}
}

// checkStepMetrics checks the step, completion, retention and queue
// metrics of TestMetricsExposition's scrape.
func checkStepMetrics(t *testing.T, mfs map[string]*dto.MetricFamily) {
	t.Helper()
	for _, tc := range []struct {
		name, handler string
		want          float64
	}{
		{"tasker_steps_claimed_total", "pay", 2},
		{"tasker_steps_claimed_total", "ship", 1},
		{"tasker_steps_completed_total", "pay", 1},
		{"tasker_steps_completed_total", "ship", 0},
		{"tasker_steps_retried_total", "pay", 1},
		{"tasker_steps_failed_total", "pay", 0},
		{"tasker_steps_failed_total", "ship", 1},
		{"tasker_steps_released_total", "ship", 1},
	} {
		if got := value(t, mfs, tc.name, "namespace=shop", "handler="+tc.handler); got != tc.want {
			t.Errorf("%s{handler=%s} = %v, want %v", tc.name, tc.handler, got, tc.want)
		}
	}
	if n, sum := histogram(t, mfs, "tasker_step_duration_seconds", "namespace=shop", "handler=pay"); n != 2 || !near(sum, 1) {
		t.Errorf("pay durations: %d summing to %v, want 2 summing to 1s", n, sum)
	}
	if n, sum := histogram(t, mfs, "tasker_step_duration_seconds", "namespace=shop", "handler=ship"); n != 1 || !near(sum, 1) {
		t.Errorf("ship durations: %d summing to %v, want 1 (the released step did not run) of 1s", n, sum)
	}
	if n, sum := histogram(t, mfs, "tasker_enqueue_to_start_seconds", "namespace=shop"); n != 3 || !near(sum, 2.5) {
		t.Errorf("enqueue to start: %d summing to %v, want 3 summing to 2.5s", n, sum)
	}
	for name, want := range map[string]float64{
		"tasker_stale_completions_total":    3,
		"tasker_listener_reconnects_total":  2,
		"tasker_steps_in_flight":            7,
		"tasker_steps_active":               3,
		"tasker_listener_connected":         1,
		"tasker_steps_rescued_total":        2,
		"tasker_claim_queries_total":        11,
		"tasker_queue_stats_up":             1,
		"tasker_retention_last_run_seconds": 1.5,
	} {
		if got := value(t, mfs, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for state, want := range map[string]float64{"complete": 45, "resolved_manually": 0, "blocked_by_failures": 0, "cancelled": 2} {
		if got := value(t, mfs, "tasker_retention_tasks_deleted_total", "state="+state); got != want {
			t.Errorf("tasker_retention_tasks_deleted_total{state=%s} = %v, want %v", state, got, want)
		}
	}
	if n, sum := histogram(t, mfs, "tasker_completion_flush_seconds"); n != 2 || !near(sum, 0.01) {
		t.Errorf("flushes: %d taking %vs, want 2 taking 0.01s", n, sum)
	}
	if n, sum := histogram(t, mfs, "tasker_completion_batch_size"); n != 2 || sum != 64 {
		t.Errorf("batch sizes: %d summing to %v, want 2 summing to 64", n, sum)
	}
	for _, tc := range []struct {
		ns     string
		depth  float64
		oldest float64
	}{{"busy", 5, 12.5}, {"idle", 0, 0}} {
		if got := value(t, mfs, "tasker_queue_depth", "namespace="+tc.ns); got != tc.depth {
			t.Errorf("queue depth of %s = %v, want %v", tc.ns, got, tc.depth)
		}
		if got := value(t, mfs, "tasker_oldest_ready_step_age_seconds", "namespace="+tc.ns); got != tc.oldest {
			t.Errorf("oldest ready step of %s = %vs, want %v", tc.ns, got, tc.oldest)
		}
	}
}

// checkCalloutMetrics checks the callout and endpoint metrics of
// TestMetricsExposition's scrape, and that the registry is its own.
func checkCalloutMetrics(t *testing.T, mfs map[string]*dto.MetricFamily) {
	t.Helper()
	// Callouts: a histogram per endpoint, protocol and outcome; the
	// refused call is not in it but in the rejected count.
	if n, sum := histogram(t, mfs, "tasker_callout_duration_seconds", "endpoint=shop/pay", "protocol=http", "outcome=ok"); n != 1 || sum <= 0 {
		t.Errorf("calls to shop/pay: %d taking %vs, want 1 taking > 0", n, sum)
	}
	if n, _ := histogram(t, mfs, "tasker_callout_duration_seconds", "endpoint=shop/pay", "protocol=http", "outcome=fault"); n != 0 {
		t.Errorf("faults of shop/pay: %d, want 0", n)
	}
	if n, _ := histogram(t, mfs, "tasker_callout_duration_seconds", "endpoint=flaky", "protocol=http", "outcome=fault"); n != 1 {
		t.Errorf("faults of flaky: %d, want 1", n)
	}
	for endpoint, want := range map[string][3]float64{ // state, in flight, rejected
		"shop/pay": {0, 0, 0},
		"flaky":    {2, 0, 1},
		"blocked":  {0, 1, 0},
	} {
		got := [3]float64{
			value(t, mfs, "tasker_breaker_state", "endpoint="+endpoint),
			value(t, mfs, "tasker_endpoint_in_flight", "endpoint="+endpoint),
			value(t, mfs, "tasker_callout_rejected_total", "endpoint="+endpoint),
		}
		if got != want {
			t.Errorf("%s: breaker state, in flight, rejected = %v, want %v", endpoint, got, want)
		}
	}
	if metric(mfs, "tasker_breaker_state", "endpoint=go.*") != nil {
		t.Error("an in-process endpoint has a breaker state")
	}
	// The registry is its own: the Go runtime and process collectors, but
	// nothing registered globally by others.
	if mfs["go_goroutines"] == nil || mfs["process_start_time_seconds"] == nil {
		t.Error("the Go runtime and process collectors are missing")
	}
}

// checkTextFormat compares two families with the client library's
// comparison, text format in.
func checkTextFormat(t *testing.T, m *metrics.Metrics) {
	t.Helper()
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(`
# HELP tasker_stale_completions_total Step outcomes refused by the lease fence (the lease was lost; the step is another runner's).
# TYPE tasker_stale_completions_total counter
tasker_stale_completions_total 3
# HELP tasker_completion_batch_size Step outcomes per completion write.
# TYPE tasker_completion_batch_size histogram
tasker_completion_batch_size_bucket{le="1"} 0
tasker_completion_batch_size_bucket{le="2"} 0
tasker_completion_batch_size_bucket{le="5"} 1
tasker_completion_batch_size_bucket{le="10"} 1
tasker_completion_batch_size_bucket{le="20"} 1
tasker_completion_batch_size_bucket{le="50"} 1
tasker_completion_batch_size_bucket{le="100"} 2
tasker_completion_batch_size_bucket{le="200"} 2
tasker_completion_batch_size_bucket{le="500"} 2
tasker_completion_batch_size_bucket{le="1000"} 2
tasker_completion_batch_size_bucket{le="+Inf"} 2
tasker_completion_batch_size_sum 64
tasker_completion_batch_size_count 2
`), "tasker_stale_completions_total", "tasker_completion_batch_size"); err != nil {
		t.Error(err)
	}
}

// Without sources, only the observed metrics (and the runtime's) appear.
func TestMetricsWithoutSources(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Config{})
	mfs := scrape(t, m.Handler())
	for _, name := range []string{"tasker_queue_depth", "tasker_queue_stats_up", "tasker_steps_in_flight", "tasker_breaker_state"} {
		if mfs[name] != nil {
			t.Errorf("%s reported without its source", name)
		}
	}
	if mfs["tasker_stale_completions_total"] == nil {
		t.Error("tasker_stale_completions_total missing")
	}
	m.SetRunner(nil)
	m.SetEndpoints(nil)
	scrape(t, m.Handler())
}

// The per-step calls cost no allocation once a (namespace, handler) pair
// has been seen, and are safe from many goroutines.
func TestRunnerObserverHotPath(t *testing.T) {
	// Not parallel: AllocsPerRun forbids it.
	m := metrics.New(metrics.Config{})
	o := m.RunnerObserver()
	co := m.CalloutObserver()
	o.StepClaimed("ns", "h", time.Millisecond)
	o.StepFinished("ns", "h", contracts.StepStateComplete, time.Millisecond)
	co.CallDone("ep", "http", time.Millisecond, callout.CallOK)
	if allocs := testing.AllocsPerRun(1000, func() {
		o.StepClaimed("ns", "h", time.Millisecond)
		o.StepFinished("ns", "h", contracts.StepStateComplete, time.Millisecond)
		co.CallDone("ep", "http", time.Millisecond, callout.CallOK)
	}); allocs != 0 {
		t.Errorf("%v allocations per step, want 0", allocs)
	}

	const goroutines, handlers, each = 8, 20, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				h := fmt.Sprintf("h%d", (g+i)%handlers)
				o.StepClaimed("par", h, 0)
				o.StepFinished("par", h, contracts.StepStateComplete, 0)
			}
		})
	}
	wg.Wait()
	mfs := scrape(t, m.Handler())
	var claimed, completed float64
	for i := range handlers {
		claimed += value(t, mfs, "tasker_steps_claimed_total", "namespace=par", fmt.Sprintf("handler=h%d", i))
		completed += value(t, mfs, "tasker_steps_completed_total", "namespace=par", fmt.Sprintf("handler=h%d", i))
	}
	if claimed != goroutines*each || completed != goroutines*each {
		t.Errorf("claimed %v, completed %v, want %d each", claimed, completed, goroutines*each)
	}
}
