package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// noOpBatchID names the single worker a no_batches outcome creates (as in
// Tasker): the runner completes it without calling its handler, so the
// convergence step still runs.
const noOpBatchID = "000"

// invalidOutcome fails the step whose outcome could not be applied; it is
// never retried, since the same outcome would fail again.
func invalidOutcome(format string, args ...any) error {
	return &workflow.OutcomeError{Type: contracts.ErrorTypeInvalidOutcome, Msg: fmt.Sprintf(format, args...)}
}

// taskGraph is a growing task's steps: those read under lock, then those
// added by earlier outcomes of the same write.
type taskGraph struct {
	steps []store.TaskStep
	names map[string]bool
	byTpl map[string][]int // template step name -> indices in steps
}

func newTaskGraph() *taskGraph {
	return &taskGraph{names: map[string]bool{}, byTpl: map[string][]int{}}
}

func (g *taskGraph) add(s store.TaskStep) {
	g.byTpl[s.TemplateStepName] = append(g.byTpl[s.TemplateStepName], len(g.steps))
	g.names[s.Name] = true
	g.steps = append(g.steps, s)
}

func (g *taskGraph) find(id uuid.UUID) *store.TaskStep {
	for i := range g.steps {
		if g.steps[i].StepUUID == id {
			return &g.steps[i]
		}
	}
	return nil
}

func (g *taskGraph) exists(templateStep string) bool { return len(g.byTpl[templateStep]) > 0 }

// Len, HasName and Instances make the graph the [workflow.Task] that
// [workflow.Template.Instantiate] reads.
func (g *taskGraph) Len() int                 { return len(g.steps) }
func (g *taskGraph) HasName(name string) bool { return g.names[name] }
func (g *taskGraph) Instances(templateStep string) iter.Seq[workflow.Instance] {
	return func(yield func(workflow.Instance) bool) {
		for _, i := range g.byTpl[templateStep] {
			s := &g.steps[i]
			done := s.State == contracts.StepStateComplete || s.State == contracts.StepStateResolvedManually
			if !yield(workflow.Instance{ID: s.StepUUID, Done: done}) {
				return
			}
		}
	}
}

// grower turns the outcomes of one write into the steps to add.
type grower struct {
	r      *Runner
	graphs map[uuid.UUID]*taskGraph
}

// grow returns the steps p's outcome adds to its task, or an error that
// must fail the step. It returns nothing when p's lease is no longer held
// (the completion will be refused as stale).
func (g *grower) grow(p *pendingOutcome, tpl *workflow.Template) ([]store.GrowStep, error) {
	graph := g.graphs[p.step.TaskUUID]
	if graph == nil {
		return nil, nil
	}
	self := graph.find(p.step.StepUUID)
	if self == nil || self.State != contracts.StepStateInProgress || self.LeaseOwner != g.r.cfg.WorkerID ||
		self.Attempts != p.step.Attempt || self.LeaseEpoch != p.step.Epoch {
		return nil, nil
	}
	out, err := contracts.ParseOutcomes(p.result.Result)
	if err != nil {
		return nil, invalidOutcome("step %q: %v", p.step.Name, err)
	}
	name := p.step.TemplateStepName
	var (
		dyn     []workflow.DynamicStep
		cursors []contracts.CursorConfig
		noOp    bool
	)
	switch workflow.StepType(p.step.Type) {
	case workflow.StepDecision:
		o := out.DecisionPointOutcome
		if o == nil {
			return nil, invalidOutcome("decision step %q returned no result.decision_point_outcome", p.step.Name)
		}
		var chosen []string
		if o.Type == contracts.OutcomeCreateSteps {
			chosen = o.StepNames
		}
		dyn, err = tpl.ExpandDecision(name, chosen, graph.exists)
	case workflow.StepBatchable:
		o := out.BatchProcessingOutcome
		if o == nil {
			return nil, invalidOutcome("batchable step %q returned no result.batch_processing_outcome", p.step.Name)
		}
		worker := o.WorkerTemplateName
		if o.Type == contracts.OutcomeNoBatches {
			noOp = true
			if worker, err = tpl.NoBatchesWorker(name); err != nil {
				return nil, err
			}
			zero := json.RawMessage("0")
			cursors = []contracts.CursorConfig{{BatchID: noOpBatchID, StartCursor: zero, EndCursor: zero}}
		} else {
			cursors = o.CursorConfigs // ParseOutcomes checked their batch ids
		}
		dyn, err = tpl.ExpandBatch(name, worker, graph.exists)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, expandError(p.step, err)
	}
	return g.instantiate(p, tpl, graph, dyn, cursors, noOp)
}

