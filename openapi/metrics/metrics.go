package openapi

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store"
)

// MetricsConfig configures [NewMetrics]. Every source is optional: the
// metrics it feeds are left out without it.
type MetricsConfig struct {
	// DB is queried at scrape time, in one statement, for the queue depth
	// and the age of the oldest ready step by namespace (usually the
	// runner's pool). Every replica reports the same database-wide values:
	// aggregate them with max, not sum.
	DB store.DB
	// QueueStats, when set, is used instead of querying DB.
	QueueStats func(ctx context.Context) ([]store.QueueStat, error)
	// QueueTimeout bounds that query. Default [QueueTimeoutDefault].
	QueueTimeout time.Duration
	// Logger reports failed queue queries. Default slog.Default().
	Logger *slog.Logger
}

// QueueTimeoutDefault is the default of [MetricsConfig.QueueTimeout].
const QueueTimeoutDefault = 2 * time.Second

// RunnerStats is what the metrics read from a runner at scrape time;
// *runner.Runner implements it.
type RunnerStats interface {
	Stats() runner.Stats
	ListenerConnected() bool
}

// EndpointLister is what the metrics read from the handler endpoints at
// scrape time; *callout.Registry implements it.
type EndpointLister interface {
	Endpoints() []callout.EndpointStatus
}

// Metrics serves tasker-runner's Prometheus metrics from a registry of its
// own (not the global default one), with the Go runtime and process
// collectors. It is fed by the observers it hands out ([Metrics.RunnerObserver],
// [Metrics.CalloutObserver]) and reads gauges at scrape time from its
// [MetricsConfig] sources and what [Metrics.SetRunner] and
// [Metrics.SetEndpoints] name.
type Metrics struct {
	cfg MetricsConfig
	reg *prometheus.Registry

	claimed, completed, failed, retried, released *prometheus.CounterVec
	stepDuration                                  *prometheus.HistogramVec
	enqueueToStart                                *prometheus.HistogramVec
	stale, reconnects                             prometheus.Counter
	flushSeconds, batchSize                       prometheus.Histogram
	calloutDuration                               *prometheus.HistogramVec
	retentionDeleted                              *prometheus.CounterVec
	retentionLastRun                              prometheus.Gauge

	steps seriesCache[stepKey, *stepSeries]
	calls seriesCache[callKey, *callSeries]

	runner    atomic.Pointer[RunnerStats]
	endpoints atomic.Pointer[EndpointLister]
}

// Histogram buckets, in seconds.
var (
	// Handlers and queue waits: milliseconds to minutes.
	stepBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	// One call to an endpoint.
	calloutBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	// One completion write.
	flushBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	// Outcomes per completion write (FlushBatch defaults to 100).
	batchBuckets = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}
)

// NewMetrics returns the metrics for one runner process.
func NewMetrics(cfg MetricsConfig) *Metrics {
	cfg.QueueTimeout = cmp.Or(cfg.QueueTimeout, QueueTimeoutDefault)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	stepLabels := []string{"namespace", "handler"}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, stepLabels)
	}
	m := &Metrics{
		cfg:       cfg,
		reg:       prometheus.NewRegistry(),
		claimed:   counter("tasker_steps_claimed_total", "Steps claimed by this runner (attempts started)."),
		completed: counter("tasker_steps_completed_total", "Steps written complete."),
		failed:    counter("tasker_steps_failed_total", "Steps written error: permanently failed or out of attempts (dead-lettered)."),
		retried:   counter("tasker_steps_retried_total", "Steps written waiting_for_retry after a failed attempt."),
		released:  counter("tasker_steps_released_total", "Steps given back unrun without consuming the attempt (shutdown, or an open circuit breaker)."),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tasker_step_duration_seconds", Help: "How long handlers ran, for attempts written complete, waiting_for_retry or error.",
			Buckets: stepBuckets,
		}, stepLabels),
		enqueueToStart: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tasker_enqueue_to_start_seconds", Help: "How long steps waited from becoming ready (run_at) to starting.",
			Buckets: stepBuckets,
		}, []string{"namespace"}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tasker_stale_completions_total", Help: "Step outcomes refused by the lease fence (the lease was lost; the step is another runner's).",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tasker_listener_reconnects_total", Help: "Times the LISTEN connection was lost and re-established.",
		}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tasker_completion_flush_seconds", Help: "How long one completion write (one transaction for a batch of outcomes) took, retries included.",
			Buckets: flushBuckets,
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tasker_completion_batch_size", Help: "Step outcomes per completion write.",
			Buckets: batchBuckets,
		}),
		calloutDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tasker_callout_duration_seconds", Help: "How long calls to handler endpoints took (a batch is one call), by outcome: ok (answered), fault (failed by the endpoint), abandoned (cancelled by the runner).",
			Buckets: calloutBuckets,
		}, []string{"endpoint", "protocol", "outcome"}),
		retentionDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tasker_retention_tasks_deleted_total", Help: "Finished tasks this runner deleted (with their steps and history) once past their retention age, by the state they were in.",
		}, []string{"state"}),
		retentionLastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tasker_retention_last_run_seconds", Help: "How long this runner's last retention run took (runs skipped because another runner was at it do not count).",
		}),
	}
	// Every state starts at 0, so rates work from the first scrape.
	for _, s := range retentionStates {
		m.retentionDeleted.WithLabelValues(s)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.claimed, m.completed, m.failed, m.retried, m.released,
		m.stepDuration, m.enqueueToStart, m.stale, m.reconnects,
		m.flushSeconds, m.batchSize, m.calloutDuration,
		m.retentionDeleted, m.retentionLastRun,
		&scrapeCollector{m: m},
	)
	return m
}

