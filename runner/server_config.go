package runner

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// ServerConfig configures a [Server]: the runner's settings (those of
// [Config] that are not wiring: the Server builds the handler registry, the
// endpoint loader and the client itself), how handlers are called, and the
// static handler endpoints. Zero values take the documented defaults: those
// of [Config] for the runner settings, the XDefault constants above for the
// rest.
type ServerConfig struct {
	// WorkerID names this process in leases and history. Default
	// hostname-pid. See [Config.WorkerID].
	WorkerID string
	// Namespaces to serve; empty serves every namespace. See
	// [Config.Namespaces].
	Namespaces []string
	// Mode is [ModePollingOnly], [ModeEventDrivenOnly] or [ModeHybrid]
	// (default). See [Config.Mode].
	Mode string
	// MaxConcurrentSteps bounds the steps in flight. Default
	// [MaxConcurrentStepsDefault].
	MaxConcurrentSteps int
	// DisableClaimWithCompletions: see [Config.DisableClaimWithCompletions].
	DisableClaimWithCompletions bool
	// PollInterval, ReconnectInitial and ReconnectMax: see the fields of
	// the same names of [Config].
	PollInterval     time.Duration
	ReconnectInitial time.Duration
	ReconnectMax     time.Duration
	// LeaseFor is the visibility timeout. Default [LeaseForDefault].
	LeaseFor time.Duration
	// HeartbeatInterval refreshes the worker row. Default
	// [HeartbeatIntervalDefault]; give the same to the management API
	// (openapi.Config.HeartbeatInterval) when you change it.
	HeartbeatInterval time.Duration
	// FlushInterval, FlushBatch and FlushWriters shape the completion
	// writes: see [Config.FlushInterval].
	FlushInterval time.Duration
	FlushBatch    int
	FlushWriters  int
	// ShutdownTimeout is how long [Server.Stop] lets running steps finish
	// before giving them back. Default [ShutdownTimeoutDefault]; negative
	// gives them back at once.
	ShutdownTimeout time.Duration
	// StepTimeout bounds a step whose template sets no timeout. Default
	// [StepTimeoutDefault].
	StepTimeout time.Duration
	// RetryDefaults apply to template steps that set no retry values, for
	// submission ([Server.Client]) and for steps created at run time alike.
	RetryDefaults workflow.RetryDefaults
	// MaxStepsPerOutcome, MaxStepsPerTask and MaxYieldsPerStep bound dynamic
	// workflows: see [Config.MaxStepsPerOutcome].
	MaxStepsPerOutcome int
	MaxStepsPerTask    int
	MaxYieldsPerStep   int
	// Retention deletes finished tasks once old enough. Off by default.
	Retention RetentionConfig
	// Version is reported in the worker registry.
	Version string

	// Callout says how handlers are called.
	Callout CalloutConfig
	// Endpoints are the handler endpoints of this process's configuration.
	// Endpoints registered in the database (through the management API)
	// win over them for the same namespace and pattern. In-process Go
	// handlers need none: see [Server.HandleFunc].
	Endpoints []StaticEndpoint
	// SecretDirs are where "file:" secret references of database endpoints
	// may point. Default [DefaultSecretDirs]. See [SecretSource].
	SecretDirs []string
	// LookupEnv resolves "env:" secret references. Default os.LookupEnv.
	LookupEnv func(string) (string, bool)

	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnEvent, when set, sees every step outcome once written: see
	// [Config.OnEvent]. It must return quickly.
	OnEvent func(Event)
	// Observer receives the runner's measurements. Default [NopObserver].
	Observer Observer
	// CallObserver, when set, receives every handler call's duration and
	// outcome ([callout.RegistryConfig.Observer]).
	CallObserver callout.CallObserver
}

// CalloutConfig says how a [Server] calls its handlers over the network.
type CalloutConfig struct {
	// MaxIdleConnsPerHost is the keep-alive pool per handler host. Default
	// [callout.DefaultMaxIdleConnsPerHost].
	MaxIdleConnsPerHost int
	// URLPolicy judges every handler URL: static endpoints when the Server
	// is made, every connection when it is dialled. nil allows every
	// address (the library default, convenient for loopback handlers);
	// serve builds a strict one from worker.callout.url_policy. Give the
	// same policy to the management API (openapi.Config.URLPolicy), which
	// judges the endpoints registered through it.
	URLPolicy *callout.URLPolicy
	// MaxResponseBytes bounds a handler's response. Default
	// [callout.DefaultMaxResponseBytes].
	MaxResponseBytes int64
	// Breaker is the circuit breaker of every endpoint that sets none.
	// Defaults [callout.BreakerConsecutiveFailuresDefault],
	// [callout.BreakerOpenTimeoutDefault], [callout.BreakerIntervalDefault],
	// [callout.BreakerMaxRequestsDefault].
	Breaker callout.BreakerSettings
}

