package runner

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner/store"
)

// Event reports one step outcome after it was written ([Config.OnEvent]).
type Event struct {
	Step ClaimedStep
	// State is the step's new state: complete, waiting_for_retry, error, or
	// enqueued (lease released at shutdown).
	State StepState
	// Stale is true when the fence refused the write (the lease was lost).
	Stale  bool
	Result contracts.StepResult
	// Started and Finished bound the handler call.
	Started, Finished time.Time
	// TaskState is set when this write finished the task: complete or
	// blocked_by_failures.
	TaskState TaskState
}

// ClaimedStep is a step as this runner claimed and ran it.
type ClaimedStep struct {
	StepUUID         uuid.UUID
	TaskUUID         uuid.UUID
	Namespace        string
	Name             string
	TemplateStepName string
	// Handler is the callable the step ran.
	Handler string
	Type    string
	// Attempt is this attempt's number (1 on the first run). A release,
	// yield or open breaker gives it back, so a later claim may repeat it.
	Attempt int
	// Epoch identifies this claim: every claim of the step takes a larger
	// one (the fence of its writes).
	Epoch       int64
	MaxAttempts int
	// Inputs are the step's own inputs (a batch worker's cursor, say) and
	// Checkpoint what its last yield saved.
	Inputs, Checkpoint json.RawMessage
	// Rescued is true when the step's previous lease had expired.
	Rescued bool
	// Yields counts the step's yields before this claim.
	Yields int
	// EnqueuedAt is when the step became ready.
	EnqueuedAt time.Time

	TemplateName    string
	TemplateVersion string
	// Context is the task's input.
	Context       json.RawMessage
	CorrelationID uuid.UUID
}

func eventStep(s *store.ClaimedStep) ClaimedStep {
	return ClaimedStep{
		StepUUID: s.StepUUID, TaskUUID: s.TaskUUID, Namespace: s.Namespace, Name: s.Name,
		TemplateStepName: s.TemplateStepName, Handler: s.Handler, Type: s.Type,
		Attempt: s.Attempt, Epoch: s.Epoch, MaxAttempts: s.MaxAttempts,
		Inputs: s.Inputs, Checkpoint: s.Checkpoint, Rescued: s.Rescued, Yields: s.Yields, EnqueuedAt: s.EnqueuedAt,
		TemplateName: s.TemplateName, TemplateVersion: s.TemplateVersion, Context: s.Context, CorrelationID: s.CorrelationID,
	}
}
