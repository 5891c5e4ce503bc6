package callout

import (
	"context"
	"sync/atomic"
)

// A probe lets the endpoint guard learn whether a call failed because of the
// endpoint (unreachable, timed out, 5xx) rather than because the handler
// reported a failure: only the former should trip the circuit breaker. The
// invokers report through the context so the Invoker interface stays small.
// A probe also learns whether the endpoint asked to slow down (429), which
// lowers its concurrency limit (see limiter).
type probe struct{ fault, throttled atomic.Bool }

type probeKey struct{}

func withProbe(ctx context.Context) (context.Context, *probe) {
	p := &probe{}
	return context.WithValue(ctx, probeKey{}, p), p
}

// reportFault marks the call in ctx as failed by the endpoint when fault is
// true, if a guard is listening. Safe for concurrent use (a batch may make
// several calls).
func reportFault(ctx context.Context, fault bool) {
	if !fault {
		return
	}
	if p, ok := ctx.Value(probeKey{}).(*probe); ok {
		p.fault.Store(true)
	}
}

// reportThrottled marks the call in ctx as refused for load (HTTP 429,
// RESOURCE_EXHAUSTED), if a guard is listening.
func reportThrottled(ctx context.Context) {
	if p, ok := ctx.Value(probeKey{}).(*probe); ok {
		p.throttled.Store(true)
	}
}
