package metrics

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tasker-runner/tasker-runner/callout"
)

// seriesCache maps label values to their curried series. Lookups read an
// immutable map through an atomic pointer: no lock and no allocation on the
// hot path. Inserts copy the map; they are rare because the label values
// are bounded (namespaces, callables of registered templates, endpoints).
type seriesCache[K comparable, V any] struct {
	m  atomic.Pointer[map[K]V]
	mu sync.Mutex
}

func (c *seriesCache[K, V]) load(k K) (V, bool) {
	if p := c.m.Load(); p != nil {
		v, ok := (*p)[k]
		return v, ok
	}
	var zero V
	return zero, false
}

func (c *seriesCache[K, V]) store(k K, build func() V) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.load(k); ok {
		return v
	}
	var n int
	old := c.m.Load()
	if old != nil {
		n = len(*old)
	}
	next := make(map[K]V, n+1)
	if old != nil {
		for kk, vv := range *old {
			next[kk] = vv
		}
	}
	v := build()
	next[k] = v
	c.m.Store(&next)
	return v
}

type stepKey struct{ namespace, handler string }

type stepSeries struct {
	claimed, completed, failed, retried, released prometheus.Counter
	duration, waited                              prometheus.Observer
}

func (m *Metrics) stepSeries(namespace, handler string) *stepSeries {
	k := stepKey{namespace, handler}
	if s, ok := m.steps.load(k); ok {
		return s
	}
	return m.steps.store(k, func() *stepSeries {
		// Every series of the pair starts at 0, so rates and ratios work
		// from the first scrape.
		return &stepSeries{
			claimed:   m.claimed.WithLabelValues(namespace, handler),
			completed: m.completed.WithLabelValues(namespace, handler),
			failed:    m.failed.WithLabelValues(namespace, handler),
			retried:   m.retried.WithLabelValues(namespace, handler),
			released:  m.released.WithLabelValues(namespace, handler),
			duration:  m.stepDuration.WithLabelValues(namespace, handler),
			waited:    m.enqueueToStart.WithLabelValues(namespace),
		}
	})
}

type callKey struct{ endpoint, protocol string }

type callSeries struct{ ok, fault, abandoned prometheus.Observer }

func (m *Metrics) callSeries(endpoint, protocol string) *callSeries {
	k := callKey{endpoint, protocol}
	if s, ok := m.calls.load(k); ok {
		return s
	}
	return m.calls.store(k, func() *callSeries {
		return &callSeries{
			ok:        m.calloutDuration.WithLabelValues(endpoint, protocol, callout.CallOK),
			fault:     m.calloutDuration.WithLabelValues(endpoint, protocol, callout.CallFault),
			abandoned: m.calloutDuration.WithLabelValues(endpoint, protocol, callout.CallAbandoned),
		}
	})
}
