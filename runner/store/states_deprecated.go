package store

// The old names of the states, kept untyped (so they still compare with
// plain strings) only until cmd/tasker-runner and openapi's metrics (changed
// on other branches) are renamed too; contracts/states.go defines the states.
//
// Deprecated: use the [contracts.StepState] and [contracts.TaskState]
// constants. This file goes once nothing uses it.
const (
	StateComplete         = "complete"
	StateWaitingForRetry  = "waiting_for_retry"
	StateError            = "error"
	StateEnqueued         = "enqueued"
	TaskComplete          = "complete"
	TaskCancelled         = "cancelled"
	TaskBlockedByFailures = "blocked_by_failures"
	TaskResolvedManually  = "resolved_manually"
)
