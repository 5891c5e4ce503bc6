package runner

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

type pendingOutcome struct {
	completion store.Completion
	step       store.ClaimedStep
	result     contracts.StepResult
	started    time.Time
	finished   time.Time
	// tpl is set when the step's task may grow (see writeGrowing).
	tpl *workflow.Template
}

// completerConfig configures a [completer]; zero values take the defaults
// of the matching [Config] fields.
type completerConfig struct {
	// FlushInterval, FlushBatch and FlushWriters: see [Config]. Defaults
	// [FlushIntervalDefault], [FlushBatchDefault], [FlushWritersDefault].
	FlushInterval time.Duration
	FlushBatch    int
	FlushWriters  int
	// ClaimWithCompletions lets writes claim the next steps (see
	// [Config.DisableClaimWithCompletions]); LeaseFor is their lease.
	// Default [LeaseForDefault].
	ClaimWithCompletions bool
	LeaseFor             time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
	// OnEvent and Observer: see [Config]. Observer defaults to [NopObserver].
	OnEvent  func(Event)
	Observer Observer
}

func (c *completerConfig) withDefaults() {
	c.FlushInterval = cmp.Or(c.FlushInterval, FlushIntervalDefault)
	c.FlushBatch = cmp.Or(c.FlushBatch, FlushBatchDefault)
	c.FlushWriters = cmp.Or(c.FlushWriters, FlushWritersDefault)
	c.LeaseFor = cmp.Or(c.LeaseFor, LeaseForDefault)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Observer == nil {
		c.Observer = NopObserver{}
	}
}

// completerPermits is what the completer needs of the permits (the
// [dispatcher]): how many a write's steps hold, handing them over when it
// is written, launching what its claim admitted, and whether handlers run.
type completerPermits interface {
	held(cs []store.Completion) int
	settle(batch []pendingOutcome, claimed []store.ClaimedStep) (admitted []*flight, refused []store.ClaimedStep, more bool)
	launch(f *flight)
	running() int
}

// claimWaker makes the claimer claim now ([waker]), or at a time: the
// [claimer].
type claimWaker interface {
	waker
	scheduleWake(t time.Time)
}

// completerStore is the completer's access to the database: the
// [poolCompleterStore] in production.
type completerStore interface {
	completeAndClaim(ctx context.Context, now time.Time, cs []store.Completion, claim store.ClaimParams) (store.CompleteResult, []store.ClaimedStep, error)
	writeGrowing(ctx context.Context, ps []pendingOutcome) (store.CompleteResult, error)
	landed(ctx context.Context, cs []store.Completion) (map[uuid.UUID]contracts.StepState, error)
	releaseLost(ctx context.Context, claimedAt []time.Time, now time.Time) (int, error)
}

// completerDeps are a [completer]'s collaborators.
type completerDeps struct {
	permits completerPermits
	waker   claimWaker
	store   completerStore
	// claiming returns the namespaces a write may claim from, or false
	// when the runner no longer claims.
	claiming func() ([]string, bool)
	stats    *stats
	log      *slog.Logger
}

// completer buffers outcomes and writes them in batches: one statement per
// batch (store.Complete), up to FlushWriters batches at once. While other
// handlers are running, a batch waits at most FlushInterval for company; it
// holds at most FlushBatch outcomes; under load, outcomes that arrive during
// a write form the next batch. Stop writes everything buffered first;
// cancelling the Start context abandons it (leases will expire).
type completer struct {
	cfg completerConfig
	completerDeps
	startStop

	signal chan struct{}
	stopCh chan struct{}
	mu     sync.Mutex
	buf    []pendingOutcome // guarded by mu
	// eventMu keeps OnEvent calls one at a time across parallel writes.
	eventMu sync.Mutex
}

func newCompleter(cfg completerConfig, deps completerDeps) *completer {
	cfg.withDefaults()
	return &completer{cfg: cfg, completerDeps: deps, signal: make(chan struct{}, 1), stopCh: make(chan struct{})}
}

// Start starts the write loop.
func (c *completer) Start(ctx context.Context) error { return c.start(ctx, c.loop) }