// StaticEndpoint says where and how the handlers whose callables match
// Pattern are called: an HTTP+JSON, Connect or gRPC service, or (Protocol
// [callout.ProtocolGo]) the in-process Go handlers registered with
// [Server.HandleFunc] for a glob pattern.
type StaticEndpoint struct {
	// Namespace limits the endpoint to one namespace; "" serves all.
	Namespace string
	// Pattern is a callable ("payments.refund"), a glob ("payments.*") or
	// "*" (the namespace's default). Required.
	Pattern string
	// URL is the absolute http(s) URL to call; "{callable}" is replaced by
	// the step's callable. Required unless Protocol is go.
	URL string
	// Protocol is [callout.ProtocolHTTP] (default), [callout.ProtocolConnect],
	// [callout.ProtocolGRPC] or [callout.ProtocolGo].
	Protocol string
	// Timeout bounds one call; 0 leaves it to the step's deadline.
	Timeout time.Duration
	// MaxConcurrency bounds the calls in flight; 0 is no limit.
	MaxConcurrency int
	// BatchMax > 1 sends up to this many steps per call, waiting at most
	// BatchWindow for company.
	BatchMax    int
	BatchWindow time.Duration
	// Breaker overrides [CalloutConfig.Breaker] for this endpoint when set.
	Breaker callout.BreakerSettings
	// Headers are sent with every call.
	Headers map[string]string
	// Secrets sign HTTP+JSON calls (Standard Webhooks, "whsec_..."),
	// newest first; none sends them unsigned.
	Secrets []string
}

// calloutEndpoint is the endpoint the registry takes.
func (e StaticEndpoint) calloutEndpoint() callout.Endpoint {
	return callout.Endpoint{
		Namespace: e.Namespace, Pattern: e.Pattern, URL: e.URL, Protocol: e.Protocol,
		Timeout: e.Timeout, MaxConcurrency: e.MaxConcurrency, BatchMax: e.BatchMax, BatchWindow: e.BatchWindow,
		Breaker: e.Breaker, Headers: e.Headers, Secrets: e.Secrets,
	}
}

// withDefaults fills the Server's own defaults (the runner fills those of
// [Config] in [New]) and validates.
func (c *ServerConfig) withDefaults() error {
	c.Callout.MaxIdleConnsPerHost = cmp.Or(c.Callout.MaxIdleConnsPerHost, callout.DefaultMaxIdleConnsPerHost)
	c.Callout.MaxResponseBytes = cmp.Or(c.Callout.MaxResponseBytes, callout.DefaultMaxResponseBytes)
	b := &c.Callout.Breaker
	b.ConsecutiveFailures = cmp.Or(b.ConsecutiveFailures, callout.BreakerConsecutiveFailuresDefault)
	b.OpenTimeout = cmp.Or(b.OpenTimeout, callout.BreakerOpenTimeoutDefault)
	b.Interval = cmp.Or(b.Interval, callout.BreakerIntervalDefault)
	b.MaxRequests = cmp.Or(b.MaxRequests, callout.BreakerMaxRequestsDefault)
	if c.SecretDirs == nil {
		c.SecretDirs = DefaultSecretDirs
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = NopObserver{}
	}
	return c.validate()
}

// validate checks the Server's own settings; every error names its field.
// The runner settings are checked by [New], with the same convention.
func (c *ServerConfig) validate() error {
	var errs []error
	if c.Callout.MaxIdleConnsPerHost < 0 {
		errs = append(errs, fmt.Errorf("Callout.MaxIdleConnsPerHost must be >= 0, got %d", c.Callout.MaxIdleConnsPerHost))
	}
	if c.Callout.MaxResponseBytes < 0 {
		errs = append(errs, fmt.Errorf("Callout.MaxResponseBytes must be >= 0, got %d", c.Callout.MaxResponseBytes))
	}
	if b := c.Callout.Breaker; b.OpenTimeout < 0 || b.Interval < 0 {
		errs = append(errs, fmt.Errorf("Callout.Breaker: OpenTimeout and Interval must be >= 0, got %s and %s", b.OpenTimeout, b.Interval))
	}
	seen := map[[2]string]int{}
	for i, e := range c.Endpoints {
		key := [2]string{e.Namespace, e.Pattern}
		if j, dup := seen[key]; dup {
			errs = append(errs, fmt.Errorf("Endpoints[%d]: pattern %q in namespace %q is Endpoints[%d] already", i, e.Pattern, e.Namespace, j))
			continue
		}
		seen[key] = i
		errs = append(errs, c.validateEndpoint(i, e)...)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("runner: invalid server config: %w", err)
	}
	return nil
}

// validateEndpoint refuses a static endpoint as the registry and the
// management API would: before anything starts.
func (c *ServerConfig) validateEndpoint(i int, e StaticEndpoint) []error {
	if e.Pattern == "" {
		return []error{fmt.Errorf("Endpoints[%d].Pattern is required", i)}
	}
	var errs []error
	if e.Protocol != callout.ProtocolGo {
		if e.URL == "" {
			errs = append(errs, fmt.Errorf("Endpoints[%d].URL is required (protocol %s)", i, cmp.Or(e.Protocol, callout.ProtocolHTTP)))
		} else if err := c.Callout.URLPolicy.Check(e.URL); err != nil {
			errs = append(errs, fmt.Errorf("Endpoints[%d].URL: %w", i, err))
		}
	}
	if err := callout.CheckEndpoint(e.calloutEndpoint()); err != nil {
		errs = append(errs, fmt.Errorf("Endpoints[%d] (%s): %w", i, e.Pattern, err))
	}
	return errs
}