// expandError words an expansion's problems at their place in the outcome:
// `step "route": decision_point_outcome.step_names[1]: unknown step "x"`.
func expandError(s store.ClaimedStep, err error) error {
	field := "decision_point_outcome"
	if workflow.StepType(s.Type) == workflow.StepBatchable {
		field = "batch_processing_outcome"
	}
	var ve *workflow.ValidationError
	if !errors.As(err, &ve) {
		return invalidOutcome("step %q: %s: %v", s.Name, field, err)
	}
	msgs := make([]string, len(ve.Problems))
	for i, pr := range ve.Problems {
		msgs[i] = field + "." + pr.Path + ": " + pr.Message
	}
	return invalidOutcome("step %q: %s", s.Name, strings.Join(msgs, "; "))
}

// instantiate makes the rows of an outcome's expansion
// ([workflow.Template.Instantiate]) and adds them to graph.
func (g *grower) instantiate(p *pendingOutcome, tpl *workflow.Template, graph *taskGraph, dyn []workflow.DynamicStep, cursors []contracts.CursorConfig, noOp bool) ([]store.GrowStep, error) {
	cfg := &g.r.cfg
	steps, err := tpl.Instantiate(workflow.Growth{
		StepID: p.step.StepUUID, StepName: p.step.Name, TemplateStep: p.step.TemplateStepName,
		Expansion: dyn, Cursors: cursors, NoOp: noOp, Retry: cfg.RetryDefaults,
		MaxStepsPerOutcome: cfg.MaxStepsPerOutcome, MaxStepsPerTask: cfg.MaxStepsPerTask,
	}, graph)
	if err != nil {
		return nil, err
	}
	out := make([]store.GrowStep, 0, len(steps))
	for _, s := range steps {
		policy, err := json.Marshal(s.Retry)
		if err != nil {
			return nil, fmt.Errorf("runner: encoding retry policy: %w", err)
		}
		out = append(out, store.GrowStep{
			NewStep: store.NewStep{
				StepUUID:         s.ID,
				Name:             s.Name,
				TemplateStepName: s.Def.Name,
				Handler:          s.Def.Handler.Callable,
				Type:             string(s.Def.Type),
				MaxAttempts:      s.Retry.MaxAttempts,
				Retryable:        *s.Retry.Retryable,
				RetryPolicy:      policy,
				TimeoutMs:        s.Def.TimeoutSeconds * 1000,
				Inputs:           s.Inputs,
			},
			TaskUUID:       p.step.TaskUUID,
			Namespace:      p.step.Namespace,
			Priority:       p.step.Priority,
			Parents:        s.Parents,
			PendingParents: s.PendingParents,
		})
	}
	for _, s := range out {
		graph.add(store.TaskStep{
			StepUUID: s.StepUUID, TaskUUID: s.TaskUUID, Name: s.Name, TemplateStepName: s.TemplateStepName,
			Type: s.Type, State: contracts.StepStatePending,
		})
	}
	return out, nil
}

