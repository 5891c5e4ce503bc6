package runner

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner/store"
)

// workerIdle is how long a worker goroutine waits for another step before
// it exits.
const workerIdle = 10 * time.Second

// flight is a claimed step until its outcome is written.
type flight struct {
	step     store.ClaimedStep
	done     bool // the handler returned and its outcome was queued
	released bool // shutdown gave the step back; drop the outcome
}

// dispatcherConfig configures a [dispatcher].
type dispatcherConfig struct {
	// Capacity is the most steps in flight: [Config.MaxConcurrentSteps].
	// Default [MaxConcurrentStepsDefault].
	Capacity int
	// ShutdownTimeout is how long Stop lets in-flight steps finish before
	// giving them back: [Config.ShutdownTimeout]; negative gives back at
	// once. Default [ShutdownTimeoutDefault].
	ShutdownTimeout time.Duration
}

func (c *dispatcherConfig) withDefaults() {
	c.Capacity = cmp.Or(c.Capacity, MaxConcurrentStepsDefault)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, ShutdownTimeoutDefault)
}

// stepExecutor runs one claimed step's handler and returns the outcome to
// write; ctx ends when the runner abandons its handlers.
type stepExecutor interface {
	execute(ctx context.Context, s store.ClaimedStep) pendingOutcome
}

// outcomeSink takes the outcomes to write: the [completer].
type outcomeSink interface {
	add(p pendingOutcome)
	giveBack(steps []store.ClaimedStep)
}

// dispatcher owns the permits (the steps in flight, at most Capacity) and
// the worker goroutines that run claimed steps. A permit is held from the
// claim until the step's outcome is written, not only while its handler
// runs: otherwise, whenever handlers finish faster than outcomes are
// written, claimed steps pile up in the completer without bound (memory,
// and leases that expire before their outcome is written). The claimer
// takes permits with dispatch, the completer returns them with settle,
// which also hands them to the steps its write claimed.
type dispatcher struct {
	cfg   dispatcherConfig
	exec  stepExecutor
	sink  outcomeSink
	stats *stats
	log   *slog.Logger

	mu       sync.Mutex
	inflight map[uuid.UUID]*flight // claimed and not yet written
	active   int                   // handlers running
	peak     int                   // the most ever in flight
	more     bool                  // the last claim was full: more may be waiting
	closed   bool                  // stopping: admit no more steps

	// idle holds the hand-over channels of idle worker goroutines, the
	// most recently idle last.
	idleMu sync.Mutex
	idle   []chan *flight

	handlerCtx      context.Context
	abandonHandlers context.CancelFunc
	idleCtx         context.Context // done: idle workers exit
	retireIdle      context.CancelFunc
	handlers        sync.WaitGroup // one per admitted step
	workers         sync.WaitGroup // worker goroutines, busy or idle
}

func newDispatcher(cfg dispatcherConfig, exec stepExecutor, sink outcomeSink, st *stats, log *slog.Logger) *dispatcher {
	cfg.withDefaults()
	return &dispatcher{cfg: cfg, exec: exec, sink: sink, stats: st, log: log, inflight: map[uuid.UUID]*flight{}}
}

// Start makes the dispatcher ready to run steps; cancelling ctx cancels
// every handler's context.
func (d *dispatcher) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.handlerCtx != nil {
		return errAlreadyStarted
	}
	d.handlerCtx, d.abandonHandlers = context.WithCancel(ctx)
	d.idleCtx, d.retireIdle = context.WithCancel(ctx)
	return nil
}

// close admits no more steps: a write that claimed steps with its
// completions admits them under mu after checking closed (see settle), so
// once close returns none is admitted and Stop's waits see them all.
func (d *dispatcher) close() {
	d.mu.Lock()
	d.closed = true
	retire := d.retireIdle
	d.mu.Unlock()
	if retire != nil {
		retire()
	}
}

