package contracts

import (
	"encoding/json"
	"fmt"
)

// Checkpoint is the progress a long step saves with [Yield] and finds again
// in the next call through [StepEnvelope.ResumeFrom]: Tasker's checkpoint
// shape. Handlers may store more fields by building the
// [StepResult.Checkpoint] object themselves.
type Checkpoint struct {
	// Cursor is where to resume: any JSON value the handler understands.
	Cursor json.RawMessage `json:"cursor"`
	// ItemsProcessed counts the items processed so far, over all calls.
	ItemsProcessed int64 `json:"items_processed"`
	// AccumulatedResults carries partial results from call to call.
	AccumulatedResults json.RawMessage `json:"accumulated_results,omitempty"`
}

// Yield returns the result that saves cp and asks to be called again at
// once, without consuming an attempt: Status [StatusYielded] with the
// checkpoint. Success is false, as in the contract's examples, so that a
// reader ignoring the status never takes a step that is part way through
// for a completed one; the runner goes by the status. If cp cannot be
// encoded (a Cursor or AccumulatedResults that is not valid JSON) the result
// is a permanent [ErrorTypeInvalidResponse] failure saying why.
func Yield(cp Checkpoint) StepResult {
	b, err := json.Marshal(cp)
	if err != nil {
		return Failure(ErrorTypeInvalidResponse, "contracts: encoding the checkpoint: "+err.Error(), false)
	}
	return StepResult{Success: false, Status: StatusYielded, Checkpoint: b}
}

// ResumeFrom decodes e.Step.Checkpoint, the checkpoint the step last
// yielded. ok is false, with a nil error, when the step has not yielded
// (start from the beginning then). A checkpoint that is not an object, or
// whose items_processed is not a non-negative integer, is a [*FieldError].
func (e *StepEnvelope) ResumeFrom() (cp Checkpoint, ok bool, err error) {
	raw := e.Step.Checkpoint
	if len(raw) == 0 || isNull(raw) {
		return Checkpoint{}, false, nil
	}
	const at = "step.checkpoint"
	fields, err := objectFields(at, raw)
	if err != nil {
		return Checkpoint{}, false, err
	}
	cp.Cursor = fields["cursor"]
	cp.AccumulatedResults = fields["accumulated_results"]
	if v, has := fields["items_processed"]; has && !isNull(v) {
		if cp.ItemsProcessed, err = countField(at+".items_processed", v, maxItems); err != nil {
			return Checkpoint{}, false, err
		}
	}
	return cp, true, nil
}

// IntCursor returns the checkpoint's cursor as an integer, for the integer
// ranges of [EvenCursors] and [CursorsBySize].
func (c Checkpoint) IntCursor() (int64, error) {
	n, err := intValue(c.Cursor)
	if err != nil {
		return 0, fmt.Errorf("contracts: checkpoint cursor: %w", err)
	}
	return n, nil
}
