package bench

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
)

type latencyResult struct {
	Mode               string  `json:"mode"`
	StepsPerTask       int     `json:"steps_per_task"`
	OfferedStepsPerSec float64 `json:"offered_steps_per_sec"`
	OfferedTasksPerSec float64 `json:"offered_tasks_per_sec"`
	DurationSeconds    float64 `json:"duration_seconds"`
	WarmupSeconds      float64 `json:"warmup_seconds"`
	// HistoryTasks were run (and the tables analysed) before the clock started.
	HistoryTasks        int     `json:"history_tasks"`
	TasksSubmitted      int     `json:"tasks_submitted"`
	TasksMeasured       int     `json:"tasks_measured"`
	AchievedStepsPerSec float64 `json:"achieved_steps_per_sec"`
	// EndToEndMs runs from just before Submit is called to the runner's
	// event for the write that completed the task.
	EndToEndMs percentiles `json:"end_to_end_ms"`
	// EnqueueToStartMs runs from a step's run_at (when it became ready) to
	// its handler starting, over every step of the measured tasks.
	EnqueueToStartMs          percentiles `json:"enqueue_to_start_ms"`
	EnqueueToStartFirstStepMs percentiles `json:"enqueue_to_start_first_step_ms"`
	EnqueueToStartChildMs     percentiles `json:"enqueue_to_start_child_steps_ms"`
	// A later step's enqueue-to-start, split where the write that made it
	// ready returned: the completion write (statement and commit), then
	// waking, claiming and dispatching it.
	ChildReadyToWrittenMs percentiles `json:"child_ready_to_written_ms"`
	ChildWrittenToStartMs percentiles `json:"child_written_to_start_ms"`
	// SubmitMs is how long Submit took (one transaction with a commit).
	SubmitMs percentiles `json:"submit_ms"`
	CPU      cpuUsage    `json:"cpu"`
	MedianOf int         `json:"median_of,omitempty"`
}

type latencyTask struct {
	submitted time.Time
	warm      bool
	steps     [4]stepTimes // by position in the chain
	e2e       time.Duration
	done      bool
}

type stepTimes struct {
	seen     bool
	enqueued time.Time // run_at: when it became ready
	started  time.Time // handler start
	written  time.Time // the runner's event: its outcome was written
}

// runLatency offers linear-4 tasks at a fixed rate (open loop: each
// submission is scheduled by the clock, not by the previous one finishing)
// to a hybrid-mode runner and records when each task's steps start and
// when the task completes.
func runLatency(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions) (latencyResult, error) {
	return runLatencyOn(ctx, env, srv, o, "latency", scenarioFrom{})
}

// latencyStepsPerTask is the length of the linear workflow the latency
// scenario runs.
const latencyStepsPerTask = 4

// runLatencyOn is runLatency in a database that starts as from says: setup
// (a runner and a history of finished tasks), drive (the paced
// submissions) and measure (the percentiles).
func runLatencyOn(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions, label string, from scenarioFrom) (latencyResult, error) {
	warmup := warmupFor(o.duration)
	res := latencyResult{
		Mode: runner.ModeHybrid, StepsPerTask: latencyStepsPerTask,
		OfferedStepsPerSec: o.rate, OfferedTasksPerSec: o.rate / latencyStepsPerTask,
		DurationSeconds: o.duration.Seconds(), WarmupSeconds: warmup.Seconds(),
	}
	sc, err := srv.scenarioWith(ctx, env, label, o.poolSize, from)
	if err != nil {
		return res, err
	}
	defer sc.cleanup()
	l, err := setupLatency(ctx, env, o, sc, label)
	if err != nil {
		return res, err
	}
	defer func() { _ = l.stop() }()
	if err := l.seedHistory(ctx); err != nil {
		return res, err
	}
	res.HistoryTasks = l.tr.historyTasks
	cpu0 := takeCPUSnapshot(srv.postmaster)
	start := time.Now()
	submitDurs, err := l.drive(ctx, start, warmup)
	if err != nil {
		return res, err
	}
	if err := l.tr.waitAll(ctx); err != nil {
		return res, err
	}
	elapsed := time.Since(start)
	res.CPU = cpuBetween(cpu0, takeCPUSnapshot(srv.postmaster))
	return res, l.tr.measure(&res, submitDurs, elapsed, warmup)
}