// Stop closes the dispatcher, lets running steps finish for up to
// ShutdownTimeout (or until ctx is done), then gives the rest back to the
// sink (attempt not consumed; their late outcome is dropped) and waits for
// every worker.
func (d *dispatcher) Stop(ctx context.Context) error {
	d.close()
	if d.cfg.ShutdownTimeout > 0 {
		waitCtx, cancel := context.WithTimeout(ctx, d.cfg.ShutdownTimeout)
		_ = waitGroup(waitCtx, &d.handlers)
		cancel()
	}
	release := d.releaseUnfinished()
	d.mu.Lock()
	abandon := d.abandonHandlers
	d.mu.Unlock()
	if abandon != nil {
		abandon()
	}
	d.Wait()
	d.sink.giveBack(release)
	if len(release) > 0 {
		d.log.Info("released leases of unfinished steps", "count", len(release))
	}
	return nil
}

// Wait blocks until every handler and worker goroutine has exited.
func (d *dispatcher) Wait() {
	d.handlers.Wait()
	d.workers.Wait()
}

// releaseUnfinished marks the steps whose handler still runs released and
// returns them.
func (d *dispatcher) releaseUnfinished() []store.ClaimedStep {
	d.mu.Lock()
	defer d.mu.Unlock()
	var release []store.ClaimedStep
	for _, f := range d.inflight {
		if !f.done && !f.released {
			f.released = true
			release = append(release, f.step)
		}
	}
	return release
}

// free returns how many steps may be claimed now.
func (d *dispatcher) free() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg.Capacity - len(d.inflight)
}

// claimed records whether the last claim was full (more may be waiting,
// so the next freed permits should claim at once).
func (d *dispatcher) claimed(full bool) {
	d.mu.Lock()
	d.more = full
	d.mu.Unlock()
}

// running returns the number of handlers running.
func (d *dispatcher) running() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.active
}

// held counts the permits that cs's steps hold: those whose claim is the
// one in flight.
func (d *dispatcher) held(cs []store.Completion) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, x := range cs {
		if f := d.inflight[x.StepUUID]; f != nil && f.step.Epoch == x.Epoch {
			n++
		}
	}
	return n
}

// leases returns the leases of the steps in flight and not given back.
func (d *dispatcher) leases() []store.Lease {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make([]store.Lease, 0, len(d.inflight))
	for id, f := range d.inflight {
		if !f.released {
			ids = append(ids, store.Lease{StepUUID: id, Epoch: f.step.Epoch})
		}
	}
	return ids
}

// load returns the steps in flight, the handlers running and the peak in
// flight, for [Runner.Stats].
func (d *dispatcher) load() (inflight, active, peak int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.inflight), d.active, d.peak
}

// dispatch runs one claimed step on a worker goroutine: the one idle for
// the shortest time if any, else a new one. The permit it takes is
// returned once the outcome is written (see settle).
func (d *dispatcher) dispatch(s store.ClaimedStep) {
	d.mu.Lock()
	f := d.admit(s)
	d.mu.Unlock()
	d.launch(f)
}

// settle returns the permits of a written batch and, in the same critical
// section, admits the steps the write claimed into them. What cannot be
// admitted (the dispatcher is closed, or fewer permits are free than
// claimed, which the claim's limit prevents) is refused and must be given
// back. more reports whether the last claim was full. The caller launches
// the admitted steps.
func (d *dispatcher) settle(batch []pendingOutcome, claimed []store.ClaimedStep) (admitted []*flight, refused []store.ClaimedStep, more bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range batch {
		p := &batch[i]
		// Only this claim's permit: the step may be claimed again already
		// (a yield, or a re-sent write), and that claim holds its own.
		if f := d.inflight[p.completion.StepUUID]; f != nil && f.step.Epoch == p.step.Epoch {
			delete(d.inflight, p.completion.StepUUID)
		}
	}
	free := d.cfg.Capacity - len(d.inflight)
	for i, s := range claimed {
		if d.closed || i >= free {
			refused = append(refused, s)
			continue
		}
		admitted = append(admitted, d.admit(s))
	}
	return admitted, refused, d.more
}

// admit takes a permit for a claimed step; mu must be held. The caller
// then launches it.
func (d *dispatcher) admit(s store.ClaimedStep) *flight {
	f := &flight{step: s}
	d.active++
	d.inflight[s.StepUUID] = f
	d.peak = max(d.peak, len(d.inflight))
	d.handlers.Add(1)
	return f
}

