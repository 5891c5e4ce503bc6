package callout

import "time"

// Outcomes of a call reported to a [CallObserver].
const (
	// CallOK: the endpoint answered (a handler-reported failure is still an
	// answer).
	CallOK = "ok"
	// CallFault: the endpoint failed the call (unreachable, timeout, 5xx,
	// an unusable response); the breaker counts it.
	CallFault = "fault"
	// CallAbandoned: the runner cancelled the call (shutdown).
	CallAbandoned = "abandoned"
)

// CallObserver receives the measurements of calls to remote endpoints, for
// metrics. Set one with [RegistryConfig.Observer]. Calls the breaker refused
// are not reported (see [EndpointStatus.Rejected]), nor are in-process Go
// handlers.
//
// CallDone is called concurrently from the calling goroutines: it must be
// cheap and must not block.
type CallObserver interface {
	// CallDone reports one call (a batch is one call): endpoint is the
	// endpoint's name ([EndpointStatus.Name]), protocol http, connect or
	// grpc, d how long the call took and outcome one of [CallOK],
	// [CallFault] and [CallAbandoned].
	CallDone(endpoint, protocol string, d time.Duration, outcome string)
}

// NopCallObserver is a [CallObserver] that discards every measurement.
type NopCallObserver struct{}

func (NopCallObserver) CallDone(string, string, time.Duration, string) {}

// Name identifies the endpoint in logs and metrics: its pattern, prefixed
// with "namespace/" when the endpoint is limited to one namespace.
func (s EndpointStatus) Name() string {
	return Endpoint{Namespace: s.Namespace, Pattern: s.Pattern}.name()
}

// observe reports a call that began at began.
func (g *guard) observe(began time.Time, outcome string) {
	if g.obs != nil {
		g.obs.CallDone(g.name, g.protocol, time.Since(began), outcome)
	}
}
