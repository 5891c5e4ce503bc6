package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
)

type backlogResult struct {
	Steps             int     `json:"steps"`
	InsertSeconds     float64 `json:"insert_seconds"`
	InsertTasksPerSec float64 `json:"insert_tasks_per_sec"`
	InsertBatch       int     `json:"insert_batch"`
	WorkDownSeconds   float64 `json:"work_down_seconds"`
	StepsPerSec       float64 `json:"steps_per_sec"`
	// RunnerCPUSeconds is the CPU time (user+system) this process used
	// during the work-down: the runner's cost, PostgreSQL's not included.
	RunnerCPUSeconds       float64 `json:"runner_cpu_seconds"`
	RunnerCPUMicrosPerStep float64 `json:"runner_cpu_us_per_step"`
	// ServerCPUMicrosPerStep is PostgreSQL's CPU time per step during the
	// work-down; 0 (omitted) unless the server is a local throwaway cluster.
	ServerCPUMicrosPerStep float64  `json:"postgres_cpu_us_per_step,omitempty"`
	CPU                    cpuUsage `json:"cpu"`
	ClaimQueries           int64    `json:"claim_queries"`
	MeanClaimSize          float64  `json:"mean_claim_size"`
	// ClaimedWithCompletions counts the steps claimed by outcome writes
	// (claims riding on completions), not by claim queries.
	ClaimedWithCompletions int64   `json:"claimed_with_completions"`
	Flushes                int64   `json:"flushes"`
	MeanFlushSize          float64 `json:"mean_flush_size"`
	Failed                 int64   `json:"failed_steps"`
	Memory                 memory  `json:"memory"`
	// HandlerRequests and MeanBatchSize are what the handler service saw
	// (HTTP scenarios only).
	HandlerRequests    int64   `json:"handler_requests,omitempty"`
	HandlerConnections int64   `json:"handler_connections,omitempty"`
	MeanBatchSize      float64 `json:"mean_steps_per_request,omitempty"`
	MedianOf           int     `json:"median_of,omitempty"`
}

type memory struct {
	PeakRSSMB     float64 `json:"peak_rss_mb"`
	PeakRSSSource string  `json:"peak_rss_source"`
	BaselineRSSMB float64 `json:"baseline_rss_mb"`
	PeakGoHeapMB  float64 `json:"peak_go_heap_mb"`
	Note          string  `json:"note"`
}

// backlogVacuum runs between the insert of a backlog and the start of the
// runner (runBacklogWith).
const backlogVacuum = "VACUUM ANALYZE tasker.steps, tasker.tasks"

// runBacklog inserts o.steps single-step tasks, then starts one runner and
// times it until every task is complete, as reported by the runner's events.
func runBacklog(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions, profile *os.File) (backlogResult, error) {
	funcs := &callout.Funcs{}
	funcs.Register(noopCallable, noopHandler)
	return runBacklogWith(ctx, env, srv, o, backlogSpec{label: "backlog", steps: o.steps, handlers: funcs}, profile)
}

// backlogSpec is what differs between the backlog work-downs: in-process
// Go handlers (a) or HTTP callouts (d).
type backlogSpec struct {
	label    string
	steps    int
	handlers callout.Resolver
	// from is where the database comes from: fresh and empty unless set
	// (the history scenario's clones).
	from scenarioFrom
}

// submitBacklog submits n single-step tasks of tpl in chunks of chunk, one
// transaction (Client.SubmitMany) each; after calls progress, when set,
// with the count submitted so far.
func submitBacklog(ctx context.Context, client *runner.Client, tpl runner.TemplateInfo, n, chunk int, after func(done int)) error {
	reqs := make([]runner.SubmitRequest, 0, min(chunk, n))
	for done := 0; done < n; {
		k := min(chunk, n-done)
		reqs = reqs[:0]
		for range k {
			reqs = append(reqs, runner.SubmitRequest{Namespace: tpl.Namespace, Name: tpl.Name, Version: tpl.Version})
		}
		if _, err := client.SubmitMany(ctx, reqs); err != nil {
			return fmt.Errorf("inserting the backlog (%d of %d tasks in): %w", done, n, err)
		}
		done += k
		if after != nil {
			after(done)
		}
	}
	return nil
}

