package callout_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	handlerv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/handler/v1"
)

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func endpointStatus(t *testing.T, reg *callout.Registry, pattern string) callout.EndpointStatus {
	t.Helper()
	for _, s := range reg.Endpoints() {
		if s.Pattern == pattern {
			return s
		}
	}
	t.Fatalf("no endpoint %q", pattern)
	return callout.EndpointStatus{}
}

// TestBreakerClassificationTable sends each kind of answer through the
// registry (a real HTTP server, a real Connect server with the contracts'
// handler service, a closed port) and checks which ones the circuit
// breaker counts: the endpoint's own failures (unreachable, 408, 5xx,
// UNAVAILABLE, INTERNAL, UNKNOWN, DEADLINE_EXCEEDED) trip it; a handler's
// verdict (other 4xx, a success:false result, the permanent Connect codes,
// ABORTED) and throttling (429, RESOURCE_EXHAUSTED: the AIMD limit's job,
// as the README's callout section says) do not.
//
// Each case has its own endpoint with a breaker that trips at the second
// consecutive fault: one call must leave a fault counted and the breaker
// closed, a second must open it; a non-fault must count nothing.
func TestBreakerClassificationTable(t *testing.T) {
	t.Parallel()
	httpURL, connectURL := classificationServers(t)
	cases := classificationCases(httpURL, connectURL, "http://"+closedPort(t))

	reg := callout.NewRegistry(callout.RegistryConfig{})
	t.Cleanup(reg.Close)
	eps := make([]callout.Endpoint, len(cases))
	for i, c := range cases {
		eps[i] = callout.Endpoint{
			Namespace: "case" + strconv.Itoa(i), Pattern: c.callable, URL: c.url, Protocol: c.protocol,
			Breaker: callout.BreakerSettings{ConsecutiveFailures: 2, OpenTimeout: time.Hour},
		}
	}
	if err := reg.Set(eps); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		inv, ok := reg.Resolve(eps[i].Namespace, c.callable)
		if !ok {
			t.Fatalf("%s: not resolved", c.name)
		}
		env := httpTestEnvelope("0190d5a1-0000-7000-8000-00000000000"+strconv.Itoa(i%10), c.callable)
		status := func() callout.EndpointStatus {
			for _, s := range reg.Endpoints() {
				if s.Namespace == eps[i].Namespace {
					return s
				}
			}
			t.Fatalf("no endpoint for case %d", i)
			return callout.EndpointStatus{}
		}
		checkClassification(t, c, func() contracts.StepResult { return inv.Invoke(t.Context(), env) }, status)
	}
}

// classCase is one answer of TestBreakerClassificationTable and how the
// breaker must count it.
type classCase struct {
	name, protocol, url, callable string
	fault, throttled              bool
	// retryable is the step's verdict; success for the two good answers.
	success, retryable bool
}

// classificationServers starts the HTTP handler (answering as its path
// says: ok, a verdict, garbage or a status code) and the Connect handler
// (answering as its callable says: ok, a verdict or an error code).
func classificationServers(t *testing.T) (httpURL, connectURL string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch what := strings.TrimPrefix(r.URL.Path, "/"); what {
		case "ok":
			_, _ = w.Write([]byte(`{"success":true}`))
		case "verdict":
			_, _ = w.Write([]byte(`{"success":false,"error":{"message":"card declined","retryable":false}}`))
		case "retryable-verdict":
			_, _ = w.Write([]byte(`{"success":false,"error":{"message":"try later","retryable":true}}`))
		case "garbage":
			_, _ = w.Write([]byte(`<html>not a result</html>`))
		default:
			code, err := strconv.Atoi(what)
			if err != nil {
				http.Error(w, "bad test path", http.StatusTeapot)
				return
			}
			w.Header().Set("Retry-After", "1")
			http.Error(w, "status "+what, code)
		}
	}))
	t.Cleanup(srv.Close)
	connectURL = startConnectServer(t, rpcService{
		execute: func(_ context.Context, _ http.Header, req *handlerv1.ExecuteRequest) (*handlerv1.ExecuteResponse, error) {
			switch name := req.GetStepDefinition().GetHandler().GetCallable(); name {
			case "ok":
				return &handlerv1.ExecuteResponse{Success: true}, nil
			case "verdict":
				return &handlerv1.ExecuteResponse{Success: false, Status: contracts.StatusFailed}, nil
			default:
				var c connect.Code
				if err := c.UnmarshalText([]byte(name)); err != nil {
					return nil, connect.NewError(connect.CodeUnimplemented, err)
				}
				return nil, connect.NewError(c, errors.New("handler says "+name))
			}
		},
	})
	return srv.URL, connectURL
}