// Stop writes everything buffered and ends the loop.
func (c *completer) Stop(context.Context) error {
	close(c.stopCh)
	c.wait()
	return nil
}

func (c *completer) add(p pendingOutcome) {
	if p.finished.IsZero() {
		p.finished = c.cfg.Now()
	}
	c.mu.Lock()
	c.buf = append(c.buf, p)
	c.mu.Unlock()
	c.poke()
}

func (c *completer) loop(ctx context.Context) {
	var (
		timer  *time.Timer
		writes sync.WaitGroup
		// slots bounds the writes in flight. A second write starts only
		// with a full batch: while one is in flight the next batch grows
		// (group commit), so parallel writes overlap commit waits without
		// shrinking batches.
		slots = make(chan struct{}, c.cfg.FlushWriters)
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
		if !stopping && c.cfg.FlushInterval > 0 && c.shouldWait() {
			// Give concurrent outcomes a moment to share this write.
			if timer == nil {
				timer = time.NewTimer(c.cfg.FlushInterval)
			} else {
				timer.Reset(c.cfg.FlushInterval)
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
			c.drain(ctx)
			return
		}
		if !c.startWrites(ctx, slots, &writes) {
			return
		}
	}
}

// drain writes what is buffered, one batch at a time, until nothing is
// left or ctx ends.
func (c *completer) drain(ctx context.Context) {
	for {
		batch := c.take()
		if len(batch) == 0 || !c.flush(ctx, batch) {
			return
		}
	}
}

// startWrites starts writes while a slot is free, or while whole batches
// wait, and reports false when ctx ended.
func (c *completer) startWrites(ctx context.Context, slots chan struct{}, writes *sync.WaitGroup) bool {
	for len(slots) == 0 || c.full() {
		batch := c.take()
		if len(batch) == 0 {
			break
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		writes.Add(1)
		go func() {
			defer writes.Done()
			c.flush(ctx, batch) // false: ctx ended, which the loop sees
			<-slots
			c.poke() // what waited for this write may go now
		}()
	}
	return true
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
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.buf) >= c.cfg.FlushBatch
}

// shouldWait reports whether a write is worth delaying for company: the
// batch is not full and handlers are still running, so more outcomes are
// on their way. With nothing running, waiting would only add latency.
func (c *completer) shouldWait() bool {
	c.mu.Lock()
	n := len(c.buf)
	c.mu.Unlock()
	// An empty buffer has nothing to delay: waiting then would only hold
	// back, unseen, the outcome that arrives next (the loop is woken with
	// nothing buffered when a write ends while handlers run).
	return n > 0 && n < c.cfg.FlushBatch && c.permits.running() > 0
}

func (c *completer) take() []pendingOutcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.buf), c.cfg.FlushBatch)
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
		c.log.Warn("writing step outcomes; retrying", "count", n, "err", err, "retry_in", delay)
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
	found, err := c.store.landed(ctx, refused)
	if err != nil {
		c.log.Warn("checking outcomes whose first write may have committed; reporting them stale", "count", len(refused), "err", err)
		return
	}
	for id, state := range found {
		res.Applied[id] = state
		res.Stale--
	}
	if len(found) > 0 {
		c.log.Info("outcomes written by an earlier send whose reply was lost", "count", len(found))
		c.waker.wake()
	}
}

// claimParams returns the claim that rides on writing cs: as many steps as
// cs holds permits (the permits pass from the written steps to the claimed
// ones, so the runner never holds more than MaxConcurrentSteps), none when
// the runner stops claiming or the feature is off.
func (c *completer) claimParams(cs []store.Completion) store.ClaimParams {
	if !c.cfg.ClaimWithCompletions {
		return store.ClaimParams{}
	}
	namespaces, ok := c.claiming()
	if !ok {
		return store.ClaimParams{}
	}
	return store.ClaimParams{Namespaces: namespaces, Limit: c.permits.held(cs), LeaseFor: c.cfg.LeaseFor}
}