// runBacklogWith is runBacklog with the given size and handlers, in three
// steps: setup (the backlog), drive (the work-down) and measure.
func runBacklogWith(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions, spec backlogSpec, profile *os.File) (backlogResult, error) {
	o.steps = spec.steps
	res := backlogResult{Steps: o.steps, InsertBatch: benchSubmitChunk}
	sc, err := srv.scenarioWith(ctx, env, spec.label, o.poolSize, spec.from)
	if err != nil {
		return res, err
	}
	defer sc.cleanup()
	if err := seedBacklog(ctx, sc, o, &res); err != nil {
		return res, err
	}
	// Memory: start the runner's measurement from a clean slate.
	runtime.GC()
	debug.FreeOSMemory()
	res.Memory.BaselineRSSMB = procStatusMB("VmRSS")
	hwmReset := resetPeakRSS()
	w, err := workDown(ctx, env, srv, o, sc, spec, profile)
	if err != nil {
		return res, err
	}
	if err := w.measure(&res, o.steps, srv.postmaster > 0); err != nil {
		return res, err
	}
	w.measureMemory(&res, hwmReset)
	return res, nil
}

// seedBacklog inserts the backlog through the client, then vacuums and
// analyses as autovacuum would have by now in a long-lived database, so
// the claim plans see real statistics. The figures' how text says so.
func seedBacklog(ctx context.Context, sc *scenarioDB, o benchOptions, res *backlogResult) error {
	client := runner.NewClient(sc.pool, runner.ClientConfig{})
	tpl, err := client.RegisterTemplate(ctx, []byte(singleStepTemplate(sc.namespace)))
	if err != nil {
		return err
	}
	insertStart := time.Now()
	if err := submitBacklog(ctx, client, tpl, o.steps, benchSubmitChunk, nil); err != nil {
		return err
	}
	res.InsertSeconds = time.Since(insertStart).Seconds()
	res.InsertTasksPerSec = float64(o.steps) / res.InsertSeconds
	fmt.Fprintf(o.progress, "bench:   inserted in %.2fs (%.0f tasks/s); starting the runner\n", res.InsertSeconds, res.InsertTasksPerSec)
	_, err = sc.pool.Exec(ctx, backlogVacuum)
	return err
}

// backlogCounter counts finished tasks and failures; allDone is closed
// once target tasks have finished.
type backlogCounter struct {
	completed, failed atomic.Int64
	allDone           chan struct{}
	target            int64
}

func (c *backlogCounter) onEvent(ev runner.Event) {
	if ev.TaskState == "" {
		if ev.State == contracts.StepStateError {
			c.failed.Add(1)
		}
		return
	}
	if ev.TaskState != "complete" {
		c.failed.Add(1)
	}
	if c.completed.Add(1) == c.target {
		close(c.allDone)
	}
}

// backlogWorkDown is what the work-down measured.
type backlogWorkDown struct {
	elapsed           time.Duration
	cpu0, cpu1        cpuSnapshot
	peakHeap, peakRSS float64
	st                runner.Stats
	failed            int64
}

