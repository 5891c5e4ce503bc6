package runner

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner/store"
)

// workerIdle is how long a worker goroutine waits for another step before
// it exits.
const workerIdle = 10 * time.Second

// dispatch runs one claimed step on a worker goroutine: the one idle for
// the shortest time if any, else a new one. The permit it takes is
// returned once the outcome is written (see [Runner.freePermits]).
func (r *Runner) dispatch(s store.ClaimedStep) {
	r.mu.Lock()
	f := r.admit(s)
	r.mu.Unlock()
	r.launch(f)
}

// admit takes a permit for a claimed step; r.mu must be held. The caller
// then launches it.
func (r *Runner) admit(s store.ClaimedStep) *flight {
	f := &flight{step: s}
	r.active++
	r.inflight[s.StepUUID] = f
	r.peakInFlight = max(r.peakInFlight, len(r.inflight))
	r.handlers.Add(1)
	return f
}

// launch runs an admitted step on a worker goroutine.
func (r *Runner) launch(f *flight) {
	s := f.step
	r.stats.claimed.Add(1)
	if s.Rescued {
		r.stats.rescued.Add(1)
	}
	r.idleMu.Lock()
	if n := len(r.idle); n > 0 {
		ch := r.idle[n-1]
		r.idle = r.idle[:n-1]
		r.idleMu.Unlock()
		ch <- f // buffered: never blocks
		return
	}
	r.idleMu.Unlock()
	r.workers.Add(1)
	go r.worker(f)
}

// worker runs steps one after another until it has been idle for
// workerIdle or claiming stops. Reusing goroutines keeps the stacks the
// call path grew (an HTTP call needs tens of KB): a fresh goroutine per
// step spent about 7% of the process's CPU copying stacks as they grew.
// Idle workers are reused last-in first-out, so under a steady load a
// small set stays busy and the rest exit.
func (r *Runner) worker(f *flight) {
	defer r.workers.Done()
	next := make(chan *flight, 1)
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		r.run(f)
		r.handlers.Done()
		r.idleMu.Lock()
		r.idle = append(r.idle, next)
		r.idleMu.Unlock()
		idle.Reset(workerIdle)
		select {
		case f = <-next:
			continue
		case <-idle.C:
		case <-r.claimCtx.Done():
		}
		if !r.retire(next) {
			// dispatch took this worker just now: run what it sent.
			f = <-next
			continue
		}
		return
	}
}

// retire removes an idle worker's channel from the idle list, reporting
// false when dispatch already took it (a step is on its way).
func (r *Runner) retire(next chan *flight) bool {
	r.idleMu.Lock()
	defer r.idleMu.Unlock()
	for i, ch := range r.idle {
		if ch == next {
			r.idle = append(r.idle[:i], r.idle[i+1:]...)
			return true
		}
	}
	return false
}

func (r *Runner) run(f *flight) {
	s := f.step
	started := r.cfg.Now()
	r.cfg.Observer.StepClaimed(s.Namespace, s.Handler, started.Sub(s.EnqueuedAt))
	tpl, res := r.template(s)
	if tpl != nil {
		res = r.invoke(s, tpl)
	}
	c := decideOutcome(s, res, r.cfg.Now(), r.cfg.Rand, r.cfg.MaxYieldsPerStep)

	r.mu.Lock()
	r.active--
	released := f.released
	if !released {
		f.done = true
	}
	r.mu.Unlock()
	if released {
		return
	}
	p := pendingOutcome{completion: c, step: s, result: res, started: started}
	if tpl != nil && tpl.grows {
		p.tpl = tpl.tpl
	}
	r.completer.add(p)
}

