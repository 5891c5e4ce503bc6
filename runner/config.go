package runner

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// Deployment modes: how a [Runner] learns that steps are ready.
const (
	ModePollingOnly     = "polling_only"
	ModeEventDrivenOnly = "event_driven_only"
	ModeHybrid          = "hybrid"
)

// Defaults of [Config].
const (
	MaxConcurrentStepsDefault = 500
	PollIntervalDefault       = time.Second
	ReconnectInitialDefault   = 100 * time.Millisecond
	ReconnectMaxDefault       = 10 * time.Second
	LeaseForDefault           = 30 * time.Second
	HeartbeatIntervalDefault  = 10 * time.Second
	FlushIntervalDefault      = time.Millisecond
	FlushBatchDefault         = 100
	FlushWritersDefault       = 2
	ShutdownTimeoutDefault    = 30 * time.Second
	StepTimeoutDefault        = 30 * time.Second
	MaxStepsPerOutcomeDefault = 10_000
	MaxStepsPerTaskDefault    = 100_000
	MaxYieldsPerStepDefault   = 100_000
)

// Config configures a [Runner]. Zero values take the documented defaults.
type Config struct {
	// WorkerID names this runner in leases and audit rows. Default
	// hostname-pid.
	WorkerID string
	// Namespaces to serve. Empty serves every namespace, including ones
	// created while running.
	Namespaces []string
	// Mode is one of [ModePollingOnly], [ModeEventDrivenOnly], [ModeHybrid]
	// (default). Without the poller (event_driven_only) the runner still
	// claims every LeaseFor/3, to rescue the expired leases and due retries
	// of runners that died: no notification announces those.
	Mode string
	// MaxConcurrentSteps bounds the steps in flight. Default 500.
	MaxConcurrentSteps int
	// DisableClaimWithCompletions stops outcome writes from claiming the
	// next steps in their transaction (handing the written steps' permits
	// to them). On by default: a chain's next step starts without waiting
	// for a notification and a separate claim.
	DisableClaimWithCompletions bool
	// PollInterval is the fallback poller's mean interval (jittered ±20%).
	// Default 1s.
	PollInterval time.Duration
	// ReconnectInitial and ReconnectMax bound the LISTEN reconnect backoff.
	ReconnectInitial time.Duration
	ReconnectMax     time.Duration
	// LeaseFor is the visibility timeout: a claimed step's lease, extended
	// every LeaseFor/3 while it runs. Default 30s.
	LeaseFor time.Duration
	// HeartbeatInterval is how often the worker registry row is refreshed.
	HeartbeatInterval time.Duration
	// FlushInterval is the longest a result waits for others to share its
	// write (only while other handlers are running); FlushBatch is the most
	// results per write. Defaults 1ms and 100.
	FlushInterval time.Duration
	FlushBatch    int
	// FlushWriters is the most batches written at once; a second write
	// starts only with a full batch. Default 2.
	FlushWriters int
	// ShutdownTimeout is how long [Runner.Stop] lets in-flight steps finish
	// before releasing their leases. Default 30s; negative releases at once.
	ShutdownTimeout time.Duration
	// StepTimeout bounds a step whose template sets no timeout. Default 30s.
	StepTimeout time.Duration
	// RetryDefaults apply to steps created at run time (by decision and
	// batch outcomes) whose template step sets no retry values; give the
	// [ClientConfig.RetryDefaults] used at submit.
	RetryDefaults workflow.RetryDefaults
	// MaxStepsPerOutcome caps the steps one decision or batch outcome
	// creates, MaxStepsPerTask the steps of one task; an outcome over
	// either fails its step with error_type step_limit_exceeded and
	// creates nothing. Defaults 10,000 and 100,000.
	MaxStepsPerOutcome int
	MaxStepsPerTask    int
	// MaxYieldsPerStep caps the yields of one step (a yield consumes no
	// attempt): one more fails the step with error_type
	// yield_limit_exceeded, without retries. Default 100,000.
	MaxYieldsPerStep int
	// Handlers resolves a step's callable to its handler. Required.
	Handlers callout.Resolver
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now returns the current time; tests inject it. Default time.Now.
	Now func() time.Time
	// Rand returns a float in [0, 1) for jitter. Default math/rand/v2.
	Rand func() float64
	// Version is reported in the worker registry.
	Version string
	// Endpoints, when set, is reloaded at start and whenever the database
	// announces a change to handler_endpoints (the listener must be on).
	Endpoints *Endpoints
	// OnEvent, when set, is called for every step outcome once written,
	// one call at a time (batches written in parallel take turns), from the
	// completer: it must return quickly.
	OnEvent func(Event)
	// Observer receives measurements for metrics. Default [NopObserver].
	Observer Observer
	// Retention deletes finished tasks once they are old enough. Off by
	// default; see [RetentionConfig].
	Retention RetentionConfig
}

