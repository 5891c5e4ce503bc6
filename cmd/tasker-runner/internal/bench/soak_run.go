package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
)

// runSoak offers the mix at o.soakRate steps/s to one runner for o.soak and
// samples its memory: setup (a runner, the templates and a history of
// finished tasks), drive (the paced submitter while the sampler reads the
// memory) and measure (the drain and the summary).
func runSoak(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions, profile *os.File) (soakResult, error) {
	warmup := soakWarmup(o.soak)
	res := newSoakResult(o, warmup)
	sc, err := srv.scenario(ctx, env, "soak", o.poolSize)
	if err != nil {
		return res, err
	}
	defer sc.cleanup()
	s, err := setupSoak(ctx, env, o, sc)
	if err != nil {
		return res, err
	}
	defer func() { _ = s.stop() }()
	if res.HistoryTasks, err = s.seedHistory(ctx); err != nil {
		return res, err
	}
	elapsed, err := s.drive(ctx, srv, profile, warmup, &res)
	if err != nil {
		return res, err
	}
	if err := s.drain(ctx, &res); err != nil {
		return res, err
	}
	return res, s.measure(&res, warmup, elapsed)
}

// soakStepsPerRound is how many steps one round of benchSoakMix makes.
func soakStepsPerRound() int {
	n := 0
	for _, m := range benchSoakMix {
		n += m.steps
	}
	return n
}

func newSoakResult(o benchOptions, warmup time.Duration) soakResult {
	return soakResult{
		DurationSeconds: o.soak.Seconds(), WarmupSeconds: warmup.Seconds(), SampleEverySeconds: soakSampleEvery(o.soak).Seconds(),
		OfferedStepsPerSec: o.soakRate, RetryEvery: benchSoakRetryEvery, Concurrency: o.concurrency,
		Mix: fmt.Sprintf("per %d tasks: 4 single-step, 1 linear-4 and 1 diamond (a; b, c after a; d after b and c): %d steps", len(benchSoakMix), soakStepsPerRound()),
	}
}

// soakCounters count what the runner reports, and signal when every
// submitted task has finished once submitting has ended.
type soakCounters struct {
	offered, completed, tasksDone, retries, failed atomic.Int64
	submitted                                      atomic.Int64 // tasks
	submitEnd                                      atomic.Bool
	drained                                        atomic.Pointer[doneSignal]
}

func (c *soakCounters) checkDrained() {
	if c.submitEnd.Load() && c.tasksDone.Load() >= c.submitted.Load() {
		c.drained.Load().close()
	}
}

func (c *soakCounters) onEvent(ev runner.Event) {
	switch {
	case ev.Stale:
	case ev.State == contracts.StepStateComplete:
		c.completed.Add(1)
	case ev.State == contracts.StepStateWaitingForRetry:
		c.retries.Add(1)
	case ev.State == contracts.StepStateError:
		c.failed.Add(1)
	}
	if ev.TaskState != "" {
		if ev.TaskState != "complete" {
			c.failed.Add(1)
		}
		c.tasksDone.Add(1)
		c.checkDrained()
	}
}

// reset starts counting afresh, once every earlier event was delivered.
func (c *soakCounters) reset() {
	c.drained.Store(newDoneSignal())
	c.submitEnd.Store(false)
	for _, n := range []*atomic.Int64{&c.offered, &c.completed, &c.tasksDone, &c.retries, &c.submitted} {
		n.Store(0)
	}
}

// soakRun is the soak's runner, its client and its counters.
type soakRun struct {
	o      benchOptions
	sc     *scenarioDB
	client *runner.Client
	reqOf  map[string]runner.SubmitRequest // template name -> its submission
	r      *runner.Runner
	stop   func() error
	counts *soakCounters
}

// setupSoak registers the soak's templates and starts its runner.
func setupSoak(ctx context.Context, env *cli.Env, o benchOptions, sc *scenarioDB) (*soakRun, error) {
	s := &soakRun{o: o, sc: sc, client: runner.NewClient(sc.pool, runner.ClientConfig{}),
		reqOf: map[string]runner.SubmitRequest{}, counts: &soakCounters{}}
	s.counts.drained.Store(newDoneSignal())
	for _, doc := range soakTemplates(sc.namespace) {
		tpl, err := s.client.RegisterTemplate(ctx, []byte(doc))
		if err != nil {
			return nil, err
		}
		s.reqOf[tpl.Name] = runner.SubmitRequest{Namespace: tpl.Namespace, Name: tpl.Name, Version: tpl.Version}
	}
	if o.memProfile != "" {
		runtime.MemProfileRate = benchSoakMemProfileRate
	}
	handler := &soakHandler{}
	funcs := &callout.Funcs{}
	funcs.Register(benchSoakCallable, handler.handle)
	var err error
	s.r, s.stop, err = startListeningRunner(ctx, sc.pool, runnerConfigWith(env, s.o, sc, "soak", funcs, s.counts.onEvent))
	return s, err
}

