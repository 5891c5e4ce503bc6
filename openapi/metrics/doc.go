// Package metrics serves tasker-runner's Prometheus metrics: a [Metrics]
// built by [New] from a [Config] hands out the observers the runner and the
// callout registry report to ([Metrics.RunnerObserver],
// [Metrics.CalloutObserver]), reads the runner's live state, the endpoints'
// breakers and the queue depths at scrape time, and serves all of it from a
// registry of its own ([Metrics.Handler]).
package metrics
