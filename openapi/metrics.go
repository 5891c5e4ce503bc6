package openapi

import "github.com/tasker-runner/tasker-runner/openapi/metrics"

// The API process's Prometheus metrics live in package [metrics]. These
// names forward to it for the programs that wire them through this package.

// Metrics serves the Prometheus metrics; see [metrics.Metrics].
type Metrics = metrics.Metrics

// MetricsConfig configures [NewMetrics]; see [metrics.Config].
type MetricsConfig = metrics.Config

// NewMetrics returns the metrics for one runner process; see [metrics.New].
func NewMetrics(cfg MetricsConfig) *Metrics { return metrics.New(cfg) }
