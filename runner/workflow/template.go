package workflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// Limits on templates accepted by [Parse].
const (
	// MaxTemplateBytes is the largest template document Parse accepts
	// ([contracts.MaxTemplateBytes]).
	MaxTemplateBytes = contracts.MaxTemplateBytes
	// MaxSteps is the largest number of steps a template may declare.
	MaxSteps = 1000
	// MaxEdges is the most dependencies a template may declare in all
	// (the sum of its steps' dependency lists). Each one is a row of
	// tasker.step_edges for every task of the template, so it bounds what
	// one small submit costs: 300 steps each depending on every earlier one
	// are 44,850.
	MaxEdges = 10_000
	// MaxDefinitionBytes is the largest stored definition (the validated
	// template as JSON, as the database returns it) a template may have:
	// runners parse stored definitions with [Parse], so it is
	// [MaxTemplateBytes]. Registration refuses a template whose definition
	// is larger ([DefinitionTooLargeError]), which can happen to a document
	// under MaxTemplateBytes since defaults are filled in.
	MaxDefinitionBytes = MaxTemplateBytes
)

// DefinitionTooLargeError reports a template whose stored definition would
// be larger than [MaxDefinitionBytes]: runners could never load it.
type DefinitionTooLargeError struct {
	// Size is the definition's size in bytes.
	Size int
}

func (e *DefinitionTooLargeError) Error() string {
	return fmt.Sprintf("workflow: the template's stored definition would be %d bytes, more than the %d bytes runners load", e.Size, MaxDefinitionBytes)
}

// CheckDefinitionSize returns a [*DefinitionTooLargeError] when a stored
// definition of size bytes could not be loaded back.
func CheckDefinitionSize(size int) error {
	if size > MaxDefinitionBytes {
		return &DefinitionTooLargeError{Size: size}
	}
	return nil
}

// ErrTemplateTooLarge is returned (wrapped) by [Parse] for a document larger
// than [MaxTemplateBytes].
var ErrTemplateTooLarge = errors.New("workflow: template too large")

// StepType is the kind of a step. The zero value means [StepStandard].
type StepType string

// Step types, named as in Tasker.
const (
	// StepStandard is an ordinary step: it runs once its parents complete.
	StepStandard StepType = "standard"
	// StepDecision returns a decision_point_outcome naming which of its
	// dependent steps to create.
	StepDecision StepType = "decision"
	// StepDeferredConvergence waits for whichever of its declared dependencies
	// were actually created (intersection semantics).
	StepDeferredConvergence StepType = "deferred_convergence"
	// StepBatchable returns a batch_processing_outcome that instantiates a
	// batch_worker step once per cursor.
	StepBatchable StepType = "batchable"
	// StepBatchWorker is a template for the workers a batchable step creates;
	// it is never created as is.
	StepBatchWorker StepType = "batch_worker"
)

var stepTypes = []StepType{StepStandard, StepDecision, StepDeferredConvergence, StepBatchable, StepBatchWorker}

// BackoffStrategy names how retry delays grow. The zero value means
// [BackoffExponential].
type BackoffStrategy string

// Backoff strategies. Exponential, linear and fixed are the usual ones;
// fibonacci and none are accepted because Tasker defines them.
const (
	BackoffExponential BackoffStrategy = "exponential" // base * 2^(attempt-1)
	BackoffLinear      BackoffStrategy = "linear"      // base * attempt
	BackoffFixed       BackoffStrategy = "fixed"       // base
	BackoffFibonacci   BackoffStrategy = "fibonacci"   // base * fib(attempt): 1, 1, 2, 3, 5, ...
	BackoffNone        BackoffStrategy = "none"        // retry at once
)

var backoffStrategies = []BackoffStrategy{BackoffExponential, BackoffLinear, BackoffFixed, BackoffFibonacci, BackoffNone}

// FailureStrategy says what a failed batch worker means for the batch.
type FailureStrategy string