// failWith turns p into a permanent failure of the given type.
func failWith(p *pendingOutcome, err error, now time.Time) {
	kind := contracts.ErrorTypeInvalidOutcome
	if oe, ok := err.(*workflow.OutcomeError); ok {
		kind = oe.Type
	}
	p.result = contracts.Failure(kind, err.Error(), false)
	p.completion = store.Completion{
		StepUUID: p.completion.StepUUID, Attempt: p.completion.Attempt, Epoch: p.completion.Epoch,
		State: contracts.StepStateError, Error: mustJSON(p.result), RunAt: now,
	}
}

// writeGrowing writes the outcomes of steps whose tasks may grow, in one
// transaction: lock the tasks, read the steps of those that grow now, add
// the steps their outcomes create (an outcome that cannot be applied fails
// its step instead), apply the completions, and stop the rest of a
// fail_fast batch whose worker failed. ps is updated with what was written.
func (r *Runner) writeGrowing(ctx context.Context, ps []pendingOutcome) (store.CompleteResult, error) {
	orig := slices.Clone(ps)
	res, err := r.writeGrowingOnce(ctx, ps, nil)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23")) {
		// The database refused the new steps themselves (bad data, not a
		// passing conflict): retrying would fail forever, so fail the
		// outcomes that create steps and write the rest.
		copy(ps, orig)
		res, err = r.writeGrowingOnce(ctx, ps, err)
	}
	if err != nil {
		copy(ps, orig)
	}
	return res, err
}

func (r *Runner) writeGrowingOnce(ctx context.Context, ps []pendingOutcome, refused error) (store.CompleteResult, error) {
	var res store.CompleteResult
	now := r.cfg.Now()
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		tasks := make([]uuid.UUID, 0, len(ps))
		var growing []uuid.UUID
		for i := range ps {
			tasks = append(tasks, ps[i].step.TaskUUID)
			if growsTask(&ps[i]) {
				growing = append(growing, ps[i].step.TaskUUID)
			}
		}
		if err := store.LockTasks(ctx, tx, tasks); err != nil {
			return err
		}
		g := &grower{r: r, graphs: map[uuid.UUID]*taskGraph{}}
		if len(growing) > 0 {
			steps, err := store.TaskSteps(ctx, tx, growing)
			if err != nil {
				return err
			}
			for _, s := range steps {
				graph := g.graphs[s.TaskUUID]
				if graph == nil {
					graph = newTaskGraph()
					g.graphs[s.TaskUUID] = graph
				}
				graph.add(s)
			}
		}
		var adds []store.GrowStep
		for i := range ps {
			p := &ps[i]
			if !growsTask(p) {
				continue
			}
			more, err := g.grow(p, p.tpl)
			if err == nil && refused != nil && len(more) > 0 {
				err = fmt.Errorf("step %q: creating the outcome's steps: %w", p.step.Name, refused)
			}
			if err != nil {
				r.log.Warn("outcome refused; failing the step", "step_uuid", p.step.StepUUID, "task_uuid", p.step.TaskUUID, "err", err)
				failWith(p, err, now)
				continue
			}
			adds = append(adds, more...)
		}
		if err := store.AddSteps(ctx, tx, now, adds); err != nil {
			return err
		}
		cs := make([]store.Completion, len(ps))
		for i := range ps {
			cs[i] = ps[i].completion
		}
		var err error
		if res, err = store.Complete(ctx, tx, r.cfg.WorkerID, now, cs); err != nil {
			return err
		}
		var failed []store.Batch
		for i := range ps {
			p := &ps[i]
			if res.Applied[p.step.StepUUID] == contracts.StepStateError && failureStrategy(p.step) == workflow.FailFast {
				failed = append(failed, store.Batch{TaskUUID: p.step.TaskUUID, TemplateStepName: p.step.TemplateStepName})
				r.log.Info("fail_fast batch: worker failed; cancelling the workers not started", "step_uuid", p.step.StepUUID)
			}
		}
		n, err := store.CancelSiblings(ctx, tx, failed, now)
		if n > 0 {
			r.log.Info("fail_fast batches: cancelled the workers not started", "batches", len(failed), "cancelled", n)
		}
		return err
	})
	return res, err
}