// releaseLost gives back what failed sends of a write may have claimed:
// such a send may have committed, leasing steps the runner never saw,
// which would otherwise wait for their lease to expire.
func (c *completer) releaseLost(ctx context.Context, claimedAt []time.Time) {
	if len(claimedAt) == 0 {
		return
	}
	n, err := c.store.releaseLost(ctx, claimedAt, c.cfg.Now())
	if err != nil {
		c.log.Warn("releasing steps claimed by writes whose reply was lost; their leases will expire", "err", err)
		return
	}
	if n > 0 {
		c.log.Info("released steps claimed by writes whose reply was lost", "count", n)
		c.stats.released.Add(int64(n))
		c.waker.wake()
	}
}

// giveBack releases the leases of claimed steps that were not admitted
// (attempt not consumed).
func (c *completer) giveBack(steps []store.ClaimedStep) {
	for _, s := range steps {
		c.add(pendingOutcome{step: s, completion: store.Completion{
			StepUUID: s.StepUUID, Attempt: s.Attempt, Epoch: s.Epoch, State: contracts.StepStateEnqueued, RunAt: c.cfg.Now(),
		}})
	}
}

// flush writes one batch, retrying transient failures (deadlocks between
// runners, a database restart) until it succeeds or ctx ends, then hands
// its permits over and reports its outcomes. It reports false when ctx
// ended: the runner was hard-stopped and leases will expire.
func (c *completer) flush(ctx context.Context, batch []pendingOutcome) bool {
	began := time.Now()
	w, ok := c.write(ctx, batch)
	if !ok {
		return false
	}
	c.stats.flushes.Add(1)
	c.stats.stale.Add(int64(w.res.Stale))
	observeFlush(c.cfg.Observer, batch, w.res, time.Since(began))
	c.handOver(batch, w)
	c.report(batch, w.res)
	c.releaseLost(ctx, w.lost)
	return true
}

// written is what writing a batch did.
type written struct {
	res     store.CompleteResult
	claimed []store.ClaimedStep // by the claim that rode on the write
	lost    []time.Time         // claim times of sends whose outcome is unknown
}

// write writes a batch: the static outcomes from their completions alone
// (outcomes are large; only growing tasks' outcomes are copied), with the
// claim that rides on them, then the outcomes of growing tasks.
func (c *completer) write(ctx context.Context, batch []pendingOutcome) (written, bool) {
	var growing []pendingOutcome
	cs := make([]store.Completion, 0, len(batch))
	for i := range batch {
		if batch[i].tpl != nil {
			growing = append(growing, batch[i])
		} else {
			cs = append(cs, batch[i].completion)
		}
	}
	var w written
	if len(cs) > 0 && !c.writeStatic(ctx, cs, &w) {
		return w, false
	}
	if len(growing) > 0 {
		part, ok := c.retry(ctx, len(growing), func() (store.CompleteResult, error) {
			return c.store.writeGrowing(ctx, growing)
		}, func() []store.Completion {
			out := make([]store.Completion, len(growing))
			for i := range growing {
				out[i] = growing[i].completion
			}
			return out
		})
		if !ok {
			return w, false
		}
		w.res.Merge(part)
		// writeGrowing may have turned outcomes into failures.
		j := 0
		for i := range batch {
			if batch[i].tpl != nil {
				batch[i] = growing[j]
				j++
			}
		}
	}
	return w, true
}

// writeStatic writes completions cs with the claim that rides on them.
func (c *completer) writeStatic(ctx context.Context, cs []store.Completion, w *written) bool {
	claim := c.claimParams(cs)
	res, ok := c.retry(ctx, len(cs), func() (store.CompleteResult, error) {
		var err error
		var part store.CompleteResult
		claim.Now = c.cfg.Now()
		part, w.claimed, err = c.store.completeAndClaim(ctx, claim.Now, cs, claim)
		if err != nil && claim.Limit > 0 {
			w.lost = append(w.lost, claim.Now)
		}
		return part, err
	}, func() []store.Completion { return cs })
	w.res = res
	return ok
}

