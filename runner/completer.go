package runner

import (
	"context"
	"sync"
	"time"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// Event reports one step outcome after it was written.
type Event struct {
	Step store.ClaimedStep
	// State is the step's new state: complete, waiting_for_retry, error, or
	// enqueued (lease released at shutdown).
	State string
	// Stale is true when the fence refused the write (the lease was lost).
	Stale  bool
	Result contracts.StepResult
	// Started and Finished bound the handler call.
	Started, Finished time.Time
	// TaskState is set when this write finished the task: complete or
	// blocked_by_failures.
	TaskState string
}

type pendingOutcome struct {
	completion store.Completion
	step       store.ClaimedStep
	result     contracts.StepResult
	started    time.Time
	finished   time.Time
	// tpl is set when the step's task may grow (see writeGrowing).
	tpl *workflow.Template
}

// completer buffers outcomes and writes them in batches: one statement per
// batch (store.Complete), up to FlushWriters batches at once. While other
// handlers are running, a batch waits at most FlushInterval for company; it
// holds at most FlushBatch outcomes; under load, outcomes that arrive during
// a write form the next batch.
type completer struct {
	r      *Runner
	signal chan struct{}
	stopCh chan struct{}
	done   chan struct{}
	buf    []pendingOutcome // guarded by r.mu
	// eventMu keeps OnEvent calls one at a time across parallel writes.
	eventMu sync.Mutex
}

func newCompleter(r *Runner) *completer {
	return &completer{r: r, signal: make(chan struct{}, 1), stopCh: make(chan struct{}), done: make(chan struct{})}
}

func (c *completer) start(ctx context.Context) {
	go func() {
		defer close(c.done)
		c.loop(ctx)
	}()
}

func (c *completer) add(p pendingOutcome) {
	if p.finished.IsZero() {
		p.finished = c.r.cfg.Now()
	}
	c.r.mu.Lock()
	c.buf = append(c.buf, p)
	c.r.mu.Unlock()
	c.poke()
}

// stop writes everything buffered and ends the loop.
func (c *completer) stop() error {
	close(c.stopCh)
	<-c.done
	return nil
}

func (c *completer) loop(ctx context.Context) {
	var (
		timer  *time.Timer
		writes sync.WaitGroup
		// slots bounds the writes in flight. A second write starts only
		// with a full batch: while one is in flight the next batch grows
		// (group commit), so parallel writes overlap commit waits without
		// shrinking batches.
		slots = make(chan struct{}, c.r.cfg.FlushWriters)
	)
	defer writes.Wait()
	for {
		stopping := false
		select {
		case <-ctx.Done():
			return
		case <-c.stopCh:
			stopping = true
		case <-c.signal:
		}
		if !stopping && c.r.cfg.FlushInterval > 0 && c.shouldWait() {
			// Give concurrent outcomes a moment to share this write.
			if timer == nil {
				timer = time.NewTimer(c.r.cfg.FlushInterval)
			} else {
				timer.Reset(c.r.cfg.FlushInterval)
			}
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-c.stopCh:
				stopping = true
			case <-timer.C:
			}
		}
		if stopping {
			writes.Wait()
			for {
				batch := c.take()
				if len(batch) == 0 || !c.flush(ctx, batch) {
					return
				}
			}
		}
		for len(slots) == 0 || c.full() {
			batch := c.take()
			if len(batch) == 0 {
				break
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			writes.Add(1)
			go func() {
				defer writes.Done()
				c.flush(ctx, batch) // false: ctx ended, which the loop sees
				<-slots
				c.poke() // what waited for this write may go now
			}()
		}
	}
}

// poke wakes the loop.
func (c *completer) poke() {
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// full reports whether a whole batch is waiting.
func (c *completer) full() bool {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	return len(c.buf) >= c.r.cfg.FlushBatch
}

// shouldWait reports whether a write is worth delaying for company: the
// batch is not full and handlers are still running, so more outcomes are
// on their way. With nothing running, waiting would only add latency.
func (c *completer) shouldWait() bool {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	// An empty buffer has nothing to delay: waiting then would only hold
	// back, unseen, the outcome that arrives next (the loop is woken with
	// nothing buffered when a write ends while handlers run).
	return len(c.buf) > 0 && len(c.buf) < c.r.cfg.FlushBatch && c.r.active > 0
}

func (c *completer) take() []pendingOutcome {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	n := min(len(c.buf), c.r.cfg.FlushBatch)
	if n == 0 {
		return nil
	}
	batch := make([]pendingOutcome, n)
	copy(batch, c.buf)
	c.buf = append(c.buf[:0], c.buf[n:]...)
	return batch
}

// retry runs write until it succeeds or ctx ends (reported as false),
// backing off on transient failures: deadlocks between runners, a
// database restart. A failed send may still have committed (the
// connection died before the reply): the fence refuses such a write when
// it is sent again, and landed finds out which of the completions sent
// (returned by sent) the earlier send wrote.
func (c *completer) retry(ctx context.Context, n int, write func() (store.CompleteResult, error), sent func() []store.Completion) (store.CompleteResult, bool) {
	delay := 10 * time.Millisecond
	for resent := false; ; resent = true {
		res, err := write()
		if err == nil {
			if resent && res.Stale > 0 {
				c.landed(ctx, &res, sent())
			}
			return res, true
		}
		if ctx.Err() != nil {
			return res, false
		}
		c.r.log.Warn("writing step outcomes; retrying", "count", n, "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return res, false
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// landed counts as applied the completions of a re-sent write that the
// fence refused because an earlier send of them committed, so that they
// are counted once and not reported stale. What that commit reported
// (children made ready, tasks finished) is lost; a wake-up covers the
// children. When the check fails they stay stale.
func (c *completer) landed(ctx context.Context, res *store.CompleteResult, cs []store.Completion) {
	var refused []store.Completion
	for _, x := range cs {
		if _, ok := res.Applied[x.StepUUID]; !ok {
			refused = append(refused, x)
		}
	}
	found, err := store.LandedCompletions(ctx, c.r.pool, refused)
	if err != nil {
		c.r.log.Warn("checking outcomes whose first write may have committed; reporting them stale", "count", len(refused), "err", err)
		return
	}
	for id, state := range found {
		res.Applied[id] = state
		res.Stale--
	}
	if len(found) > 0 {
		c.r.log.Info("outcomes written by an earlier send whose reply was lost", "count", len(found))
		c.r.wake()
	}
}

// claimParams returns the claim that rides on writing cs: as many steps as
// cs holds permits (the permits pass from the written steps to the claimed
// ones, so the runner never holds more than MaxConcurrentSteps), none when
// the runner stops claiming or the feature is off.
func (c *completer) claimParams(cs []store.Completion) store.ClaimParams {
	r := c.r
	if r.cfg.DisableClaimWithCompletions || r.stopped.Load() || r.claimCtx.Err() != nil {
		return store.ClaimParams{}
	}
	r.mu.Lock()
	namespaces := r.namespaces
	r.mu.Unlock()
	return store.ClaimParams{Namespaces: namespaces, Limit: c.handed(cs), LeaseFor: r.cfg.LeaseFor}
}

// handed counts the permits that cs's steps hold: those whose claim is the
// one in flight.
func (c *completer) handed(cs []store.Completion) int {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	n := 0
	for _, x := range cs {
		if f := c.r.inflight[x.StepUUID]; f != nil && f.step.Epoch == x.Epoch {
			n++
		}
	}
	return n
}

// releaseLost gives back what failed sends of a write may have claimed:
// such a send may have committed, leasing steps the runner never saw,
// which would otherwise wait for their lease to expire.
func (c *completer) releaseLost(ctx context.Context, claimedAt []time.Time) {
	if len(claimedAt) == 0 {
		return
	}
	r := c.r
	n, err := store.ReleaseLostClaims(ctx, r.pool, r.cfg.WorkerID, claimedAt, r.cfg.Now())
	if err != nil {
		r.log.Warn("releasing steps claimed by writes whose reply was lost; their leases will expire", "err", err)
		return
	}
	if n > 0 {
		r.log.Info("released steps claimed by writes whose reply was lost", "count", n)
		r.stats.released.Add(int64(n))
		r.wake()
	}
}

// handOver admits the steps a write claimed into the permits its
// completions just freed; r.mu must be held, and the write's permits
// released first. What cannot be admitted (the runner is stopping, or
// fewer permits are free than claimed, which the claim's limit prevents)
// is refused and must be given back.
func (c *completer) handOver(claimed []store.ClaimedStep) (admitted []*flight, refused []store.ClaimedStep) {
	r := c.r
	if len(claimed) == 0 {
		return nil, nil
	}
	free := r.cfg.MaxConcurrentSteps - len(r.inflight)
	for i, s := range claimed {
		if r.stopped.Load() || i >= free {
			refused = append(refused, s)
			continue
		}
		admitted = append(admitted, r.admit(s))
	}
	r.stats.claimedWithCompletions.Add(int64(len(admitted)))
	return admitted, refused
}

// giveBack releases the leases of claimed steps that were not admitted
// (attempt not consumed).
func (c *completer) giveBack(steps []store.ClaimedStep) {
	for _, s := range steps {
		c.add(pendingOutcome{step: s, completion: store.Completion{
			StepUUID: s.StepUUID, Attempt: s.Attempt, Epoch: s.Epoch, State: contracts.StepStateEnqueued, RunAt: c.r.cfg.Now(),
		}})
	}
}

// flush writes one batch, retrying transient failures (deadlocks between
// runners, a database restart) until it succeeds or ctx ends. It reports
// false when ctx ended: the runner was hard-stopped and leases will expire.
func (c *completer) flush(ctx context.Context, batch []pendingOutcome) bool {
	r := c.r
	began := time.Now()
	// Outcomes are large: the static ones are written from their
	// completions alone, and only growing tasks' outcomes are copied.
	var growing []pendingOutcome
	cs := make([]store.Completion, 0, len(batch))
	for i := range batch {
		if batch[i].tpl != nil {
			growing = append(growing, batch[i])
		} else {
			cs = append(cs, batch[i].completion)
		}
	}
	var (
		res     store.CompleteResult
		claimed []store.ClaimedStep
		claim   store.ClaimParams
		lost    []time.Time // claim times of sends whose outcome is unknown
	)
	if len(cs) > 0 {
		claim = c.claimParams(cs)
		part, ok := c.retry(ctx, len(cs), func() (store.CompleteResult, error) {
			var err error
			var part store.CompleteResult
			claim.Now = r.cfg.Now()
			part, claimed, err = store.CompleteAndClaim(ctx, r.pool, r.cfg.WorkerID, claim.Now, cs, claim)
			if err != nil && claim.Limit > 0 {
				lost = append(lost, claim.Now)
			}
			return part, err
		}, func() []store.Completion { return cs })
		if !ok {
			return false
		}
		res = part
	}
	if len(growing) > 0 {
		part, ok := c.retry(ctx, len(growing), func() (store.CompleteResult, error) {
			return r.writeGrowing(ctx, growing)
		}, func() []store.Completion {
			out := make([]store.Completion, len(growing))
			for i := range growing {
				out[i] = growing[i].completion
			}
			return out
		})
		if !ok {
			return false
		}
		res.Merge(part)
		// writeGrowing may have turned outcomes into failures.
		j := 0
		for i := range batch {
			if batch[i].tpl != nil {
				batch[i] = growing[j]
				j++
			}
		}
	}
	r.stats.flushes.Add(1)
	r.stats.stale.Add(int64(res.Stale))
	r.observeFlush(batch, res, time.Since(began))

	var earliestRetry time.Time
	// Children the write made ready and did not claim itself (a claim
	// that rode on it takes them first unless other steps come first by
	// priority): claim them now rather than wait for our own NOTIFY, which
	// announces them anyway. Waking whenever the riding claim was full
	// sent a mostly empty claim query after almost every write at light
	// load.
	ready := res.Enqueued > len(claimed)
	r.mu.Lock()
	for _, p := range batch {
		// Only this claim's permit: the step may be claimed again already
		// (a yield, or a re-sent write), and that claim holds its own.
		if f := r.inflight[p.completion.StepUUID]; f != nil && f.step.Epoch == p.step.Epoch {
			delete(r.inflight, p.completion.StepUUID)
		}
		// A yielded step is claimable again at once.
		ready = ready || len(p.completion.Checkpoint) > 0 && res.Applied[p.completion.StepUUID] == contracts.StepStateEnqueued
	}
	admitted, refused := c.handOver(claimed)
	more := r.more
	r.mu.Unlock()
	for _, f := range admitted {
		r.launch(f)
	}
	c.giveBack(refused)
	if more || ready {
		// Permits were freed and the last claim was full, or steps are
		// ready: claim now rather than wait for our own NOTIFY (and before
		// the events below, which the next steps need not wait for).
		r.wake()
	}
	for _, p := range batch {
		state, applied := res.Applied[p.completion.StepUUID]
		if applied {
			switch state {
			case contracts.StepStateComplete:
				r.stats.completed.Add(1)
			case contracts.StepStateWaitingForRetry:
				r.stats.retried.Add(1)
				if earliestRetry.IsZero() || p.completion.RunAt.Before(earliestRetry) {
					earliestRetry = p.completion.RunAt
				}
			case contracts.StepStateError:
				r.stats.failed.Add(1)
			case contracts.StepStateEnqueued:
				r.stats.released.Add(1)
				if p.completion.RunAt.After(p.finished) && (earliestRetry.IsZero() || p.completion.RunAt.Before(earliestRetry)) {
					earliestRetry = p.completion.RunAt
				}
			}
		}
		if r.cfg.OnEvent != nil {
			c.eventMu.Lock()
			r.cfg.OnEvent(Event{
				Step: p.step, State: string(p.completion.State), Stale: !applied, Result: p.result,
				Started: p.started, Finished: p.finished, TaskState: string(res.TasksFinished[p.step.TaskUUID]),
			})
			c.eventMu.Unlock()
		}
	}
	if !earliestRetry.IsZero() {
		r.scheduleWake(earliestRetry)
	}
	c.releaseLost(ctx, lost)
	return true
}
