package callout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
)

// named answers with its own name so a test can see which endpoint served.
func named(t *testing.T, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"success": true, "result": map[string]string{"served_by": name, "path": r.URL.Path}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func servedBy(t *testing.T, inv callout.Invoker, callable string) string {
	t.Helper()
	res := inv.Invoke(t.Context(), &contracts.StepEnvelope{StepDefinition: contracts.StepDefinition{Handler: contracts.HandlerDefinition{Callable: callable}}})
	if !res.Success {
		t.Fatalf("%s: %+v", callable, res.Error)
	}
	var out struct {
		ServedBy string `json:"served_by"`
		Path     string
	}
	_ = json.Unmarshal(res.Result, &out)
	return out.ServedBy + out.Path
}

func TestRegistryMatchingOrder(t *testing.T) {
	t.Parallel()
	var funcs callout.Funcs
	funcs.Register("local.fn", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		return contracts.StepResult{Success: true, Result: json.RawMessage(`{"served_by":"go"}`)}, nil
	})
	reg := callout.NewRegistry(callout.RegistryConfig{Funcs: &funcs})
	t.Cleanup(reg.Close)
	exactShop, exactAny, glob, globLong, nsDefault := named(t, "exact-shop"), named(t, "exact-any"), named(t, "glob"), named(t, "glob-long"), named(t, "ns-default")
	if err := reg.Set([]callout.Endpoint{
		{Namespace: "shop", Pattern: "payments.refund", URL: exactShop.URL},
		{Pattern: "payments.refund", URL: exactAny.URL},
		{Pattern: "payments.*", URL: glob.URL + "/{callable}"},
		{Pattern: "payments.cards.*", URL: globLong.URL},
		{Namespace: "shop", Pattern: "*", URL: nsDefault.URL},
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ ns, callable, want string }{
		{"shop", "payments.refund", "exact-shop/"},
		{"ops", "payments.refund", "exact-any/"},
		{"ops", "payments.charge", "glob/payments.charge"},
		{"ops", "payments.cards.verify", "glob-long/"},
		{"shop", "local.fn", "go"},
		{"shop", "inventory.reserve", "ns-default/"},
	} {
		inv, ok := reg.Resolve(tc.ns, tc.callable)
		if !ok {
			t.Fatalf("%s/%s: not resolved", tc.ns, tc.callable)
		}
		if got := servedBy(t, inv, tc.callable); got != tc.want {
			t.Errorf("%s/%s served by %q, want %q", tc.ns, tc.callable, got, tc.want)
		}
	}
	if _, ok := reg.Resolve("ops", "inventory.reserve"); ok {
		t.Error("a callable matching nothing resolved")
	}

	// A bad set changes nothing and names every problem.
	err := reg.Set([]callout.Endpoint{{Pattern: "x", URL: "ftp://nope"}, {Pattern: "y", Protocol: "smtp"}, {Pattern: "[", URL: glob.URL}})
	if err == nil || !strings.Contains(err.Error(), "endpoints[0]") || !strings.Contains(err.Error(), `"smtp"`) || !strings.Contains(err.Error(), "endpoints[2]") {
		t.Fatalf("bad set: %v", err)
	}
	if len(reg.Endpoints()) != 5 {
		t.Fatalf("a rejected Set changed the registry: %+v", reg.Endpoints())
	}
}

// TestBreakerOpensAndCloses: failures trip the breaker, which then refuses
// calls without making them; after its open timeout a good probe closes it.
// The open window is an hour in the first part, so that no pause of a
// loaded machine can end it before the checks; the recovery part uses a
// short one and has no upper time bound but the test deadline.
func TestBreakerOpensAndCloses(t *testing.T) {
	t.Parallel()
	type service struct {
		healthy atomic.Bool
		calls   atomic.Int64
		call    func() contracts.StepResult
		status  func() callout.EndpointStatus
	}
	start := func(openTimeout time.Duration) *service {
		svc := &service{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			svc.calls.Add(1)
			if !svc.healthy.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte(`{"success":true}`))
		}))
		t.Cleanup(srv.Close)
		reg := callout.NewRegistry(callout.RegistryConfig{})
		t.Cleanup(reg.Close)
		if err := reg.Set([]callout.Endpoint{{Pattern: "flaky", URL: srv.URL, Breaker: callout.BreakerSettings{ConsecutiveFailures: 3, OpenTimeout: openTimeout}}}); err != nil {
			t.Fatal(err)
		}
		inv, _ := reg.Resolve("ns", "flaky")
		svc.call = func() contracts.StepResult { return inv.Invoke(t.Context(), &contracts.StepEnvelope{}) }
		svc.status = func() callout.EndpointStatus { return reg.Endpoints()[0] }
		for range 3 {
			if r := svc.call(); r.Error == nil || r.Error.StatusCode != 503 {
				t.Fatalf("while failing: %+v", r.Error)
			}
		}
		return svc
	}

	held := start(time.Hour)
	r := held.call()
	if r.Error == nil || r.Error.ErrorType != contracts.ErrorTypeCircuitOpen || *r.OrchestrationMetadata.BackoffRequestSeconds < 60 {
		t.Fatalf("after 3 failures: %+v, want circuit_open with a reopen delay of about the open timeout (an hour)", r.Error)
	}
	held.healthy.Store(true) // recovery does not end the open window early
	if r := held.call(); r.Error == nil || r.Error.ErrorType != contracts.ErrorTypeCircuitOpen {
		t.Fatalf("a call during the open window: %+v, want circuit_open", r.Error)
	}
	if held.calls.Load() != 3 {
		t.Fatalf("the open breaker let a call through: %d calls", held.calls.Load())
	}
	if st := held.status(); st.BreakerState != "open" || st.Faults != 3 || st.Rejected != 2 {
		t.Fatalf("status while open: %+v", st)
	}

	short := start(50 * time.Millisecond)
	short.healthy.Store(true)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r := short.call(); r.Success {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("breaker never closed after recovery")
		}
		time.Sleep(20 * time.Millisecond) // waiting out the open timeout, not synchronising
	}
	if st := short.status(); st.BreakerState != "closed" {
		t.Fatalf("after recovery: %+v", st)
	}
}