// handOver returns the written steps' permits, launches the steps the
// write claimed into them, gives back what could not be admitted, and
// wakes the claimer when more steps are ready.
func (c *completer) handOver(batch []pendingOutcome, w written) {
	// Children the write made ready and did not claim itself (a claim
	// that rode on it takes them first unless other steps come first by
	// priority): claim them now rather than wait for our own NOTIFY, which
	// announces them anyway. Waking whenever the riding claim was full
	// sent a mostly empty claim query after almost every write at light
	// load.
	ready := w.res.Enqueued > len(w.claimed)
	for i := range batch {
		p := &batch[i]
		// A yielded step is claimable again at once.
		ready = ready || len(p.completion.Checkpoint) > 0 && w.res.Applied[p.completion.StepUUID] == contracts.StepStateEnqueued
	}
	admitted, refused, more := c.permits.settle(batch, w.claimed)
	c.stats.claimedWithCompletions.Add(int64(len(admitted)))
	for _, f := range admitted {
		c.permits.launch(f)
	}
	c.giveBack(refused)
	if more || ready {
		// Permits were freed and the last claim was full, or steps are
		// ready: claim now rather than wait for our own NOTIFY (and before
		// the events below, which the next steps need not wait for).
		c.waker.wake()
	}
}

// report counts a written batch's outcomes, calls OnEvent for each, and
// schedules a claim for the earliest retry.
func (c *completer) report(batch []pendingOutcome, res store.CompleteResult) {
	var earliestRetry time.Time
	for i := range batch {
		p := &batch[i]
		state, applied := res.Applied[p.completion.StepUUID]
		if applied {
			if at, ok := c.count(p, state); ok && (earliestRetry.IsZero() || at.Before(earliestRetry)) {
				earliestRetry = at
			}
		}
		if c.cfg.OnEvent != nil {
			c.eventMu.Lock()
			c.cfg.OnEvent(Event{
				Step: eventStep(&p.step), State: p.completion.State, Stale: !applied, Result: p.result,
				Started: p.started, Finished: p.finished, TaskState: res.TasksFinished[p.step.TaskUUID],
			})
			c.eventMu.Unlock()
		}
	}
	if !earliestRetry.IsZero() {
		c.waker.scheduleWake(earliestRetry)
	}
}

// count counts one written outcome by its state and returns when the step
// runs again, if it waits to (a retry, or a release with a delay).
func (c *completer) count(p *pendingOutcome, state contracts.StepState) (time.Time, bool) {
	switch state {
	case contracts.StepStateComplete:
		c.stats.completed.Add(1)
	case contracts.StepStateWaitingForRetry:
		c.stats.retried.Add(1)
		return p.completion.RunAt, true
	case contracts.StepStateError:
		c.stats.failed.Add(1)
	case contracts.StepStateEnqueued:
		c.stats.released.Add(1)
		if p.completion.RunAt.After(p.finished) {
			return p.completion.RunAt, true
		}
	}
	return time.Time{}, false
}

// poolCompleterStore is the [completerStore] of a runner: its pool, and
// its transaction for outcomes that grow their task.
type poolCompleterStore struct {
	r *Runner
}

func (s poolCompleterStore) completeAndClaim(ctx context.Context, now time.Time, cs []store.Completion, claim store.ClaimParams) (store.CompleteResult, []store.ClaimedStep, error) {
	return store.CompleteAndClaim(ctx, s.r.pool, s.r.cfg.WorkerID, now, cs, claim)
}

func (s poolCompleterStore) writeGrowing(ctx context.Context, ps []pendingOutcome) (store.CompleteResult, error) {
	return s.r.writeGrowing(ctx, ps)
}

func (s poolCompleterStore) landed(ctx context.Context, cs []store.Completion) (map[uuid.UUID]contracts.StepState, error) {
	return store.LandedCompletions(ctx, s.r.pool, cs)
}

func (s poolCompleterStore) releaseLost(ctx context.Context, claimedAt []time.Time, now time.Time) (int, error) {
	return store.ReleaseLostClaims(ctx, s.r.pool, s.r.cfg.WorkerID, claimedAt, now)
}