// latencyTracker follows the latency scenario's tasks through the
// runner's events.
type latencyTracker struct {
	mu        sync.Mutex
	tasks     map[uuid.UUID]*latencyTask // by correlation id
	finished  int
	submitted int
	allDone   chan struct{}
	closed    bool
	failed    int
	submitEnd bool
	// History: tasks run before the measurement so that it sees tables
	// of a realistic size with statistics, as a live database has.
	historyTasks int
	historyDone  int
	historyCh    chan struct{}
}

func (tr *latencyTracker) checkDone() { // with mu held
	if tr.submitEnd && tr.finished == tr.submitted && !tr.closed {
		tr.closed = true
		close(tr.allDone)
	}
}

func (tr *latencyTracker) onEvent(ev runner.Event) {
	now := time.Now()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if ev.State != contracts.StepStateComplete {
		tr.failed++
	}
	t := tr.tasks[ev.Step.CorrelationID]
	if t == nil {
		if ev.TaskState != "" { // a history task
			tr.historyDone++
			if tr.historyDone == tr.historyTasks {
				close(tr.historyCh)
			}
		}
		return
	}
	var k int
	if _, err := fmt.Sscanf(ev.Step.Name, "s%d", &k); err == nil && k >= 1 && k <= len(t.steps) {
		t.steps[k-1] = stepTimes{seen: true, enqueued: ev.Step.EnqueuedAt, started: ev.Started, written: now}
	}
	if ev.TaskState != "" && !t.done {
		t.done = true
		t.e2e = now.Sub(t.submitted)
		tr.finished++
		tr.checkDone()
	}
}

// latencyRun is the latency scenario's runner and what it submits.
type latencyRun struct {
	o      benchOptions
	sc     *scenarioDB
	client *runner.Client
	req    runner.SubmitRequest // the linear workflow
	tr     *latencyTracker
	stop   func() error
}

// setupLatency registers the workflow and starts the runner.
func setupLatency(ctx context.Context, env *cli.Env, o benchOptions, sc *scenarioDB, label string) (*latencyRun, error) {
	l := &latencyRun{o: o, sc: sc, client: runner.NewClient(sc.pool, runner.ClientConfig{})}
	tpl, err := l.client.RegisterTemplate(ctx, []byte(linearTemplate(sc.namespace, latencyStepsPerTask)))
	if err != nil {
		return nil, err
	}
	l.req = runner.SubmitRequest{Namespace: tpl.Namespace, Name: tpl.Name, Version: tpl.Version}
	l.tr = &latencyTracker{tasks: map[uuid.UUID]*latencyTask{}, allDone: make(chan struct{}), historyCh: make(chan struct{}),
		historyTasks: cmp.Or(o.history, min(benchLatencyHistoryMax, max(100, int(o.rate*o.duration.Seconds()/latencyStepsPerTask))))}
	_, l.stop, err = startListeningRunner(ctx, sc.pool, runnerConfig(env, o, sc, label, l.tr.onEvent))
	if err != nil {
		return nil, err
	}
	return l, nil
}

// seedHistory submits the history, worked off as fast as the runner goes;
// then gathers the statistics autovacuum would have gathered in a live
// database. Without them, plans cached while the tables were empty
// (sequential scans) stay in use while the tables grow during the run.
func (l *latencyRun) seedHistory(ctx context.Context) error {
	historyTasks := l.tr.historyTasks
	history := make([]runner.SubmitRequest, min(historyTasks, benchSubmitChunk))
	for i := range history {
		history[i] = l.req
	}
	for done := 0; done < historyTasks; done += len(history) {
		if _, err := l.client.SubmitMany(ctx, history[:min(len(history), historyTasks-done)]); err != nil {
			return fmt.Errorf("submitting the history: %w", err)
		}
	}
	// Two minutes, and more for a long history (1,000 steps/s at least).
	historyWait := time.NewTimer(2*time.Minute + time.Duration(historyTasks)*latencyStepsPerTask*time.Millisecond)
	defer historyWait.Stop()
	select {
	case <-l.tr.historyCh:
	case <-historyWait.C:
		return fmt.Errorf("%w: the %d history tasks did not complete in time", errBenchTimeout, historyTasks)
	case <-ctx.Done():
		return ctx.Err()
	}
	_, err := l.sc.pool.Exec(ctx, "VACUUM ANALYZE tasker.steps, tasker.tasks, tasker.step_edges, tasker.step_transitions, tasker.task_transitions")
	return err
}