// launch runs an admitted step on a worker goroutine.
func (d *dispatcher) launch(f *flight) {
	d.stats.claimed.Add(1)
	if f.step.Rescued {
		d.stats.rescued.Add(1)
	}
	d.idleMu.Lock()
	if n := len(d.idle); n > 0 {
		ch := d.idle[n-1]
		d.idle = d.idle[:n-1]
		d.idleMu.Unlock()
		ch <- f // buffered: never blocks
		return
	}
	d.idleMu.Unlock()
	d.workers.Add(1)
	go d.worker(f)
}

// worker runs steps one after another until it has been idle for
// workerIdle or the dispatcher closes. Reusing goroutines keeps the stacks
// the call path grew (an HTTP call needs tens of KB): a fresh goroutine per
// step spent about 7% of the process's CPU copying stacks as they grew.
// Idle workers are reused last-in first-out, so under a steady load a
// small set stays busy and the rest exit.
func (d *dispatcher) worker(f *flight) {
	defer d.workers.Done()
	next := make(chan *flight, 1)
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		d.run(f)
		d.handlers.Done()
		d.idleMu.Lock()
		d.idle = append(d.idle, next)
		d.idleMu.Unlock()
		idle.Reset(workerIdle)
		select {
		case f = <-next:
			continue
		case <-idle.C:
		case <-d.idleCtx.Done():
		}
		if !d.retire(next) {
			// dispatch took this worker just now: run what it sent.
			f = <-next
			continue
		}
		return
	}
}

// retire removes an idle worker's channel from the idle list, reporting
// false when dispatch already took it (a step is on its way).
func (d *dispatcher) retire(next chan *flight) bool {
	d.idleMu.Lock()
	defer d.idleMu.Unlock()
	for i, ch := range d.idle {
		if ch == next {
			d.idle = append(d.idle[:i], d.idle[i+1:]...)
			return true
		}
	}
	return false
}

// run executes one step and queues its outcome, unless Stop gave the step
// back meanwhile.
func (d *dispatcher) run(f *flight) {
	p := d.exec.execute(d.handlerCtx, f.step)
	d.mu.Lock()
	d.active--
	released := f.released
	if !released {
		f.done = true
	}
	d.mu.Unlock()
	if !released {
		d.sink.add(p)
	}
}

// execute runs s's handler and decides its outcome: the runner's
// [stepExecutor].
func (r *Runner) execute(ctx context.Context, s store.ClaimedStep) pendingOutcome {
	started := r.cfg.Now()
	r.cfg.Observer.StepClaimed(s.Namespace, s.Handler, started.Sub(s.EnqueuedAt))
	tpl, res := r.template(ctx, s)
	if tpl != nil {
		res = r.invoke(ctx, s, tpl)
	}
	c := decideOutcome(s, res, r.cfg.Now(), r.cfg.Rand, r.cfg.MaxYieldsPerStep)
	p := pendingOutcome{completion: c, step: s, result: res, started: started}
	if tpl != nil && tpl.grows {
		p.tpl = tpl.tpl
	}
	return p
}

// template loads s's task template, or returns the failure to record.
func (r *Runner) template(ctx context.Context, s store.ClaimedStep) (*cachedTemplate, contracts.StepResult) {
	if s.Attempt > s.MaxAttempts {
		// The lease of the last attempt expired (its runner died): no
		// attempts are left to run it again.
		return nil, contracts.Failure(contracts.ErrorTypeTimeout, "the lease of the last attempt expired before it finished (runner lost)", false)
	}
	tpl, err := r.tpls.get(ctx, s.TemplateID)
	if err != nil {
		if ctx.Err() != nil {
			return nil, contracts.Failure(contracts.ErrorTypeHandler, "runner stopping", true)
		}
		return nil, contracts.Failure(contracts.ErrorTypeHandler, "loading the task template: "+err.Error(), true)
	}
	return tpl, contracts.StepResult{}
}

// invoke builds the envelope and calls the handler, turning every problem
// into a failed result.
func (r *Runner) invoke(ctx context.Context, s store.ClaimedStep, tpl *cachedTemplate) contracts.StepResult {
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
	ctx, cancel := context.WithTimeout(ctx, timeout)
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
