package runner

import (
	"encoding/json"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// What a claimed step's type means for the runner.

// growsTask reports whether an outcome may add steps to its task: a
// successful decision or batchable step.
func growsTask(p *pendingOutcome) bool {
	t := workflow.StepType(p.step.Type)
	return p.completion.State == contracts.StepStateComplete && (t == workflow.StepDecision || t == workflow.StepBatchable)
}

// batchInputs reads a batch worker's inputs (the runner wrote them); ok is
// false for other steps.
func batchInputs(s store.ClaimedStep) (contracts.BatchWorkerInputs, bool) {
	if workflow.StepType(s.Type) != workflow.StepBatchWorker {
		// Returned before in is declared: decoding into it moves it to
		// the heap, and this runs for every step.
		return contracts.BatchWorkerInputs{}, false
	}
	var in contracts.BatchWorkerInputs
	if json.Unmarshal(s.Inputs, &in) != nil {
		return contracts.BatchWorkerInputs{}, false
	}
	return in, true
}

// failureStrategy is a batch worker's failure_strategy; other steps have
// none.
func failureStrategy(s store.ClaimedStep) workflow.FailureStrategy {
	in, _ := batchInputs(s)
	return workflow.FailureStrategy(in.BatchMetadata.FailureStrategy)
}

// noOpWorker reports whether s is the placeholder worker of a no_batches
// outcome, which the runner completes without calling a handler.
func noOpWorker(s store.ClaimedStep) bool {
	in, _ := batchInputs(s)
	return in.IsNoOp
}
