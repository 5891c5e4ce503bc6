package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// outcomeError fails the step whose outcome could not be applied; it is
// never retried, since the same outcome would fail again.
type outcomeError struct {
	errorType string
	msg       string
}

func (e *outcomeError) Error() string { return e.msg }

func invalidOutcome(format string, args ...any) error {
	return &outcomeError{errorType: contracts.ErrorTypeInvalidOutcome, msg: fmt.Sprintf(format, args...)}
}

// growsTask reports whether an outcome may add steps to its task: a
// successful decision or batchable step.
func growsTask(p *pendingOutcome) bool {
	t := workflow.StepType(p.step.Type)
	return p.completion.State == contracts.StepStateComplete && (t == workflow.StepDecision || t == workflow.StepBatchable)
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
			if worker, err = defaultWorker(tpl, name); err != nil {
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

// defaultWorker is the worker a no_batches outcome instantiates: the one the
// batchable step's batch_config names, else its only batch_worker child.
func defaultWorker(tpl *workflow.Template, batchable string) (string, error) {
	if s := tpl.Step(batchable); s != nil && s.BatchConfig != nil && s.BatchConfig.WorkerTemplate != "" {
		return s.BatchConfig.WorkerTemplate, nil
	}
	var found []string
	for _, s := range tpl.Steps {
		if s.Type == workflow.StepBatchWorker && slices.Contains(s.Dependencies, batchable) {
			found = append(found, s.Name)
		}
	}
	if len(found) != 1 {
		return "", invalidOutcome("no_batches: batchable step %q names no batch_config.worker_template and has %d batch_worker steps", batchable, len(found))
	}
	return found[0], nil
}

// instantiate builds the rows for dyn. A batch outcome's first element is
// the worker template, made once per cursor; a parent naming it means every
// instance.
func (g *grower) instantiate(p *pendingOutcome, tpl *workflow.Template, graph *taskGraph, dyn []workflow.DynamicStep, cursors []contracts.CursorConfig, noOp bool) ([]store.GrowStep, error) {
	cfg := &g.r.cfg
	total := len(dyn)
	if cursors != nil && total > 0 {
		total += len(cursors) - 1
	}
	if total > cfg.MaxStepsPerOutcome {
		return nil, &outcomeError{contracts.ErrorTypeStepLimit, fmt.Sprintf(
			"step %q: the outcome would create %d steps; the limit per outcome is %d", p.step.Name, total, cfg.MaxStepsPerOutcome)}
	}
	if n := len(graph.steps) + total; n > cfg.MaxStepsPerTask {
		return nil, &outcomeError{contracts.ErrorTypeStepLimit, fmt.Sprintf(
			"step %q: the outcome would bring the task to %d steps; the limit per task is %d", p.step.Name, n, cfg.MaxStepsPerTask)}
	}

	var batchMeta contracts.BatchMetadata
	if cursors != nil {
		bc := batchConfig(tpl, p.step.TemplateStepName, dyn[0].Name)
		batchMeta = contracts.BatchMetadata{CursorField: bc.CursorField, FailureStrategy: string(bc.FailureStrategy)}
	}
	type added struct {
		ids []uuid.UUID
	}
	fresh := map[string]*added{}
	// Names added by this outcome: the graph learns them only once the whole
	// outcome is valid, so a refused one leaves no trace for the next.
	newNames := map[string]bool{}
	done := func(state contracts.StepState) bool {
		return state == contracts.StepStateComplete || state == contracts.StepStateResolvedManually
	}
	var out []store.GrowStep
	for k, d := range dyn {
		def := tpl.Step(d.Name)
		rt := def.Retry.WithDefaults(cfg.RetryDefaults)
		policy, err := json.Marshal(rt)
		if err != nil {
			return nil, fmt.Errorf("runner: encoding retry policy: %w", err)
		}
		// Parents are the same for every instance.
		var parents []uuid.UUID
		pending := 0
		for _, pn := range d.Parents {
			if a := fresh[pn]; a != nil {
				for _, id := range a.ids {
					parents = append(parents, id)
					pending++
				}
				continue
			}
			for _, i := range graph.byTpl[pn] {
				s := &graph.steps[i]
				parents = append(parents, s.StepUUID)
				if s.StepUUID == p.step.StepUUID || !done(s.State) {
					// The outcome's own step completes in this transaction;
					// its completion counts it down like any other parent.
					pending++
				}
			}
		}

		type instance struct {
			name   string
			inputs []byte
		}
		instances := []instance{{name: d.Name}}
		if k == 0 && cursors != nil {
			instances = instances[:0]
			for _, c := range cursors {
				in, err := json.Marshal(contracts.BatchWorkerInputs{Cursor: c, BatchMetadata: batchMeta, IsNoOp: noOp})
				if err != nil {
					return nil, invalidOutcome("step %q: cursor %q does not encode: %v", p.step.Name, c.BatchID, err)
				}
				instances = append(instances, instance{name: d.Name + "_" + c.BatchID, inputs: in})
			}
		}
		a := &added{}
		for _, in := range instances {
			if graph.names[in.name] || newNames[in.name] {
				return nil, invalidOutcome("step %q: the task already has a step named %q", p.step.Name, in.name)
			}
			newNames[in.name] = true
			id := uuid.Must(uuid.NewV7())
			a.ids = append(a.ids, id)
			out = append(out, store.GrowStep{
				NewStep: store.NewStep{
					StepUUID:         id,
					Name:             in.name,
					TemplateStepName: d.Name,
					Handler:          def.Handler.Callable,
					Type:             string(def.Type),
					MaxAttempts:      rt.MaxAttempts,
					Retryable:        *rt.Retryable,
					RetryPolicy:      policy,
					TimeoutMs:        def.TimeoutSeconds * 1000,
					Inputs:           in.inputs,
				},
				TaskUUID:       p.step.TaskUUID,
				Namespace:      p.step.Namespace,
				Priority:       p.step.Priority,
				Parents:        parents,
				PendingParents: pending,
			})
		}
		fresh[d.Name] = a
	}
	for _, s := range out {
		graph.add(store.TaskStep{
			StepUUID: s.StepUUID, TaskUUID: s.TaskUUID, Name: s.Name, TemplateStepName: s.TemplateStepName,
			Type: s.Type, State: contracts.StepStatePending,
		})
	}
	return out, nil
}

// batchConfig is the batch_config that applies to a batch: the batchable
// step's, else the worker's, else Tasker's defaults.
func batchConfig(tpl *workflow.Template, batchable, worker string) workflow.BatchConfig {
	for _, name := range []string{batchable, worker} {
		if s := tpl.Step(name); s != nil && s.BatchConfig != nil {
			return *s.BatchConfig
		}
	}
	return workflow.BatchConfig{CursorField: "id", FailureStrategy: workflow.ContinueOnFailure}
}

// failWith turns p into a permanent failure of the given type.
func failWith(p *pendingOutcome, err error, now time.Time) {
	kind := contracts.ErrorTypeInvalidOutcome
	if oe, ok := err.(*outcomeError); ok {
		kind = oe.errorType
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
