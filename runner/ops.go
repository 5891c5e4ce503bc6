package runner

import (
	"errors"
	"fmt"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner/store"
)

// ValidateEndpoint checks a handler endpoint exactly as a runner loading
// it from the database would ([Endpoints.Reload]): the secret reference must
// be "", "env:NAME" or "file:/path" and resolve in this process with
// secrets (see [SecretSource.Resolve]), and a [callout.Registry] must
// accept the endpoint (pattern, protocol, URL and its {callable}
// placeholder, headers, limits). Call it before storing a row: a runner
// that cannot load a row marks that endpoint unusable, and its steps wait.
//
// It does not apply a [callout.URLPolicy]: registration does that itself
// ([callout.URLPolicy.Check]), since rows loaded later must not be refused
// wholesale when the policy changes.
func ValidateEndpoint(ep HandlerEndpoint, secrets SecretSource) error {
	row := store.HandlerEndpoint(ep)
	if row.TimeoutMs < 0 || row.MaxConcurrency < 0 || row.BatchMax < 0 || row.BatchWindowMs < 0 ||
		row.BreakerMaxRequests < 0 || row.BreakerIntervalMs < 0 || row.BreakerOpenTimeoutMs < 0 || row.BreakerConsecutiveFailures < 0 {
		return errors.New("timeouts, limits and breaker settings must not be negative")
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"timeout_ms", row.TimeoutMs}, {"max_concurrency", row.MaxConcurrency}, {"batch_max", row.BatchMax},
		{"batch_window_ms", row.BatchWindowMs}, {"breaker max_requests", row.BreakerMaxRequests},
		{"breaker interval_ms", row.BreakerIntervalMs}, {"breaker open_timeout_ms", row.BreakerOpenTimeoutMs},
		{"breaker consecutive_failures", row.BreakerConsecutiveFailures},
	} {
		if f.v > contracts.MaxInt32 {
			return fmt.Errorf("%s must be at most %d", f.name, contracts.MaxInt32)
		}
	}
	e := &Endpoints{LookupEnv: secrets.LookupEnv, SecretDirs: secrets.Dirs, Logger: secrets.Logger}
	cep, reason, err := e.fromRow(row)
	if err != nil {
		e.logger().Warn("secret_ref cannot be resolved", "secret_ref", row.SecretRef, "reason", reason)
		return err
	}
	return callout.CheckEndpoint(cep)
}
