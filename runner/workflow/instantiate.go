package workflow

import (
	"encoding/json"
	"fmt"
	"iter"
	"slices"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// OutcomeError is a decision or batch outcome that cannot be applied. The
// step that returned it fails for good with error type Type
// ([contracts.ErrorTypeInvalidOutcome] or [contracts.ErrorTypeStepLimit]):
// the same outcome would fail again.
type OutcomeError struct {
	Type string
	Msg  string
}

func (e *OutcomeError) Error() string { return e.Msg }

// invalidOutcome is an [OutcomeError] of type invalid_outcome.
func invalidOutcome(format string, args ...any) error {
	return &OutcomeError{Type: contracts.ErrorTypeInvalidOutcome, Msg: fmt.Sprintf(format, args...)}
}

// Instance is a step a task already has, as [Template.Instantiate] needs to
// know it.
type Instance struct {
	ID uuid.UUID
	// Done is true once the step is complete or resolved_manually: it no
	// longer holds back a child created now.
	Done bool
}

// Task is what [Template.Instantiate] reads of the task an outcome grows.
type Task interface {
	// Len is how many steps the task has.
	Len() int
	// HasName reports whether the task has a step named name.
	HasName(name string) bool
	// Instances yields the task's steps made from the template step named
	// templateStep (a batch_worker step has one per batch).
	Instances(templateStep string) iter.Seq[Instance]
}

// Growth is an outcome to instantiate: the expansion
// [Template.ExpandDecision] or [Template.ExpandBatch] returned for it, and
// the limits that apply.
type Growth struct {
	// StepID and StepName are the step whose outcome this is. Its
	// completion is written with the new steps, so it counts as a parent
	// not yet done.
	StepID   uuid.UUID
	StepName string
	// TemplateStep is that step's template step (the decision or the
	// batchable step).
	TemplateStep string
	// Expansion is what to create, in order.
	Expansion []DynamicStep
	// Cursors, for a batch outcome, make one instance of Expansion[0] (the
	// worker template) each, named "<worker>_<batch_id>", with
	// [contracts.BatchWorkerInputs]; nil for a decision.
	Cursors []contracts.CursorConfig
	// NoOp marks the placeholder worker of a no_batches outcome.
	NoOp bool
	// Retry fills the retry fields the template steps leave unset.
	Retry RetryDefaults
	// MaxStepsPerOutcome and MaxStepsPerTask bound the steps created; over
	// either, nothing is created.
	MaxStepsPerOutcome int
	MaxStepsPerTask    int
	// NewID makes the new steps' ids. Default UUIDv7.
	NewID func() uuid.UUID
}

// NewStep is a step an outcome creates.
type NewStep struct {
	ID   uuid.UUID
	Name string
	// Def is the template step it is made from.
	Def *Step
	// Retry is Def's retry with [Growth.Retry] and the defaults applied.
	Retry Retry
	// Inputs are a batch worker's [contracts.BatchWorkerInputs] as JSON;
	// nil for other steps.
	Inputs json.RawMessage
	// Parents are the steps it waits for, PendingParents how many of them
	// are not done yet.
	Parents        []uuid.UUID
	PendingParents int
}

// Instantiate turns an outcome's expansion into the steps to create in
// task, or an [*OutcomeError] that must fail the outcome's step. A parent
// named in the expansion stands for every instance of it, in the task or
// created earlier in the same expansion. task is not changed: the caller
// adds the steps once it writes them.
func (t *Template) Instantiate(g Growth, task Task) ([]NewStep, error) {
	if err := g.checkLimits(task.Len()); err != nil {
		return nil, err
	}
	newID := g.NewID
	if newID == nil {
		newID = func() uuid.UUID { return uuid.Must(uuid.NewV7()) }
	}
	fresh := map[string][]uuid.UUID{} // template step -> ids created here
	// Names created here: checked against the task and each other, so a
	// refused outcome leaves no trace.
	names := map[string]bool{}
	var out []NewStep
	for k, d := range g.Expansion {
		def := t.Step(d.Name)
		if def == nil {
			return nil, invalidOutcome("step %q: unknown step %q", g.StepName, d.Name)
		}
		rt := def.Retry.WithDefaults(g.Retry)
		parents, pending := g.parentsOf(d, fresh, task)
		insts, err := t.instancesOf(g, d.Name, k == 0 && g.Cursors != nil)
		if err != nil {
			return nil, err
		}
		ids := make([]uuid.UUID, 0, len(insts))
		for _, in := range insts {
			if task.HasName(in.name) || names[in.name] {
				return nil, invalidOutcome("step %q: the task already has a step named %q", g.StepName, in.name)
			}
			names[in.name] = true
			s := NewStep{ID: newID(), Name: in.name, Def: def, Retry: rt, Inputs: in.inputs,
				Parents: parents, PendingParents: pending}
			ids = append(ids, s.ID)
			out = append(out, s)
		}
		fresh[d.Name] = ids
	}
	return out, nil
}

// checkLimits refuses an outcome that would create too many steps, before
// anything is made.
func (g *Growth) checkLimits(taskSteps int) error {
	total := len(g.Expansion)
	if g.Cursors != nil && total > 0 {
		total += len(g.Cursors) - 1
	}
	if total > g.MaxStepsPerOutcome {
		return &OutcomeError{contracts.ErrorTypeStepLimit, fmt.Sprintf(
			"step %q: the outcome would create %d steps; the limit per outcome is %d", g.StepName, total, g.MaxStepsPerOutcome)}
	}
	if n := taskSteps + total; n > g.MaxStepsPerTask {
		return &OutcomeError{contracts.ErrorTypeStepLimit, fmt.Sprintf(
			"step %q: the outcome would bring the task to %d steps; the limit per task is %d", g.StepName, n, g.MaxStepsPerTask)}
	}
	return nil
}

// parentsOf returns the ids of d's parents (the same for every instance of
// d) and how many of them are not done.
func (g *Growth) parentsOf(d DynamicStep, fresh map[string][]uuid.UUID, task Task) ([]uuid.UUID, int) {
	var parents []uuid.UUID
	pending := 0
	for _, pn := range d.Parents {
		if ids, ok := fresh[pn]; ok {
			parents = append(parents, ids...)
			pending += len(ids)
			continue
		}
		for s := range task.Instances(pn) {
			parents = append(parents, s.ID)
			if s.ID == g.StepID || !s.Done {
				// The outcome's own step completes with the new steps;
				// its completion counts it down like any other parent.
				pending++
			}
		}
	}
	return parents, pending
}

type instance struct {
	name   string
	inputs json.RawMessage
}

// instancesOf names the steps made from template step name: one, or for
// the worker of a batch outcome one per cursor, with its inputs.
func (t *Template) instancesOf(g Growth, name string, perCursor bool) ([]instance, error) {
	if !perCursor {
		return []instance{{name: name}}, nil
	}
	bc := t.batchConfig(g.TemplateStep, name)
	meta := contracts.BatchMetadata{CursorField: bc.CursorField, FailureStrategy: string(bc.FailureStrategy)}
	out := make([]instance, 0, len(g.Cursors))
	for _, c := range g.Cursors {
		in, err := json.Marshal(contracts.BatchWorkerInputs{Cursor: c, BatchMetadata: meta, IsNoOp: g.NoOp})
		if err != nil {
			return nil, invalidOutcome("step %q: cursor %q does not encode: %v", g.StepName, c.BatchID, err)
		}
		out = append(out, instance{name: name + "_" + c.BatchID, inputs: in})
	}
	return out, nil
}

// batchConfig is the batch_config that applies to a batch: the batchable
// step's, else the worker's, else Tasker's defaults.
func (t *Template) batchConfig(batchable, worker string) BatchConfig {
	for _, name := range []string{batchable, worker} {
		if s := t.Step(name); s != nil && s.BatchConfig != nil {
			return *s.BatchConfig
		}
	}
	return BatchConfig{CursorField: defaultCursorField, FailureStrategy: ContinueOnFailure}
}

// NoBatchesWorker is the worker a no_batches outcome of batchable step
// batchable instantiates (once, as a placeholder, so the convergence step
// still runs): the one its batch_config names, else its only batch_worker
// child. It is an [*OutcomeError] when there is none or more than one.
func (t *Template) NoBatchesWorker(batchable string) (string, error) {
	if s := t.Step(batchable); s != nil && s.BatchConfig != nil && s.BatchConfig.WorkerTemplate != "" {
		return s.BatchConfig.WorkerTemplate, nil
	}
	var found []string
	for _, s := range t.Steps {
		if s.Type == StepBatchWorker && slices.Contains(s.Dependencies, batchable) {
			found = append(found, s.Name)
		}
	}
	if len(found) != 1 {
		return "", invalidOutcome("no_batches: batchable step %q names no batch_config.worker_template and has %d batch_worker steps", batchable, len(found))
	}
	return found[0], nil
}