// taskRate is the tasks per second that offer o.soakRate steps per second.
func (s *soakRun) taskRate() float64 {
	return s.o.soakRate * float64(len(benchSoakMix)) / float64(soakStepsPerRound())
}

// seedHistory submits the history and waits for it, then gathers the
// statistics autovacuum would have gathered in a live database: without
// them the claim plans cached while the tables were empty (sequential
// scans) stay in use while the tables grow, the runner falls behind and
// its backlog, not a leak, would be measured. Autovacuum keeps the
// statistics current during the run. It returns the history's size.
func (s *soakRun) seedHistory(ctx context.Context) (int, error) {
	c := s.counts
	historyTasks := min(benchSoakHistoryTasks, max(20*len(benchSoakMix), int(s.taskRate()*s.o.soak.Seconds())))
	history := make([]runner.SubmitRequest, historyTasks)
	for i := range history {
		history[i] = s.reqOf[benchSoakMix[i%len(benchSoakMix)].template]
	}
	c.submitted.Store(int64(len(history)))
	c.submitEnd.Store(true)
	if _, err := s.client.SubmitMany(ctx, history); err != nil {
		return 0, fmt.Errorf("submitting the history: %w", err)
	}
	c.checkDrained()
	historyWait := time.NewTimer(2 * time.Minute)
	defer historyWait.Stop()
	select {
	case <-c.drained.Load().ch:
	case <-historyWait.C:
		return 0, fmt.Errorf("%w: the %d history tasks did not complete within 2 minutes", errBenchTimeout, len(history))
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if n := c.failed.Load(); n > 0 {
		return 0, fmt.Errorf("%d steps or tasks of the history failed", n)
	}
	if _, err := s.sc.pool.Exec(ctx, "VACUUM ANALYZE tasker.steps, tasker.tasks, tasker.step_edges, tasker.step_transitions, tasker.task_transitions"); err != nil {
		return 0, err
	}
	// Every history event has been delivered: start counting afresh.
	c.reset()
	return len(history), nil
}

// drive runs the paced submitter for o.soak while a sampler reads the
// memory, and returns how long it ran.
func (s *soakRun) drive(ctx context.Context, srv *benchServer, profile *os.File, warmup time.Duration, res *soakResult) (time.Duration, error) {
	// Start the measurement from a clean slate.
	runtime.GC()
	debug.FreeOSMemory()
	mem := newMemReader()
	res.RSSSource = mem.source()
	res.BaselineRSSMB, _, _ = mem.read()
	sp := &soakSampler{ctx: ctx, run: s, mem: mem, start: time.Now(), memProfile: s.o.memProfile, stopCh: make(chan struct{})}
	sp.startSampling(soakSampleEvery(s.o.soak), warmup)
	defer sp.stop()

	stopProfile, err := startProfile(profile)
	if err != nil {
		return 0, err
	}
	cpu0 := takeCPUSnapshot(srv.postmaster)
	subErr := s.submitPaced(ctx, sp.start, sp.start.Add(s.o.soak))
	elapsed := time.Since(sp.start)
	cpu1 := takeCPUSnapshot(srv.postmaster)
	stopProfile()
	res.CPU = cpuBetween(cpu0, cpu1)
	sp.stop()
	last := sp.take()
	sp.samples = append(sp.samples, last)
	res.Samples = sp.samples
	if s.o.memProfile != "" {
		if err := writeHeapProfile(s.o.memProfile); err != nil && sp.profErr == nil {
			sp.profErr = err
		}
		res.HeapProfiles = fmt.Sprintf("%s.warmup (end of warm-up) and %s (end); go tool pprof -base %s.warmup %s", s.o.memProfile, s.o.memProfile, s.o.memProfile, s.o.memProfile)
	}
	res.StepsCompleted = last.StepsCompleted
	if subErr != nil {
		return elapsed, subErr
	}
	if sp.profErr != nil {
		return elapsed, fmt.Errorf("--memprofile: %w", sp.profErr)
	}
	return elapsed, nil
}

// submitPaced is the submitter: open loop, paced by the clock. Task i is
// due at start + i/taskRate; every tick submits what is due in one
// transaction, so a slow submission is caught up on the next tick, not
// dropped. It submits until end.
func (s *soakRun) submitPaced(ctx context.Context, start, end time.Time) error {
	c := s.counts
	taskRate := s.taskRate()
	tick := time.NewTicker(benchSoakTick)
	defer tick.Stop()
	var next int64
	reqs := make([]runner.SubmitRequest, 0, benchSoakSubmitMax)
	for {
		now := time.Now()
		if !now.Before(end) {
			return nil
		}
		due := min(int64(now.Sub(start).Seconds()*taskRate)+1, next+benchSoakSubmitMax)
		if due > next {
			reqs = reqs[:0]
			var steps int64
			for i := next; i < due; i++ {
				m := benchSoakMix[i%int64(len(benchSoakMix))]
				reqs = append(reqs, s.reqOf[m.template])
				steps += int64(m.steps)
			}
			// Count before submitting: the runner may finish them before
			// SubmitMany returns.
			c.submitted.Add(due - next)
			c.offered.Add(steps)
			if _, err := s.client.SubmitMany(ctx, reqs); err != nil {
				c.submitted.Add(next - due)
				c.offered.Add(-steps)
				return fmt.Errorf("submitting: %w", err)
			}
			next = due
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// drain waits until every submitted task has finished, then stops the
// runner.
func (s *soakRun) drain(ctx context.Context, res *soakResult) error {
	c := s.counts
	c.submitEnd.Store(true)
	c.checkDrained()
	drainStart := time.Now()
	wait := time.NewTimer(benchSoakDrainMax)
	defer wait.Stop()
	select {
	case <-c.drained.Load().ch:
	case <-wait.C:
		return fmt.Errorf("%w: %d of %d tasks complete %s after the last submission", errBenchTimeout, c.tasksDone.Load(), c.submitted.Load(), benchSoakDrainMax)
	case <-ctx.Done():
		return ctx.Err()
	}
	res.DrainSeconds = time.Since(drainStart).Seconds()
	return s.stop()
}

// measure fills in the counts and the summary, and fails when a step
// failed for good or one offered did not complete.
func (s *soakRun) measure(res *soakResult, warmup, elapsed time.Duration) error {
	c := s.counts
	res.PlannedSteps = int64(s.o.soakRate * s.o.soak.Seconds())
	res.TasksSubmitted = c.submitted.Load()
	res.StepsOffered = c.offered.Load()
	res.StepsCompletedAfterDrain = c.completed.Load()
	res.TasksCompleted = c.tasksDone.Load()
	res.Retries = c.retries.Load()
	res.Failed = c.failed.Load()
	summarizeSoak(res, warmup, elapsed)
	res.Note = fmt.Sprintf("whole bench process: the runner plus the paced submitter (its client) and the bench's counters, which hold no per-task state. "+
		"Completed tasks stay in PostgreSQL: the database grew from %.0f to %.0f MB while the runner's memory is judged on its own samples", res.DatabaseStartMB, res.DatabaseEndMB)
	if res.Failed > 0 {
		return fmt.Errorf("%d steps or tasks failed (a soak step may fail once, never for good)", res.Failed)
	}
	if res.StepsCompletedAfterDrain != res.StepsOffered {
		return fmt.Errorf("%d steps completed for %d offered", res.StepsCompletedAfterDrain, res.StepsOffered)
	}
	return nil
}

// soakSampler takes one memory reading every `every`, plus heap profiles
// around the warm-up's end when asked for.
type soakSampler struct {
	ctx        context.Context // the soak's: a reading stops with it
	run        *soakRun
	mem        *memReader
	start      time.Time
	memProfile string

	mu      sync.Mutex
	samples []soakSample
	profErr error // set by the sampling goroutine; read after stop
	wg      sync.WaitGroup
	stopCh  chan struct{}
}

// take reads the memory, the runner's state and the database's size.
func (sp *soakSampler) take() soakSample {
	c := sp.run.counts
	rss, live, objs := sp.mem.read()
	return soakSample{
		T: time.Since(sp.start).Seconds(), RSSMB: rss, HeapLiveMB: live, HeapObjectsMB: objs,
		Goroutines: runtime.NumGoroutine(), InFlight: sp.run.r.Stats().InFlight,
		StepsOffered: c.offered.Load(), StepsCompleted: c.completed.Load(),
		DatabaseMB: sp.databaseMB(),
	}
}

// databaseMB is the database's size, 0 when it cannot be read at once.
func (sp *soakSampler) databaseMB() float64 {
	qctx, cancel := context.WithTimeout(sp.ctx, 2*time.Second)
	defer cancel()
	var n int64
	if err := sp.run.sc.pool.QueryRow(qctx, "SELECT pg_database_size(current_database())").Scan(&n); err != nil {
		return 0
	}
	return float64(n) / (1 << 20)
}

// startSampling takes the first sample, then one every `every` until stop.
func (sp *soakSampler) startSampling(every, warmup time.Duration) {
	sp.samples = append(sp.samples, sp.take())
	sp.wg.Add(1)
	go func() {
		defer sp.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		warmProfiled := sp.memProfile == ""
		for {
			select {
			case <-sp.stopCh:
				return
			case <-t.C:
			}
			if !warmProfiled && time.Since(sp.start) >= warmup {
				warmProfiled = true
				if err := writeHeapProfile(sp.memProfile + ".warmup"); err != nil {
					sp.profErr = err
				}
			}
			s := sp.take()
			sp.mu.Lock()
			sp.samples = append(sp.samples, s)
			sp.mu.Unlock()
		}
	}()
}

// stop stops the sampling and waits for it; calls after the first do
// nothing.
func (sp *soakSampler) stop() {
	select {
	case <-sp.stopCh:
	default:
		close(sp.stopCh)
		sp.wg.Wait()
	}
}
