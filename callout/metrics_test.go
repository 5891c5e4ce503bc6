package callout_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
)

type call struct {
	endpoint, protocol, outcome string
	d                           time.Duration
}

type recordingCalls struct {
	mu    sync.Mutex
	calls []call
}

func (r *recordingCalls) CallDone(endpoint, protocol string, d time.Duration, outcome string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{endpoint, protocol, outcome, d})
}

func (r *recordingCalls) take() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

// Every call through an endpoint's breaker is reported with its endpoint,
// protocol, duration and outcome; refused calls and in-process functions
// are not.
func TestCallObserverSeesEveryCall(t *testing.T) {
	t.Parallel()
	ok := startHTTPHandler(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(10 * time.Millisecond)
		_, _ = io.WriteString(w, `{"success":true}`)
	})
	failing := startHTTPHandler(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	slow := startHTTPHandler(t, func(w http.ResponseWriter, r *http.Request) { waitForClient(r) })

	var funcs callout.Funcs
	funcs.Register("local.fn", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		return contracts.StepResult{Success: true}, nil
	})
	rec := &recordingCalls{}
	reg := callout.NewRegistry(callout.RegistryConfig{Funcs: &funcs, Observer: rec})
	t.Cleanup(reg.Close)
	if err := reg.Set([]callout.Endpoint{
		{Namespace: "shop", Pattern: "payments.*", URL: ok.URL},
		{Pattern: "flaky", URL: failing.URL, Breaker: callout.BreakerSettings{ConsecutiveFailures: 1, OpenTimeout: time.Minute}},
		{Pattern: "slow", URL: slow.URL},
		{Pattern: "go.*", Protocol: callout.ProtocolGo},
	}); err != nil {
		t.Fatal(err)
	}
	invoke := func(ctx context.Context, ns, callable string) contracts.StepResult {
		t.Helper()
		inv, found := reg.Resolve(ns, callable)
		if !found {
			t.Fatalf("%s/%s not resolved", ns, callable)
		}
		return inv.Invoke(ctx, httpTestEnvelope("0190d5a1-7a2b-7c3d-8e4f-0123456789ab", callable))
	}

	if res := invoke(t.Context(), "shop", "payments.refund"); !res.Success {
		t.Fatalf("payments.refund: %+v", res.Error)
	}
	invoke(t.Context(), "shop", "flaky") // trips the breaker
	if res := invoke(t.Context(), "shop", "flaky"); res.Error == nil || res.Error.ErrorType != contracts.ErrorTypeCircuitOpen {
		t.Fatalf("second flaky call: %+v, want refused by the open breaker", res)
	}
	invoke(t.Context(), "shop", "go.fn")
	invoke(t.Context(), "shop", "local.fn")
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(20*time.Millisecond, cancel)
	invoke(ctx, "shop", "slow")

	got := rec.take()
	want := []call{
		{endpoint: "shop/payments.*", protocol: "http", outcome: callout.CallOK},
		{endpoint: "flaky", protocol: "http", outcome: callout.CallFault},
		{endpoint: "slow", protocol: "http", outcome: callout.CallAbandoned},
	}
	if len(got) != len(want) {
		t.Fatalf("observed %+v, want %+v", got, want)
	}
	for i, c := range got {
		if c.endpoint != want[i].endpoint || c.protocol != want[i].protocol || c.outcome != want[i].outcome {
			t.Errorf("call %d: %+v, want %+v", i, c, want[i])
		}
	}
	if got[0].d < 10*time.Millisecond || got[2].d < 20*time.Millisecond {
		t.Errorf("durations %s and %s, want >= 10ms and >= 20ms", got[0].d, got[2].d)
	}

	names := map[string]string{}
	for _, e := range reg.Endpoints() {
		names[e.Name()] = e.BreakerState
	}
	if len(names) != 4 || names["flaky"] != "open" || names["shop/payments.*"] != "closed" || names["go.*"] != "closed" {
		t.Errorf("endpoints by name: %v", names)
	}
}

// A registry without an observer calls as before.
func TestNopCallObserver(t *testing.T) {
	t.Parallel()
	srv := named(t, "plain")
	for _, obs := range []callout.CallObserver{nil, callout.NopCallObserver{}} {
		reg := callout.NewRegistry(callout.RegistryConfig{Observer: obs})
		if err := reg.Set([]callout.Endpoint{{Pattern: "*", URL: srv.URL}}); err != nil {
			t.Fatal(err)
		}
		inv, _ := reg.Resolve("ns", "x")
		if got := servedBy(t, inv, "x"); got != "plain/" {
			t.Errorf("served by %q", got)
		}
		reg.Close()
	}
}