func (c *Config) withDefaults() error {
	if c.WorkerID == "" {
		host, _ := os.Hostname()
		c.WorkerID = fmt.Sprintf("%s-%d", cmp.Or(host, "runner"), os.Getpid())
	}
	c.Mode = cmp.Or(c.Mode, ModeHybrid)
	c.MaxConcurrentSteps = cmp.Or(c.MaxConcurrentSteps, MaxConcurrentStepsDefault)
	c.PollInterval = cmp.Or(c.PollInterval, PollIntervalDefault)
	c.ReconnectInitial = cmp.Or(c.ReconnectInitial, ReconnectInitialDefault)
	c.ReconnectMax = cmp.Or(c.ReconnectMax, ReconnectMaxDefault)
	c.LeaseFor = cmp.Or(c.LeaseFor, LeaseForDefault)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, HeartbeatIntervalDefault)
	c.FlushInterval = cmp.Or(c.FlushInterval, FlushIntervalDefault)
	c.FlushBatch = cmp.Or(c.FlushBatch, FlushBatchDefault)
	c.FlushWriters = cmp.Or(c.FlushWriters, FlushWritersDefault)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, ShutdownTimeoutDefault)
	c.StepTimeout = cmp.Or(c.StepTimeout, StepTimeoutDefault)
	c.MaxStepsPerOutcome = cmp.Or(c.MaxStepsPerOutcome, MaxStepsPerOutcomeDefault)
	c.MaxStepsPerTask = cmp.Or(c.MaxStepsPerTask, MaxStepsPerTaskDefault)
	c.MaxYieldsPerStep = cmp.Or(c.MaxYieldsPerStep, MaxYieldsPerStepDefault)
	c.Retention.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.Observer == nil {
		c.Observer = NopObserver{}
	}
	return c.validate()
}

func (c *Config) validate() error {
	var errs []error
	switch c.Mode {
	case ModePollingOnly, ModeEventDrivenOnly, ModeHybrid:
	default:
		errs = append(errs, fmt.Errorf("mode %q is not one of %s, %s, %s", c.Mode, ModePollingOnly, ModeEventDrivenOnly, ModeHybrid))
	}
	if c.MaxConcurrentSteps < 1 {
		errs = append(errs, fmt.Errorf("MaxConcurrentSteps must be >= 1, got %d", c.MaxConcurrentSteps))
	}
	if c.FlushWriters < 1 {
		errs = append(errs, fmt.Errorf("FlushWriters must be >= 1, got %d", c.FlushWriters))
	}
	if c.FlushBatch < 1 {
		errs = append(errs, fmt.Errorf("FlushBatch must be >= 1, got %d", c.FlushBatch))
	}
	if c.MaxStepsPerOutcome < 1 || c.MaxStepsPerTask < 1 {
		errs = append(errs, fmt.Errorf("MaxStepsPerOutcome and MaxStepsPerTask must be >= 1, got %d and %d", c.MaxStepsPerOutcome, c.MaxStepsPerTask))
	}
	if c.MaxYieldsPerStep < 1 {
		errs = append(errs, fmt.Errorf("MaxYieldsPerStep must be >= 1, got %d", c.MaxYieldsPerStep))
	}
	if c.LeaseFor < time.Second {
		errs = append(errs, fmt.Errorf("LeaseFor must be at least 1s, got %s", c.LeaseFor))
	}
	errs = append(errs, c.Retention.validate()...)
	if c.Handlers == nil {
		errs = append(errs, errors.New("Handlers is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("runner: invalid config: %w", err)
	}
	return nil
}

func (c *Config) polls() bool   { return c.Mode != ModeEventDrivenOnly }
func (c *Config) listens() bool { return c.Mode != ModePollingOnly }

// noJitter is the jitter of a service config that sets none: d itself.
func noJitter(d time.Duration, _ float64) time.Duration { return d }

// jitter returns d scaled by a random factor in [1-f, 1+f).
func (c *Config) jitter(d time.Duration, f float64) time.Duration {
	return time.Duration(float64(d) * (1 - f + 2*f*c.Rand()))
}