// Failure strategies, as in Tasker.
const (
	// ContinueOnFailure completes the failed worker with failure metadata so
	// the convergence step still runs (the default).
	ContinueOnFailure FailureStrategy = "continue_on_failure"
	// FailFast puts the failed worker in error, blocking convergence.
	FailFast FailureStrategy = "fail_fast"
	// Isolate leaves the failed worker for manual resolution.
	Isolate FailureStrategy = "isolate"
)

var failureStrategies = []FailureStrategy{ContinueOnFailure, FailFast, Isolate}

// Template is a parsed task template. Obtain one with [Parse] (or
// json.Unmarshal, which calls Parse) and treat it as read-only; a Template
// built in Go must pass [Template.Validate] before use, and its methods then
// recompute on every call what a parsed Template caches.
type Template struct {
	Name          string `json:"name"`
	NamespaceName string `json:"namespace_name"`
	Version       string `json:"version"`
	Description   string `json:"description,omitempty"`
	// InputSchema is a JSON Schema (draft 2020-12 unless it names another with
	// $schema) that task contexts must satisfy; see [Template.ValidateContext].
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
	Steps       []Step          `json:"steps"`

	// Tasker keys the runner does not interpret, preserved verbatim.
	Metadata           json.RawMessage `json:"metadata,omitempty"`
	TaskHandler        json.RawMessage `json:"task_handler,omitempty"`
	SystemDependencies json.RawMessage `json:"system_dependencies,omitempty"`
	DomainEvents       json.RawMessage `json:"domain_events,omitempty"`
	Lifecycle          json.RawMessage `json:"lifecycle,omitempty"`
	Environments       json.RawMessage `json:"environments,omitempty"`

	c        *compiled // set by Parse; nil for a Template built in Go
	warnings []Problem // set by Parse
}

// Step is one step definition of a template.
type Step struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Type is the step type; Parse sets it to [StepStandard] when absent.
	// Tasker's alias key `step_type` and old value `deferred` are accepted.
	Type    StepType `json:"type"`
	Handler Handler  `json:"handler"`
	// Dependencies names the steps this one waits for.
	Dependencies []string `json:"dependencies"`
	Retry        Retry    `json:"retry,omitzero"`
	// TimeoutSeconds bounds one attempt; 0 means unset (the handler
	// endpoint's or the runner's default applies).
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	// BatchConfig configures batch processing (batchable and batch_worker
	// steps only).
	BatchConfig *BatchConfig `json:"batch_config,omitempty"`

	// Tasker keys the runner does not interpret, preserved verbatim.
	SystemDependency string          `json:"system_dependency,omitempty"`
	PublishesEvents  json.RawMessage `json:"publishes_events,omitempty"`
	ResultSchema     json.RawMessage `json:"result_schema,omitempty"`
	Lifecycle        json.RawMessage `json:"lifecycle,omitempty"`
}

// Handler is the address of the code that runs a step.
type Handler struct {
	// Callable is the handler's name, matched against registered endpoints
	// (for example "payments.refund" or "Payments::RefundHandler").
	Callable string `json:"callable"`
	// Method is the entry point within the handler; empty means "call".
	Method string `json:"method,omitempty"`
	// Resolver is Tasker's resolver hint. It is kept but not used: endpoints
	// are matched by Callable, and handlers are not sent it.
	Resolver string `json:"resolver,omitempty"`
	// Initialization is passed to the handler with every call.
	Initialization map[string]any `json:"initialization,omitempty"`
}

// Retry is a step's retry policy. Zero fields are unset and take
// [RetryDefaults] (see [Retry.WithDefaults]).
type Retry struct {
	// Retryable reports whether a failed attempt may be retried; nil means
	// true (Tasker's default). It never prevents the first attempt.
	Retryable *bool `json:"retryable,omitempty"`
	// MaxAttempts is the total number of attempts, including the first one
	// (YAML `max_attempts`, or its alias `limit`).
	MaxAttempts int `json:"max_attempts,omitempty"`
	// Strategy is the backoff strategy (YAML `backoff`).
	Strategy      BackoffStrategy `json:"backoff,omitempty"`
	BackoffBaseMs int             `json:"backoff_base_ms,omitempty"`
	MaxBackoffMs  int             `json:"max_backoff_ms,omitempty"`
}