// Handler serves the metrics in the Prometheus exposition formats. A failed
// queue query leaves the queue gauges out (tasker_queue_stats_up 0) rather
// than failing the scrape.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            m.reg,
		MaxRequestsInFlight: 4,
	})
}

// Registerer lets the embedding program add collectors of its own.
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }

// Gatherer gathers the metrics, e.g. for tests.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// SetRunner makes the runner's live state (steps in flight, handlers
// running, listener) part of every scrape. Call it once the runner exists:
// the runner needs [Metrics.RunnerObserver] in its config first.
func (m *Metrics) SetRunner(r RunnerStats) {
	if r == nil {
		m.runner.Store(nil)
		return
	}
	m.runner.Store(&r)
}

// SetEndpoints makes each endpoint's breaker state and calls in flight part
// of every scrape. The registry needs [Metrics.CalloutObserver] in its
// config first.
func (m *Metrics) SetEndpoints(e EndpointLister) {
	if e == nil {
		m.endpoints.Store(nil)
		return
	}
	m.endpoints.Store(&e)
}

// RunnerObserver returns the [runner.Observer] to set as [runner.Config.Observer].
func (m *Metrics) RunnerObserver() runner.Observer { return runnerObserver{m} }

// CalloutObserver returns the [callout.CallObserver] to set as
// [callout.RegistryConfig.Observer].
func (m *Metrics) CalloutObserver() callout.CallObserver { return calloutObserver{m} }

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

type runnerObserver struct{ m *Metrics }

func (o runnerObserver) StepClaimed(namespace, handler string, waited time.Duration) {
	s := o.m.stepSeries(namespace, handler)
	s.claimed.Inc()
	// run_at comes from the database's clock: a little skew must not make
	// a negative wait.
	s.waited.Observe(max(waited, 0).Seconds())
}

func (o runnerObserver) StepFinished(namespace, handler, state string, ran time.Duration) {
	s := o.m.stepSeries(namespace, handler)
	switch state {
	case store.StateComplete:
		s.completed.Inc()
	case store.StateWaitingForRetry:
		s.retried.Inc()
	case store.StateError:
		s.failed.Inc()
	case store.StateEnqueued:
		s.released.Inc()
		return // the handler was not called
	default:
		return
	}
	s.duration.Observe(ran.Seconds())
}

func (o runnerObserver) StaleCompletions(n int) { o.m.stale.Add(float64(n)) }

func (o runnerObserver) ListenerReconnect() { o.m.reconnects.Inc() }

func (o runnerObserver) FlushDone(n int, d time.Duration) {
	o.m.flushSeconds.Observe(d.Seconds())
	o.m.batchSize.Observe(float64(n))
}

// retentionStates are the task states retention deletes.
var retentionStates = []string{store.TaskComplete, store.TaskResolvedManually, store.TaskBlockedByFailures, store.TaskCancelled}

func (o runnerObserver) RetentionDone(deleted map[string]int, d time.Duration) {
	for state, n := range deleted {
		o.m.retentionDeleted.WithLabelValues(state).Add(float64(n))
	}
	o.m.retentionLastRun.Set(d.Seconds())
}

type calloutObserver struct{ m *Metrics }

func (o calloutObserver) CallDone(endpoint, protocol string, d time.Duration, outcome string) {
	s := o.m.callSeries(endpoint, protocol)
	var h prometheus.Observer
	switch outcome {
	case callout.CallOK:
		h = s.ok
	case callout.CallFault:
		h = s.fault
	case callout.CallAbandoned:
		h = s.abandoned
	default:
		return
	}
	h.Observe(d.Seconds())
}

// Breaker states as the values of tasker_breaker_state.
var breakerStates = map[string]float64{"closed": 0, "half-open": 1, "open": 2}

// scrapeCollector reads gauges when scraped: the runner's live state, the
// endpoints' breakers, and the queues (one SQL statement).
type scrapeCollector struct {
	m *Metrics
}

