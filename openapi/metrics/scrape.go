package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tasker-runner/tasker-runner/callout"
)

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
		if m.cfg.Queues == nil {
			return
		}
		read = m.cfg.Queues.ReadyQueues
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
