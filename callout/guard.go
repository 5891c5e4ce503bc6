package callout

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// BreakerSettings configure an endpoint's circuit breaker. Zero fields take
// the defaults below.
type BreakerSettings struct {
	// ConsecutiveFailures trips the breaker. Default 5.
	ConsecutiveFailures uint32
	// OpenTimeout is how long the breaker stays open before letting a
	// probe call through (half-open). Default 30s.
	OpenTimeout time.Duration
	// Interval clears the failure counts while closed. Default 60s.
	Interval time.Duration
	// MaxRequests is the number of probe calls allowed while half-open.
	// Default 1.
	MaxRequests uint32
}

// Breaker defaults.
const (
	BreakerConsecutiveFailuresDefault = 5
	BreakerOpenTimeoutDefault         = 30 * time.Second
	BreakerIntervalDefault            = 60 * time.Second
	BreakerMaxRequestsDefault         = 1
)

func (b BreakerSettings) withDefaults() BreakerSettings {
	b.ConsecutiveFailures = cmp.Or(b.ConsecutiveFailures, BreakerConsecutiveFailuresDefault)
	b.OpenTimeout = cmp.Or(b.OpenTimeout, BreakerOpenTimeoutDefault)
	b.Interval = cmp.Or(b.Interval, BreakerIntervalDefault)
	b.MaxRequests = cmp.Or(b.MaxRequests, BreakerMaxRequestsDefault)
	return b
}

var (
	errEndpointFault = errors.New("endpoint failed")
	errAbandoned     = errors.New("call abandoned by the runner")
)

// guard protects one endpoint: a concurrency limit (adapting to 429s), a
// circuit breaker that counts calls failed by the endpoint itself (not
// handler-reported failures), and the counters the status API and metrics
// read.
type guard struct {
	name        string
	cb          *gobreaker.CircuitBreaker[struct{}]
	openTimeout time.Duration
	openedAt    atomic.Int64 // unix nanos of the last trip
	lim         *limiter
	now         func() time.Time
	obs         CallObserver // nil: none
	protocol    string       // for obs

	inflight, calls, faults, rejected atomic.Int64
}

func newGuard(name string, b BreakerSettings, maxConcurrency int, now func() time.Time) *guard {
	b = b.withDefaults()
	g := &guard{name: name, openTimeout: b.OpenTimeout, now: now, lim: newLimiter(maxConcurrency)}
	g.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: b.MaxRequests,
		Interval:    b.Interval,
		Timeout:     b.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= b.ConsecutiveFailures },
		OnStateChange: func(_ string, _, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				g.openedAt.Store(g.now().UnixNano())
			}
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errAbandoned) },
	})
	return g
}

// run makes one call (for n steps) through the limit and the breaker. It
// reports open when the breaker refused the call, with how long until it
// may be tried again; err is set when ctx ended while waiting for a slot.
func (g *guard) run(ctx context.Context, n int, call func(ctx context.Context)) (open bool, reopenIn time.Duration, err error) {
	gen, err := g.lim.acquire(ctx)
	if err != nil {
		return false, 0, err
	}
	throttled := false
	defer func() { g.lim.done(gen, throttled) }()
	g.inflight.Add(int64(n))
	defer g.inflight.Add(-int64(n))
	_, err = g.cb.Execute(func() (struct{}, error) {
		g.calls.Add(1)
		pctx, p := withProbe(ctx)
		began := time.Now()
		call(pctx)
		throttled = p.throttled.Load()
		switch {
		case errors.Is(context.Cause(ctx), context.Canceled):
			g.observe(began, CallAbandoned)
			return struct{}{}, errAbandoned
		case p.fault.Load():
			g.faults.Add(1)
			g.observe(began, CallFault)
			return struct{}{}, errEndpointFault
		}
		g.observe(began, CallOK)
		return struct{}{}, nil
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		g.rejected.Add(int64(n))
		return true, g.reopenIn(errors.Is(err, gobreaker.ErrTooManyRequests)), nil
	}
	return false, 0, nil
}

func (g *guard) reopenIn(halfOpen bool) time.Duration {
	if halfOpen {
		// A probe is in flight; look again soon.
		return min(g.openTimeout, time.Second)
	}
	at := time.Unix(0, g.openedAt.Load()).Add(g.openTimeout)
	return max(at.Sub(g.now()), 100*time.Millisecond)
}

// circuitOpen is the result of a call the breaker refused.
func circuitOpen(name string, reopenIn time.Duration) contracts.StepResult {
	secs := reopenIn.Seconds()
	return contracts.StepResult{
		Success: false,
		Status:  contracts.StatusFailed,
		Error: &contracts.StepError{
			Message:   fmt.Sprintf("circuit breaker for %s is open; the handler was not called", name),
			ErrorType: contracts.ErrorTypeCircuitOpen,
			Retryable: true,
		},
		OrchestrationMetadata: &contracts.OrchestrationMetadata{BackoffRequestSeconds: &secs},
	}
}

// guardedInvoker runs single calls through a guard.
type guardedInvoker struct {
	inner Invoker
	g     *guard
}

func (gi *guardedInvoker) Invoke(ctx context.Context, env *contracts.StepEnvelope) contracts.StepResult {
	var res contracts.StepResult
	open, reopen, err := gi.g.run(ctx, 1, func(ctx context.Context) { res = gi.inner.Invoke(ctx, env) })
	switch {
	case err != nil:
		return waitFailure(ctx)
	case open:
		return circuitOpen(gi.g.name, reopen)
	}
	return res
}

// guardedBatch runs batched calls through a guard: the breaker counts calls,
// not steps.
type guardedBatch struct {
	inner BatchInvoker
	g     *guard
}

func (gb *guardedBatch) InvokeBatch(ctx context.Context, envs []*contracts.StepEnvelope) []contracts.StepResult {
	var res []contracts.StepResult
	open, reopen, err := gb.g.run(ctx, len(envs), func(ctx context.Context) { res = gb.inner.InvokeBatch(ctx, envs) })
	if err != nil || open {
		fail := waitFailure(ctx)
		if open {
			fail = circuitOpen(gb.g.name, reopen)
		}
		res = make([]contracts.StepResult, len(envs))
		for i := range res {
			res[i] = cloneResult(fail)
		}
	}
	return res
}