// BatchConfig is Tasker's batch_config block. Parse fills absent fields with
// Tasker's defaults: batch_size 1000, parallelism 10, cursor_field "id",
// failure_strategy continue_on_failure.
type BatchConfig struct {
	BatchSize   int    `json:"batch_size"`
	Parallelism int    `json:"parallelism"`
	CursorField string `json:"cursor_field"`
	// WorkerTemplate names the batch_worker step to instantiate.
	WorkerTemplate  string          `json:"worker_template"`
	FailureStrategy FailureStrategy `json:"failure_strategy"`
}

// Defaults applied by Parse to batch_config blocks.
const (
	defaultBatchSize   = 1000
	defaultParallelism = 10
	defaultCursorField = "id"
)

// Parse decodes a YAML or JSON template (JSON is recognised by a leading '{'),
// validates it and prepares it for use. Every problem found is reported in one
// [*ValidationError]; a document over [MaxTemplateBytes] yields an error
// wrapping [ErrTemplateTooLarge].
func Parse(doc []byte) (*Template, error) {
	if len(doc) > MaxTemplateBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit is %d", ErrTemplateTooLarge, len(doc), MaxTemplateBytes)
	}
	root, err := parseDocument(doc)
	if err != nil {
		return nil, err
	}
	d := newDecoder(root)
	t := d.template(root)
	probs := d.problems
	if t != nil {
		r := t.check()
		probs = append(probs, d.dropShadowed(r.problems)...)
		if len(probs) == 0 {
			t.c = r.compiled()
		}
	}
	warnings := d.locate(d.warnings)
	if len(probs) > 0 {
		ve := newValidationError(subjectTemplate, d.locate(probs))
		ve.Warnings = warnings
		return nil, ve
	}
	t.warnings = warnings
	return t, nil
}

// Warnings lists what Parse accepted but the runner does not act on, each
// at its path with the reason: keys Tasker ignores too (loaded_from,
// retry.initial_delay), and keys Tasker acts on that have no effect here
// (environments, publishes_events, a handler's resolver). A template built
// in Go has none.
func (t *Template) Warnings() []Problem { return slices.Clone(t.warnings) }

// UnmarshalJSON implements [json.Unmarshaler] by calling [Parse], so a
// template read back from storage is validated and prepared like a new one.
func (t *Template) UnmarshalJSON(b []byte) error {
	p, err := Parse(b)
	if err != nil {
		return err
	}
	*t = *p
	return nil
}

// Validate reports every problem with t as a [*ValidationError], or nil.
// Parse already validates; Validate is for templates built or modified in Go.
func (t *Template) Validate() error {
	r := t.check()
	if len(r.problems) > 0 {
		return newValidationError(subjectTemplate, r.problems)
	}
	return nil
}

// Step returns the step named name, or nil.
func (t *Template) Step(name string) *Step {
	if t.c != nil {
		if i, ok := t.c.index[name]; ok {
			return &t.Steps[i]
		}
		return nil
	}
	for i := range t.Steps {
		if t.Steps[i].Name == name {
			return &t.Steps[i]
		}
	}
	return nil
}

// Grows reports whether tasks of t create steps while they run: t has a
// decision or batchable step.
func (t *Template) Grows() bool {
	for i := range t.Steps {
		if k := t.Steps[i].stepType(); k == StepDecision || k == StepBatchable {
			return true
		}
	}
	return false
}

// prepared returns the cached compilation of a parsed template, or compiles
// t afresh (validating it) for a template built in Go.
func (t *Template) prepared() (*compiled, error) {
	if t.c != nil {
		return t.c, nil
	}
	r := t.check()
	if len(r.problems) > 0 {
		return nil, newValidationError(subjectTemplate, r.problems)
	}
	return r.compiled(), nil
}

func (s *Step) stepType() StepType {
	if s.Type == "" {
		return StepStandard
	}
	return s.Type
}
