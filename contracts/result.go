package contracts

import "encoding/json"

// Result statuses a handler may report in [StepResult.Status].
const (
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	// StatusYielded reports progress with a checkpoint; the step runs again
	// at once without consuming an attempt.
	StatusYielded = "yielded"
)

// Error types the runner itself reports in [StepError.ErrorType].
const (
	ErrorTypeHandler         = "handler_error"
	ErrorTypeTimeout         = "handler_timeout"
	ErrorTypePanic           = "handler_panic"
	ErrorTypeNotFound        = "handler_not_found"
	ErrorTypeInvalidResponse = "invalid_handler_response"
	// ErrorTypeInvalidOutcome fails a decision or batchable step whose
	// outcome cannot be applied (an unknown step name, a malformed
	// cursor); it is never retried.
	ErrorTypeInvalidOutcome = "invalid_outcome"
	// ErrorTypeStepLimit fails a step whose outcome would create more steps
	// than the runner allows per outcome or per task; nothing is created.
	ErrorTypeStepLimit = "step_limit_exceeded"
	// ErrorTypeYieldLimit fails a step that yielded more often than the
	// runner allows ([worker.dynamic] max_yields_per_step): a yield
	// consumes no attempt, so only this ends a handler that never finishes.
	ErrorTypeYieldLimit = "yield_limit_exceeded"
	// ErrorTypeCircuitOpen is never recorded: the runner did not call the
	// handler because its endpoint's circuit breaker is open, and gives the
	// step back (its attempt not consumed) until the breaker may close.
	ErrorTypeCircuitOpen = "circuit_open"
	// ErrorTypeEndpointUnusable is never recorded either: the step's
	// endpoint cannot be used by this runner (its secret_ref does not
	// resolve, say), so the handler was not called; the step is given back
	// (its attempt not consumed) until the endpoint is fixed.
	ErrorTypeEndpointUnusable = "endpoint_unusable"
)

// StepResult is what a handler answers: Tasker's StepExecutionResult.
type StepResult struct {
	// StepUUID is required in batched responses, where it matches the result
	// to its envelope; optional otherwise.
	StepUUID string          `json:"step_uuid,omitempty"`
	Success  bool            `json:"success"`
	Status   string          `json:"status,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Error    *StepError      `json:"error,omitempty"`
	// OrchestrationMetadata carries hints to the runner, such as a backoff.
	OrchestrationMetadata *OrchestrationMetadata `json:"orchestration_metadata,omitempty"`
	// Checkpoint is set with Status [StatusYielded].
	Checkpoint json.RawMessage `json:"checkpoint,omitempty"`
}

// StepError describes a failure.
type StepError struct {
	Message   string `json:"message"`
	ErrorType string `json:"error_type,omitempty"`
	// Retryable false makes the failure permanent whatever attempts remain.
	Retryable  bool `json:"retryable"`
	StatusCode int  `json:"status_code,omitempty"`
}

// OrchestrationMetadata carries a handler's hints to the runner.
type OrchestrationMetadata struct {
	BackoffHint *BackoffHint `json:"backoff_hint,omitempty"`
	// BackoffRequestSeconds asks for this delay before the next attempt; it
	// wins over the template's backoff.
	BackoffRequestSeconds *float64 `json:"backoff_request_seconds,omitempty"`
}

// BackoffHint asks for a specific delay before the next attempt.
type BackoffHint struct {
	DelaySeconds float64 `json:"delay_seconds"`
	BackoffType  string  `json:"backoff_type,omitempty"`
}

// Failure returns a failed result of the given error type.
func Failure(errorType, message string, retryable bool) StepResult {
	return StepResult{
		Success: false,
		Status:  StatusFailed,
		Error:   &StepError{Message: message, ErrorType: errorType, Retryable: retryable},
	}
}
