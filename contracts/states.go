package contracts

// StepState is the state of a step, as stored in tasker.steps.state and
// shown by the management API. [StepStates] lists every value.
type StepState string

// Step states. A step starts [StepStatePending] (its parents are not complete) or
// [StepStateEnqueued] (claimable), runs [StepStateInProgress], and ends in one of the
// others; [StepStateWaitingForRetry] and [StepStateError] may still be retried.
const (
	StepStatePending          StepState = "pending"
	StepStateEnqueued         StepState = "enqueued"
	StepStateInProgress       StepState = "in_progress"
	StepStateComplete         StepState = "complete"
	StepStateWaitingForRetry  StepState = "waiting_for_retry"
	StepStateError            StepState = "error"
	StepStateCancelled        StepState = "cancelled"
	StepStateResolvedManually StepState = "resolved_manually"
)

// StepStates lists every [StepState], in the order a step usually meets
// them. It returns a new slice on each call.
func StepStates() []StepState {
	return []StepState{StepStatePending, StepStateEnqueued, StepStateInProgress, StepStateComplete, StepStateWaitingForRetry, StepStateError, StepStateCancelled, StepStateResolvedManually}
}

// TaskState is the state of a task, as stored in tasker.tasks.state and
// shown by the management API. [TaskStates] lists every value.
type TaskState string

// Task states. [TaskStateComplete], [TaskStateCancelled] and [TaskStateResolvedManually]
// are final; a [TaskStateBlockedByFailures] task waits for a retry, resolve or
// cancel.
const (
	TaskStatePending           TaskState = "pending"
	TaskStateStepsInProcess    TaskState = "steps_in_process"
	TaskStateComplete          TaskState = "complete"
	TaskStateBlockedByFailures TaskState = "blocked_by_failures"
	TaskStateCancelled         TaskState = "cancelled"
	TaskStateResolvedManually  TaskState = "resolved_manually"
)

// TaskStates lists every [TaskState]. It returns a new slice on each call.
func TaskStates() []TaskState {
	return []TaskState{TaskStatePending, TaskStateStepsInProcess, TaskStateComplete, TaskStateBlockedByFailures, TaskStateCancelled, TaskStateResolvedManually}
}
