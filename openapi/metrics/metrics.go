package metrics

import (
	"cmp"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/runner"
)

// Metrics serves tasker-runner's Prometheus metrics from a registry of its
// own (not the global default one), with the Go runtime and process
// collectors. It is fed by the observers it hands out ([Metrics.RunnerObserver],
// [Metrics.CalloutObserver]) and reads gauges at scrape time from its
// [Config] sources and what [Metrics.SetRunner] and
// [Metrics.SetEndpoints] name.
type Metrics struct {
	cfg Config
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

// New returns the metrics for one runner process.
func New(cfg Config) *Metrics {
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
		m.retentionDeleted.WithLabelValues(string(s))
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