// workDown starts a runner on the backlog and waits until it has worked it
// down, measuring the time, the CPU and the memory.
func workDown(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions, sc *scenarioDB, spec backlogSpec, profile *os.File) (*backlogWorkDown, error) {
	c := &backlogCounter{allDone: make(chan struct{}), target: int64(o.steps)}
	r, err := runner.New(sc.pool, runnerConfigWith(env, o, sc, spec.label, spec.handlers, c.onEvent))
	if err != nil {
		return nil, err
	}
	sampler := startMemSampler(20 * time.Millisecond)
	stopProfile, err := startProfile(profile)
	if err != nil {
		sampler.stop()
		return nil, err
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	w := &backlogWorkDown{cpu0: takeCPUSnapshot(srv.postmaster)}
	start := time.Now()
	if err := r.Start(runCtx); err != nil {
		stopProfile()
		sampler.stop()
		return nil, err
	}
	timeout := time.NewTimer(o.scenarioTime)
	defer timeout.Stop()
	select {
	case <-c.allDone:
	case <-timeout.C:
		err = fmt.Errorf("%w after %s with %d of %d tasks complete", errBenchTimeout, o.scenarioTime, c.completed.Load(), c.target)
	case <-ctx.Done():
		err = ctx.Err()
	}
	w.elapsed = time.Since(start)
	w.cpu1 = takeCPUSnapshot(srv.postmaster)
	stopProfile()
	w.peakHeap, w.peakRSS = sampler.stop()
	w.st = r.Stats()
	if stopErr := stopRunner(ctx, r); err == nil && stopErr != nil {
		err = stopErr
	}
	cancelRun()
	r.Wait()
	w.failed = c.failed.Load()
	return w, err
}

// measure fills in the rate, the CPU and the runner's claim and flush
// figures for steps steps; serverCPU says whether PostgreSQL's CPU time
// was read.
func (w *backlogWorkDown) measure(res *backlogResult, steps int, serverCPU bool) error {
	res.WorkDownSeconds = w.elapsed.Seconds()
	res.StepsPerSec = float64(steps) / w.elapsed.Seconds()
	if cpu := w.cpu1.self - w.cpu0.self; cpu > 0 {
		res.RunnerCPUSeconds = cpu.Seconds()
		res.RunnerCPUMicrosPerStep = float64(cpu.Microseconds()) / float64(steps)
	}
	if cpu := w.cpu1.server - w.cpu0.server; serverCPU && cpu > 0 {
		res.ServerCPUMicrosPerStep = float64(cpu.Microseconds()) / float64(steps)
	}
	res.CPU = cpuBetween(w.cpu0, w.cpu1)
	st := w.st
	res.ClaimQueries = st.ClaimQueries
	res.ClaimedWithCompletions = st.ClaimedWithCompletions
	if st.ClaimQueries > 0 {
		res.MeanClaimSize = float64(st.Claimed-st.ClaimedWithCompletions) / float64(st.ClaimQueries)
	}
	res.Flushes = st.Flushes
	if st.Flushes > 0 {
		res.MeanFlushSize = float64(st.Completed+st.Retried+st.Failed) / float64(st.Flushes)
	}
	res.Failed = w.failed
	if res.Failed > 0 {
		return fmt.Errorf("%d steps or tasks failed with a no-op handler", res.Failed)
	}
	return nil
}

// measureMemory fills in the peak memory, from the kernel's high-water mark
// when it could be reset, else from the samples.
func (w *backlogWorkDown) measureMemory(res *backlogResult, hwmReset bool) {
	hwm := procStatusMB("VmHWM")
	res.Memory.PeakGoHeapMB = w.peakHeap
	switch {
	case hwm > 0 && hwmReset:
		res.Memory.PeakRSSMB = max(hwm, w.peakRSS)
		res.Memory.PeakRSSSource = "VmHWM of this process (reset just before the runner started; the runner is in-process)"
	case w.peakRSS > 0:
		res.Memory.PeakRSSMB = w.peakRSS
		res.Memory.PeakRSSSource = "highest VmRSS of this process sampled every 20ms (the runner is in-process)"
	default:
		res.Memory.PeakRSSSource = "unavailable (no /proc)"
	}
	res.Memory.Note = "whole bench process during the work-down: the runner plus the bench's own bookkeeping (event counting, samplers); the backlog itself lives in PostgreSQL"
}