// TestEndpointConcurrencyLimit: six callers share an endpoint limited to two
// calls at once. Every call is held in the handler until the test lets it
// go, one at a time, after seeing the limit full (two in the handler, two
// in flight by the endpoint's status) and no third: a limit that lets more
// through is seen as soon as the extra call reaches the handler, which it
// does while the others are held.
func TestEndpointConcurrencyLimit(t *testing.T) {
	t.Parallel()
	const limit, callers = 2, 6
	var inHandler, peak, finished, started atomic.Int64
	release := make(chan struct{})
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inHandler.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case <-release:
		case <-stop:
		}
		inHandler.Add(-1)
		_, _ = w.Write([]byte(`{"success":true}`))
	}))
	t.Cleanup(srv.Close)
	reg := callout.NewRegistry(callout.RegistryConfig{})
	t.Cleanup(reg.Close)
	if err := reg.Set([]callout.Endpoint{{Pattern: "slow", URL: srv.URL, MaxConcurrency: limit}}); err != nil {
		t.Fatal(err)
	}
	inv, _ := reg.Resolve("", "slow")
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	// On failure, calls still held are let go first (cleanups run last first).
	t.Cleanup(func() { close(stop) })
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Add(1)
			if r := inv.Invoke(context.Background(), &contracts.StepEnvelope{}); !r.Success {
				t.Errorf("call failed: %+v", r.Error)
			}
			finished.Add(1)
		}()
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for !cond() {
			if p := peak.Load(); p > limit {
				t.Fatalf("%d calls in the handler at once, the limit is %d", p, limit)
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (in handler %d, finished %d)", what, inHandler.Load(), finished.Load())
			}
			<-tick.C
		}
	}
	waitUntil("every caller to start", func() bool { return started.Load() == callers })
	for released := range callers {
		want := int64(min(limit, callers-released))
		waitUntil(fmt.Sprintf("%d calls in the handler", want), func() bool { return inHandler.Load() == want })
		if st := reg.Endpoints()[0]; st.InFlight != want || st.ConcurrencyLimit != limit {
			t.Fatalf("with %d calls held: status in flight %d, limit %d; want %d, %d", want, st.InFlight, st.ConcurrencyLimit, want, limit)
		}
		release <- struct{}{}
		waitUntil("the released call to finish", func() bool { return finished.Load() == int64(released+1) })
	}
	if p := peak.Load(); p != limit {
		t.Fatalf("peak concurrent calls = %d, want %d", p, limit)
	}
}

// An endpoint that answers 429 beyond three concurrent calls: the runner's
// limit for it drops to about what it can take, so most calls get through;
// once it stops throttling, the limit climbs back and is lifted.
//
// No timing statistic: the service counts a call as done before it
// answers, so it never sees more calls than the limiter lets through, and
// throttles only when the limiter probes above 3 (AIMD: a cut to 2, then
// 2 and 3 successes back up to 4, where a call is refused again). That
// refuses about one call in six however the calls are scheduled; an
// endpoint the limiter did not adapt to would refuse about 13 of 16.
func TestThrottledEndpointLowersItsRate(t *testing.T) {
	t.Parallel()
	var inFlight atomic.Int64
	var throttling atomic.Bool
	throttling.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if inFlight.Add(1) > 3 && throttling.Load() {
			inFlight.Add(-1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		time.Sleep(time.Millisecond) // a little work, so calls overlap
		inFlight.Add(-1)             // before the answer: the caller's slot is still taken
		_, _ = w.Write([]byte(`{"success":true}`))
	}))
	t.Cleanup(srv.Close)
	reg := callout.NewRegistry(callout.RegistryConfig{})
	t.Cleanup(reg.Close)
	if err := reg.Set([]callout.Endpoint{{Pattern: "busy", URL: srv.URL}}); err != nil {
		t.Fatal(err)
	}
	inv, _ := reg.Resolve("", "busy")
	run := func(calls int) (throttled int64) {
		var wg sync.WaitGroup
		var n atomic.Int64
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range calls / 16 {
					r := inv.Invoke(context.Background(), &contracts.StepEnvelope{})
					if !r.Success {
						if r.Error == nil || r.Error.StatusCode != http.StatusTooManyRequests {
							t.Errorf("unexpected result %+v", r.Error)
						}
						n.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		return n.Load()
	}
	throttled := run(800)
	st := reg.Endpoints()[0]
	if throttled > 800/2 || st.Throttled != throttled || st.ConcurrencyLimit < 1 || st.ConcurrencyLimit > 8 {
		t.Fatalf("16 callers against a capacity of 3: %d of 800 calls throttled; status limit %d, throttled %d",
			throttled, st.ConcurrencyLimit, st.Throttled)
	}
	t.Logf("%d of 800 calls throttled; limit now %d", throttled, st.ConcurrencyLimit)

	throttling.Store(false)
	if n := run(800); n != 0 {
		t.Fatalf("%d calls throttled after the endpoint recovered", n)
	}
	if st := reg.Endpoints()[0]; st.ConcurrencyLimit != 0 {
		t.Fatalf("limit %d after recovery, want 0 (lifted)", st.ConcurrencyLimit)
	}
}