// drive submits one task every interval from start for o.duration (open
// loop, each on its own goroutine) and returns how long the submissions
// after the warm-up took.
func (l *latencyRun) drive(ctx context.Context, start time.Time, warmup time.Duration) ([]time.Duration, error) {
	interval := time.Duration(float64(time.Second) * latencyStepsPerTask / l.o.rate)
	var (
		wg         sync.WaitGroup
		submitErr  error
		errOnce    sync.Once
		submitDurs []time.Duration
		sdMu       sync.Mutex
	)
	end := start.Add(l.o.duration)
	timer := time.NewTimer(0)
	defer timer.Stop()
loop:
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if !at.Before(end) {
			break
		}
		timer.Reset(time.Until(at))
		select {
		case <-ctx.Done():
			break loop
		case <-timer.C:
		}
		t := &latencyTask{warm: at.Sub(start) >= warmup}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sd, err := l.submit(ctx, t)
			if err != nil {
				errOnce.Do(func() { submitErr = err })
				return
			}
			if t.warm {
				sdMu.Lock()
				submitDurs = append(submitDurs, sd)
				sdMu.Unlock()
			}
		}()
	}
	wg.Wait()
	if submitErr != nil {
		return nil, fmt.Errorf("submitting: %w", submitErr)
	}
	return submitDurs, ctx.Err()
}

// submit submits task t and returns how long the submission took.
func (l *latencyRun) submit(ctx context.Context, t *latencyTask) (time.Duration, error) {
	tr := l.tr
	corr := uuid.New()
	tr.mu.Lock()
	t.submitted = time.Now()
	tr.tasks[corr] = t
	tr.submitted++
	tr.mu.Unlock()
	s0 := time.Now()
	req := l.req
	req.CorrelationID = corr
	_, err := l.client.Submit(ctx, req)
	sd := time.Since(s0)
	if err != nil {
		tr.mu.Lock()
		delete(tr.tasks, corr)
		tr.submitted--
		tr.mu.Unlock()
	}
	return sd, err
}

// waitAll waits until every submitted task has finished.
func (tr *latencyTracker) waitAll(ctx context.Context) error {
	tr.mu.Lock()
	tr.submitEnd = true
	tr.checkDone()
	tr.mu.Unlock()
	wait := time.NewTimer(30 * time.Second)
	defer wait.Stop()
	select {
	case <-tr.allDone:
		return nil
	case <-wait.C:
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return fmt.Errorf("%w: %d of %d tasks complete 30s after the last submission", errBenchTimeout, tr.finished, tr.submitted)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// measure fills in the percentiles of the tasks submitted after the
// warm-up.
func (tr *latencyTracker) measure(res *latencyResult, submitDurs []time.Duration, elapsed, warmup time.Duration) error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.failed > 0 {
		return fmt.Errorf("%d steps failed with a no-op handler", tr.failed)
	}
	var e2e, e2s, first, child, write, claim []time.Duration
	for _, t := range tr.tasks {
		if !t.warm {
			continue
		}
		e2e = append(e2e, t.e2e)
		for k, st := range t.steps {
			if !st.seen {
				continue
			}
			d := st.started.Sub(st.enqueued)
			e2s = append(e2s, d)
			if k == 0 {
				first = append(first, d)
				continue
			}
			child = append(child, d)
			// A later step became ready in the write of its parent's
			// outcome: split its wait at the moment that write returned.
			if prev := t.steps[k-1]; prev.seen {
				write = append(write, prev.written.Sub(st.enqueued))
				claim = append(claim, st.started.Sub(prev.written))
			}
		}
	}
	res.TasksSubmitted = tr.submitted
	res.TasksMeasured = len(e2e)
	res.AchievedStepsPerSec = float64(tr.submitted*latencyStepsPerTask) / elapsed.Seconds()
	res.EndToEndMs = percentilesOf(e2e)
	res.EnqueueToStartMs = percentilesOf(e2s)
	res.EnqueueToStartFirstStepMs = percentilesOf(first)
	res.EnqueueToStartChildMs = percentilesOf(child)
	res.ChildReadyToWrittenMs = percentilesOf(write)
	res.ChildWrittenToStartMs = percentilesOf(claim)
	res.SubmitMs = percentilesOf(submitDurs)
	if res.TasksMeasured == 0 {
		return fmt.Errorf("no task was submitted after the %s warm-up: raise --duration or --rate", warmup)
	}
	return nil
}