// classificationCases are the answers of TestBreakerClassificationTable,
// over HTTP and Connect, dead being an address nothing listens on.
func classificationCases(httpURL, connectURL, dead string) []classCase {
	httpCase := func(callable string, fault, retryable bool) classCase {
		return classCase{name: "http " + callable, protocol: callout.ProtocolHTTP, url: httpURL + "/{callable}", callable: callable, fault: fault, retryable: retryable}
	}
	connectCase := func(code string, fault, retryable bool) classCase {
		return classCase{name: "connect " + code, protocol: callout.ProtocolConnect, url: connectURL, callable: code, fault: fault, retryable: retryable}
	}
	return []classCase{
		{name: "http ok", protocol: callout.ProtocolHTTP, url: httpURL + "/{callable}", callable: "ok", success: true},
		httpCase("verdict", false, false),
		httpCase("retryable-verdict", false, true),
		httpCase("garbage", false, false), // permanent invalid_handler_response
		httpCase("301", false, false),
		httpCase("400", false, false),
		httpCase("401", false, false),
		httpCase("403", false, false),
		httpCase("404", false, false),
		httpCase("409", false, false),
		httpCase("422", false, false),
		httpCase("408", true, true),
		httpCase("500", true, true),
		httpCase("502", true, true),
		httpCase("503", true, true),
		httpCase("504", true, true),
		{name: "http 429", protocol: callout.ProtocolHTTP, url: httpURL + "/{callable}", callable: "429", throttled: true, retryable: true},
		{name: "http connection refused", protocol: callout.ProtocolHTTP, url: dead, callable: "x", fault: true, retryable: true},

		{name: "connect ok", protocol: callout.ProtocolConnect, url: connectURL, callable: "ok", success: true},
		connectCase("verdict", false, true), // a failure without an error: retryable handler_error
		connectCase("invalid_argument", false, false),
		connectCase("not_found", false, false),
		connectCase("already_exists", false, false),
		connectCase("failed_precondition", false, false),
		connectCase("permission_denied", false, false),
		connectCase("unauthenticated", false, false),
		connectCase("out_of_range", false, false),
		connectCase("unimplemented", false, false),
		connectCase("data_loss", false, false),
		connectCase("aborted", false, true),
		connectCase("canceled", false, true),
		connectCase("unavailable", true, true),
		connectCase("internal", true, true),
		connectCase("unknown", true, true),
		connectCase("deadline_exceeded", true, true),
		{name: "connect resource_exhausted", protocol: callout.ProtocolConnect, url: connectURL, callable: "resource_exhausted", throttled: true, retryable: true},
		{name: "connect connection refused", protocol: callout.ProtocolConnect, url: dead, callable: "x", fault: true, retryable: true},
	}
}

// checkClassification calls the endpoint of case c (through call) twice,
// three times for a fault, and checks the step's outcome and the
// endpoint's counters after each call.
func checkClassification(t *testing.T, c classCase, call func() contracts.StepResult, status func() callout.EndpointStatus) {
	t.Helper()
	res := call()
	if res.Success != c.success {
		t.Errorf("%s: success = %v (%+v), want %v", c.name, res.Success, res.Error, c.success)
	} else if !c.success && (res.Error == nil || res.Error.Retryable != c.retryable) {
		t.Errorf("%s: error %+v, want retryable=%v", c.name, res.Error, c.retryable)
	}
	st := status()
	wantFaults, wantConsecutive := int64(0), uint32(0)
	if c.fault {
		wantFaults, wantConsecutive = 1, 1
	}
	wantThrottled := int64(0)
	if c.throttled {
		wantThrottled = 1
	}
	if st.BreakerState != "closed" || st.Calls != 1 || st.Faults != wantFaults || st.ConsecutiveFailures != wantConsecutive || st.Throttled != wantThrottled {
		t.Errorf("%s: after one call: state %s calls %d faults %d consecutive %d throttled %d; want closed 1 %d %d %d",
			c.name, st.BreakerState, st.Calls, st.Faults, st.ConsecutiveFailures, st.Throttled, wantFaults, wantConsecutive, wantThrottled)
		return
	}

	// A second identical answer: a fault opens the breaker, anything
	// else leaves it closed.
	call()
	st = status()
	if c.fault && (st.BreakerState != "open" || st.Faults != 2) {
		t.Errorf("%s: two faults in a row left the breaker %s with %d faults, want open with 2", c.name, st.BreakerState, st.Faults)
	}
	if !c.fault && (st.BreakerState != "closed" || st.Faults != 0 || st.ConsecutiveFailures != 0) {
		t.Errorf("%s: two non-faults left the breaker %s with %d faults, %d consecutive; want closed, 0, 0", c.name, st.BreakerState, st.Faults, st.ConsecutiveFailures)
	}
	if c.fault {
		// Open: the next call is refused without reaching the handler.
		res := call()
		st = status()
		if res.Error == nil || res.Error.ErrorType != contracts.ErrorTypeCircuitOpen || st.Calls != 2 || st.Rejected != 1 {
			t.Errorf("%s: call to the open breaker: %+v; calls %d rejected %d, want circuit_open, 2, 1", c.name, res.Error, st.Calls, st.Rejected)
		}
	}
}

