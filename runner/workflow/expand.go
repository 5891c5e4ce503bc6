package workflow

import (
	"fmt"
	"slices"
)

// DynamicStep is a template step to create at run time, after a decision or
// batch outcome.
type DynamicStep struct {
	Name string
	// Parents names the template steps this one waits for: steps that
	// already exist in the task or that come earlier in the same expansion.
	// A parent that is a batch_worker step stands for every instance of it.
	Parents []string
}

// ExpandDecision returns what to create when decision step decision returns
// decision_point_outcome {type: create_steps, step_names: chosen}: the chosen
// steps, then every step that becomes creatable because of them, in
// topological order. exists reports whether a template step already has an
// instance in the task; chosen steps that already exist are skipped, so a
// repeated outcome is harmless.
//
// Every chosen step must depend directly on the decision step, and its other
// dependencies must exist. Beyond the chosen steps, a step is added when at
// least one of its dependencies was just added and:
//   - for a deferred_convergence step, with parents = its dependencies that
//     exist or were added (Tasker's intersection semantics), unless one of
//     its dependencies is a batch_worker not yet instantiated (then
//     [Template.ExpandBatch] creates it);
//   - for any other step, when all its dependencies exist or were added.
//
// A deferred_convergence step that depends on the decision step itself is
// added whatever the outcome, so it runs once even after no_branches (it
// then waits for the decision step alone). Otherwise a no_branches outcome
// (empty chosen) creates nothing. batch_worker steps are never added here.
func (t *Template) ExpandDecision(decision string, chosen []string, exists func(name string) bool) ([]DynamicStep, error) {
	c, err := t.prepared()
	if err != nil {
		return nil, err
	}
	d, ok := c.index[decision]
	if !ok || t.Steps[d].stepType() != StepDecision {
		return nil, outcomeProblem("step", fmt.Sprintf("%q is not a decision step of template %s", decision, t.Name))
	}
	var ps problems
	seeds := map[int]bool{}
	for i, name := range chosen {
		p := fmt.Sprintf("step_names[%d]", i)
		k, ok := c.index[name]
		switch {
		case !ok:
			ps.add(p, fmt.Sprintf("unknown step %q", name))
		case !slices.Contains(c.parents[k], d):
			ps.add(p, fmt.Sprintf("step %q does not depend on decision step %q", name, decision))
		case t.Steps[k].stepType() == StepBatchWorker:
			ps.add(p, fmt.Sprintf("step %q is a batch_worker; only a batchable step can create it", name))
		case seeds[k]:
			ps.add(p, fmt.Sprintf("duplicate step %q", name))
		default:
			seeds[k] = true
			for _, dep := range c.parents[k] {
				if dep != d && !exists(t.Steps[dep].Name) && !slices.Contains(chosen, t.Steps[dep].Name) {
					ps.add(p, fmt.Sprintf("step %q depends on %q, which does not exist", name, t.Steps[dep].Name))
				}
			}
		}
	}
	if len(ps) > 0 {
		return nil, newValidationError(subjectOutcome, ps)
	}
	return t.expand(c, seeds, d, exists), nil
}

// ExpandBatch returns what to create when batchable step batchable returns
// batch_processing_outcome {type: create_batches, worker_template_name:
// worker}. The first element is the worker template itself, with its parents:
// the runner creates one instance of it per cursor. The rest are the steps
// that become creatable once the workers exist (typically the
// deferred_convergence step, whose parent named worker means "every
// instance"), by the rules of [Template.ExpandDecision].
func (t *Template) ExpandBatch(batchable, worker string, exists func(name string) bool) ([]DynamicStep, error) {
	c, err := t.prepared()
	if err != nil {
		return nil, err
	}
	b, ok := c.index[batchable]
	if !ok || t.Steps[b].stepType() != StepBatchable {
		return nil, outcomeProblem("step", fmt.Sprintf("%q is not a batchable step of template %s", batchable, t.Name))
	}
	w, ok := c.index[worker]
	switch {
	case !ok:
		return nil, outcomeProblem("worker_template_name", fmt.Sprintf("unknown step %q", worker))
	case t.Steps[w].stepType() != StepBatchWorker || !slices.Contains(c.parents[w], b):
		return nil, outcomeProblem("worker_template_name", fmt.Sprintf("step %q is not a batch_worker step depending on %q", worker, batchable))
	case t.Steps[b].BatchConfig != nil && t.Steps[b].BatchConfig.WorkerTemplate != worker:
		return nil, outcomeProblem("worker_template_name", fmt.Sprintf("step %q declares worker_template %q", batchable, t.Steps[b].BatchConfig.WorkerTemplate))
	}
	for _, dep := range c.parents[w] {
		if dep != b && !exists(t.Steps[dep].Name) {
			return nil, outcomeProblem("worker_template_name", fmt.Sprintf("worker %q depends on %q, which does not exist", worker, t.Steps[dep].Name))
		}
	}
	return t.expand(c, map[int]bool{w: true}, -1, exists), nil
}

func outcomeProblem(path, msg string) error {
	return newValidationError(subjectOutcome, []Problem{{Path: path, Message: msg}})
}

// expand adds the seeds and then the closure described at ExpandDecision;
// decision (-1 for none) is the step whose outcome this is.
func (t *Template) expand(c *compiled, seeds map[int]bool, decision int, exists func(string) bool) []DynamicStep {
	added := map[int]bool{}
	isThere := func(k int) bool { return added[k] || exists(t.Steps[k].Name) }
	var out []DynamicStep
	for _, i := range c.order {
		s := &t.Steps[i]
		if !seeds[i] && (s.stepType() == StepBatchWorker || exists(s.Name)) {
			continue
		}
		if seeds[i] && s.stepType() != StepBatchWorker && exists(s.Name) {
			continue
		}
		deps := c.parents[i]
		if !seeds[i] {
			fresh, complete, pendingWorker := false, true, false
			for _, p := range deps {
				if added[p] || (p == decision && s.stepType() == StepDeferredConvergence) {
					fresh = true
				}
				if !isThere(p) {
					complete = false
					if t.Steps[p].stepType() == StepBatchWorker {
						pendingWorker = true
					}
				}
			}
			if !fresh {
				continue
			}
			if s.stepType() == StepDeferredConvergence {
				if pendingWorker {
					continue
				}
			} else if !complete {
				continue
			}
		}
		added[i] = true
		ds := DynamicStep{Name: s.Name}
		for _, p := range deps {
			if isThere(p) {
				ds.Parents = append(ds.Parents, t.Steps[p].Name)
			}
		}
		out = append(out, ds)
	}
	return out
}