// template loads s's task template, or returns the failure to record.
func (r *Runner) template(s store.ClaimedStep) (*cachedTemplate, contracts.StepResult) {
	if s.Attempt > s.MaxAttempts {
		// The lease of the last attempt expired (its runner died): no
		// attempts are left to run it again.
		return nil, contracts.Failure(contracts.ErrorTypeTimeout, "the lease of the last attempt expired before it finished (runner lost)", false)
	}
	tpl, err := r.tpls.get(r.handlerCtx, s.TemplateID)
	if err != nil {
		if r.handlerCtx.Err() != nil {
			return nil, contracts.Failure(contracts.ErrorTypeHandler, "runner stopping", true)
		}
		return nil, contracts.Failure(contracts.ErrorTypeHandler, "loading the task template: "+err.Error(), true)
	}
	return tpl, contracts.StepResult{}
}

// invoke builds the envelope and calls the handler, turning every problem
// into a failed result.
func (r *Runner) invoke(s store.ClaimedStep, tpl *cachedTemplate) contracts.StepResult {
	if noOpWorker(s) {
		return contracts.StepResult{Success: true, Status: contracts.StatusCompleted, Result: json.RawMessage(`{"no_op":true}`)}
	}
	env := buildEnvelope(s, tpl)
	inv, ok := r.cfg.Handlers.Resolve(s.Namespace, env.StepDefinition.Handler.Callable)
	if !ok {
		return contracts.Failure(contracts.ErrorTypeNotFound, "no handler registered for callable \""+env.StepDefinition.Handler.Callable+"\"", true)
	}
	timeout := r.cfg.StepTimeout
	if s.TimeoutMs > 0 {
		timeout = time.Duration(s.TimeoutMs) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(r.handlerCtx, timeout)
	defer cancel()
	return inv.Invoke(ctx, env)
}

func buildEnvelope(s store.ClaimedStep, tpl *cachedTemplate) *contracts.StepEnvelope {
	env := &contracts.StepEnvelope{
		EventID: uuid.Must(uuid.NewV7()).String(),
		Task: contracts.TaskInfo{
			TaskUUID:      s.TaskUUID.String(),
			Namespace:     s.Namespace,
			Name:          s.TemplateName,
			Version:       s.TemplateVersion,
			Context:       s.Context,
			CorrelationID: s.CorrelationID.String(),
			Priority:      s.Priority,
			Tags:          s.Tags,
		},
		Step: contracts.StepInfo{
			StepUUID:         s.StepUUID.String(),
			Name:             s.Name,
			TemplateStepName: s.TemplateStepName,
			Attempts:         s.Attempt,
			MaxAttempts:      s.MaxAttempts,
			Retryable:        s.Retryable,
			Inputs:           s.Inputs,
			Checkpoint:       s.Checkpoint,
		},
		StepDefinition: contracts.StepDefinition{
			Handler:        contracts.HandlerDefinition{Callable: s.Handler},
			TimeoutSeconds: s.TimeoutMs / 1000,
		},
		DependencyResults: make(map[string]contracts.StepResult, len(s.DependencyResults)),
	}
	if s.ParentCorrelationID.Valid {
		env.Task.ParentCorrelationID = s.ParentCorrelationID.UUID.String()
	}
	if env.Task.Tags == nil {
		env.Task.Tags = []string{}
	}
	if def := tpl.tpl.Step(s.TemplateStepName); def != nil {
		env.StepDefinition.Handler.Method = def.Handler.Method
		env.StepDefinition.Handler.Initialization = def.Handler.Initialization
		env.StepDefinition.Dependencies = def.Dependencies
	}
	if env.StepDefinition.Dependencies == nil {
		env.StepDefinition.Dependencies = []string{}
	}
	for name, raw := range s.DependencyResults {
		var sr contracts.StepResult
		if err := json.Unmarshal(raw, &sr); err != nil || (!sr.Success && sr.Result == nil && sr.Error == nil) {
			// A manually resolved step may hold any JSON: hand it over as
			// the result of a success.
			sr = contracts.StepResult{Success: true, Status: contracts.StatusCompleted, Result: raw}
		}
		env.DependencyResults[name] = sr
	}
	return env
}