var (
	descInFlight = prometheus.NewDesc("tasker_steps_in_flight",
		"Steps claimed by this runner and not yet written (permits in use).", nil, nil)
	descActive = prometheus.NewDesc("tasker_steps_active",
		"Handlers of this runner running now.", nil, nil)
	descListener = prometheus.NewDesc("tasker_listener_connected",
		"1 while the LISTEN connection is up.", nil, nil)
	descRescued = prometheus.NewDesc("tasker_steps_rescued_total",
		"Steps this runner claimed whose previous lease had expired (their runner was lost).", nil, nil)
	descClaimQueries = prometheus.NewDesc("tasker_claim_queries_total",
		"Claim statements this runner ran.", nil, nil)
	descBreaker = prometheus.NewDesc("tasker_breaker_state",
		"Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open.", []string{"endpoint"}, nil)
	descEndpointInFlight = prometheus.NewDesc("tasker_endpoint_in_flight",
		"Steps in calls to the endpoint now.", []string{"endpoint"}, nil)
	descRejected = prometheus.NewDesc("tasker_callout_rejected_total",
		"Steps not sent to the endpoint because its breaker was open (since the endpoint was last configured).", []string{"endpoint"}, nil)
	descLimit = prometheus.NewDesc("tasker_endpoint_concurrency_limit",
		"Calls allowed in flight to the endpoint now (0: no limit); lowered while it answers 429.", []string{"endpoint"}, nil)
	descThrottled = prometheus.NewDesc("tasker_callout_throttled_total",
		"429 (RESOURCE_EXHAUSTED) answers from the endpoint (since it was last configured).", []string{"endpoint"}, nil)
	descQueueDepth = prometheus.NewDesc("tasker_queue_depth",
		"Steps ready to run now (enqueued, or retries due), by namespace; database-wide.", []string{"namespace"}, nil)
	descOldestAge = prometheus.NewDesc("tasker_oldest_ready_step_age_seconds",
		"How long the oldest ready step of the namespace has waited; 0 when none is ready; database-wide.", []string{"namespace"}, nil)
	descQueueUp = prometheus.NewDesc("tasker_queue_stats_up",
		"1 when the last scrape's queue query succeeded.", nil, nil)
)

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descInFlight, descActive, descListener, descRescued, descClaimQueries,
		descBreaker, descEndpointInFlight, descRejected, descLimit, descThrottled, descQueueDepth, descOldestAge, descQueueUp,
	} {
		ch <- d
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	if p := m.runner.Load(); p != nil {
		r := *p
		st := r.Stats()
		listener := 0.0
		if r.ListenerConnected() {
			listener = 1
		}
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(st.InFlight))
		ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(st.Active))
		ch <- prometheus.MustNewConstMetric(descListener, prometheus.GaugeValue, listener)
		ch <- prometheus.MustNewConstMetric(descRescued, prometheus.CounterValue, float64(st.Rescued))
		ch <- prometheus.MustNewConstMetric(descClaimQueries, prometheus.CounterValue, float64(st.ClaimQueries))
	}
	if p := m.endpoints.Load(); p != nil {
		for _, e := range (*p).Endpoints() {
			if e.Protocol == callout.ProtocolGo {
				continue // in-process: no breaker, no calls
			}
			name := e.Name()
			ch <- prometheus.MustNewConstMetric(descBreaker, prometheus.GaugeValue, breakerStates[e.BreakerState], name)
			ch <- prometheus.MustNewConstMetric(descEndpointInFlight, prometheus.GaugeValue, float64(e.InFlight), name)
			ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(e.Rejected), name)
			ch <- prometheus.MustNewConstMetric(descLimit, prometheus.GaugeValue, float64(e.ConcurrencyLimit), name)
			ch <- prometheus.MustNewConstMetric(descThrottled, prometheus.CounterValue, float64(e.Throttled), name)
		}
	}
	c.collectQueues(ch)
}

func (c *scrapeCollector) collectQueues(ch chan<- prometheus.Metric) {
	m := c.m
	read := m.cfg.QueueStats
	if read == nil {
		if m.cfg.DB == nil {
			return
		}
		read = func(ctx context.Context) ([]store.QueueStat, error) { return store.ReadyQueues(ctx, m.cfg.DB) }
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.QueueTimeout)
	defer cancel()
	qs, err := read(ctx)
	if err != nil {
		m.cfg.Logger.Warn("metrics: reading queue depths", "err", err)
		ch <- prometheus.MustNewConstMetric(descQueueUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descQueueUp, prometheus.GaugeValue, 1)
	for _, q := range qs {
		ch <- prometheus.MustNewConstMetric(descQueueDepth, prometheus.GaugeValue, float64(q.Ready), q.Namespace)
		ch <- prometheus.MustNewConstMetric(descOldestAge, prometheus.GaugeValue, q.OldestAge.Seconds(), q.Namespace)
	}
}