// TestBreakerNonFaultResetsTheCount: faults must be consecutive to trip the
// breaker; a handler's verdict (400) in between is a working endpoint.
func TestBreakerNonFaultResetsTheCount(t *testing.T) {
	t.Parallel()
	var code atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "x", int(code.Load()))
	}))
	t.Cleanup(srv.Close)
	reg := callout.NewRegistry(callout.RegistryConfig{})
	t.Cleanup(reg.Close)
	if err := reg.Set([]callout.Endpoint{{Pattern: "p", URL: srv.URL, Breaker: callout.BreakerSettings{ConsecutiveFailures: 2, OpenTimeout: time.Hour}}}); err != nil {
		t.Fatal(err)
	}
	inv, _ := reg.Resolve("", "p")
	for _, c := range []int64{503, 400, 503, 422, 503} {
		code.Store(c)
		inv.Invoke(t.Context(), &contracts.StepEnvelope{})
	}
	if st := endpointStatus(t, reg, "p"); st.BreakerState != "closed" || st.Faults != 3 || st.ConsecutiveFailures != 1 {
		t.Fatalf("503 400 503 422 503: %+v, want closed with 3 faults, 1 consecutive", st)
	}
	code.Store(500)
	inv.Invoke(t.Context(), &contracts.StepEnvelope{})
	if st := endpointStatus(t, reg, "p"); st.BreakerState != "open" {
		t.Fatalf("a second consecutive fault: %+v, want open", st)
	}
}

// TestBreakerFailedProbeReopens: once the open timeout has passed the
// breaker lets one probe through (half-open); a probe that fails opens it
// again, for a whole new open timeout counted from the probe (the reopen
// delay is read with the registry's clock, which the test drives); a probe
// that succeeds closes it.
func TestBreakerFailedProbeReopens(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if !healthy.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"success":true}`))
	}))
	t.Cleanup(srv.Close)
	var clock atomic.Int64 // the registry's clock, in unix nanos
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock.Store(base.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	const openFor = 300 * time.Millisecond
	reg := callout.NewRegistry(callout.RegistryConfig{Now: now})
	t.Cleanup(reg.Close)
	if err := reg.Set([]callout.Endpoint{{Pattern: "flaky", URL: srv.URL, Breaker: callout.BreakerSettings{ConsecutiveFailures: 1, OpenTimeout: openFor}}}); err != nil {
		t.Fatal(err)
	}
	inv, _ := reg.Resolve("", "flaky")
	call := func() contracts.StepResult { return inv.Invoke(t.Context(), &contracts.StepEnvelope{}) }
	reopenDelay := func(r contracts.StepResult) time.Duration {
		t.Helper()
		if r.Error == nil || r.Error.ErrorType != contracts.ErrorTypeCircuitOpen {
			t.Fatalf("want circuit_open, got %+v", r.Error)
		}
		s, _ := backoffOf(r)
		return time.Duration(s * float64(time.Second))
	}
	waitHalfOpen := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for endpointStatus(t, reg, "flaky").BreakerState != "half-open" {
			if time.Now().After(deadline) {
				t.Fatal("the breaker never became half-open")
			}
			<-tick.C
		}
	}

	if r := call(); r.Error == nil || r.Error.StatusCode != 503 {
		t.Fatalf("first call: %+v", r.Error)
	}
	if st := endpointStatus(t, reg, "flaky"); st.BreakerState != "open" {
		t.Fatalf("after a fault: %+v, want open", st)
	}
	// The registry's clock has not moved: the whole open timeout is left.
	if d := reopenDelay(call()); d != openFor {
		t.Fatalf("reopen delay %s, want %s", d, openFor)
	}

	// The open timeout passes (gobreaker's own clock); our clock moves on 10s.
	waitHalfOpen()
	clock.Add(int64(10 * time.Second))
	if r := call(); r.Error == nil || r.Error.StatusCode != 503 {
		t.Fatalf("probe: %+v, want the handler's 503", r.Error)
	}
	st := endpointStatus(t, reg, "flaky")
	if st.BreakerState != "open" || st.Faults != 2 || st.Calls != 2 {
		t.Fatalf("after a failed probe: %+v, want open, 2 faults, 2 calls", st)
	}
	// Re-opened at the probe: a full open timeout from the new now, not
	// what was left of the first one (which would give the 100ms floor).
	if d := reopenDelay(call()); d != openFor {
		t.Fatalf("after the failed probe, reopen delay %s, want %s", d, openFor)
	}
	if calls.Load() != 2 {
		t.Fatalf("the re-opened breaker let a call through: %d handler calls", calls.Load())
	}

	// The next probe succeeds: closed.
	healthy.Store(true)
	waitHalfOpen()
	if r := call(); !r.Success {
		t.Fatalf("second probe: %+v", r.Error)
	}
	if st := endpointStatus(t, reg, "flaky"); st.BreakerState != "closed" || st.ConsecutiveFailures != 0 {
		t.Fatalf("after a good probe: %+v, want closed", st)
	}
}
