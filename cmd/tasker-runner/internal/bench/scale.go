package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/procgroup"
	"github.com/tasker-runner/tasker-runner/runner"
)

// The scale scenario (issue 18): --scale-processes runner processes on one
// database work one backlog down, against one runner process measured the
// same way (a process too, for fairness). The processes are this binary
// started again with the hidden bench-worker subcommand (bench_worker.go),
// each with the bench's runner settings. The clock runs from the moment
// the bench tells them to start to the last task-complete event any of
// them saw (wall clock, one machine).

// benchWorkerEnv is added to the environment of every bench-worker: the
// tests set it so that their binary runs main instead of the tests.
var benchWorkerEnv []string

// Target: the processes together at least as fast as one (no contention
// collapse).
const targetScaleRatio = 1.0

type scaleResult struct {
	Steps          int      `json:"steps"`
	Concurrency    int      `json:"max_concurrent_steps_per_process"`
	PoolPerProcess int      `json:"pool_per_process"`
	One            scaleRun `json:"one_process"`
	Many           scaleRun `json:"many_processes"`
	// Ratio is the many processes' total steps/s over one process's.
	Ratio float64 `json:"many_to_one_ratio"`
}

// scaleRun is one work-down by some runner processes.
type scaleRun struct {
	Processes       int     `json:"processes"`
	InsertSeconds   float64 `json:"insert_seconds"`
	WorkDownSeconds float64 `json:"work_down_seconds"`
	StepsPerSec     float64 `json:"steps_per_sec"`
	ClaimQueries    int64   `json:"claim_queries"`
	// EmptyClaims is summed over the processes; known only when every
	// process recognised its claim statement.
	EmptyClaims      int64 `json:"empty_claims"`
	EmptyClaimsKnown bool  `json:"empty_claims_known"`
	// RunnerCPUMicrosPerStep is the processes' CPU time, summed, per step.
	RunnerCPUMicrosPerStep float64        `json:"runner_cpu_us_per_step"`
	Workers                []workerReport `json:"workers"`
}

func runScale(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions) (scaleResult, error) {
	res := scaleResult{Steps: o.steps, Concurrency: o.concurrency, PoolPerProcess: o.poolSize}
	exe, err := os.Executable()
	if err != nil {
		return res, fmt.Errorf("finding this program to start runner processes: %w", err)
	}
	for _, n := range []int{1, o.scaleProcs} {
		fmt.Fprintf(o.progress, "bench: scale: %s of this binary work %d single-step tasks down, max_concurrent_steps %d each\n", processes(n), o.steps, o.concurrency)
		run, err := runScaleCase(ctx, env, srv, o, exe, n)
		if err != nil {
			return res, fmt.Errorf("%s: %w", processes(n), err)
		}
		empty := "unknown"
		if run.EmptyClaimsKnown {
			empty = strconv.FormatInt(run.EmptyClaims, 10)
		}
		fmt.Fprintf(o.progress, "bench:   worked down in %.2fs: %.0f steps/s in total; %d claims, %s empty\n", run.WorkDownSeconds, run.StepsPerSec, run.ClaimQueries, empty)
		if n == 1 {
			res.One = run
		} else {
			res.Many = run
		}
	}
	if res.One.StepsPerSec > 0 {
		res.Ratio = res.Many.StepsPerSec / res.One.StepsPerSec
	}
	return res, nil
}

// runScaleCase inserts the backlog in a fresh database, then has n runner
// processes work it down.
func runScaleCase(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions, exe string, n int) (scaleRun, error) {
	run := scaleRun{Processes: n}
	sc, err := srv.scenario(ctx, env, fmt.Sprintf("scale%d", n), 2) // the bench only submits here
	if err != nil {
		return run, err
	}
	defer sc.cleanup()
	url, err := srv.databaseURL(sc.database)
	if err != nil {
		return run, err
	}
	client := runner.NewClient(sc.pool, runner.ClientConfig{})
	tpl, err := client.RegisterTemplate(ctx, []byte(singleStepTemplate(sc.namespace)))
	if err != nil {
		return run, err
	}
	insertStart := time.Now()
	if err := submitBacklog(ctx, client, tpl, o.steps, benchSubmitChunk, nil); err != nil {
		return run, err
	}
	run.InsertSeconds = time.Since(insertStart).Seconds()
	// As in the backlog scenario; the whole database, so that no table is named.
	if _, err := sc.pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return run, err
	}

	g, err := startBenchWorkers(ctx, exe, url, o, sc.namespace, n)
	if err != nil {
		return run, err
	}
	defer g.stop()
	start, err := g.start()
	if err != nil {
		return run, err
	}
	if err := g.waitCompleted(ctx, int64(o.steps), o.scenarioTime); err != nil {
		return run, err
	}
	reports, err := g.finish()
	if err != nil {
		return run, err
	}
	return measureScale(run, start, reports, o.steps)
}

// measureScale adds the processes' reports up.
func measureScale(run scaleRun, start time.Time, reports []workerReport, steps int) (scaleRun, error) {
	var last, completed, failed int64
	var cpu float64
	run.EmptyClaimsKnown = true
	for _, r := range reports {
		last = max(last, r.LastDoneUnixNano)
		completed += r.Completed
		failed += r.Failed
		cpu += r.CPUSeconds
		run.ClaimQueries += r.ClaimQueries
		run.EmptyClaims += r.EmptyClaims
		run.EmptyClaimsKnown = run.EmptyClaimsKnown && r.EmptyClaimsKnown
	}
	run.Workers = reports
	if failed > 0 {
		return run, fmt.Errorf("%d steps or tasks failed with a no-op handler", failed)
	}
	// Every task completes once, in one of the processes.
	if completed != int64(steps) {
		return run, fmt.Errorf("the runner processes saw %d tasks complete, want %d", completed, steps)
	}
	elapsed := time.Unix(0, last).Sub(start)
	if elapsed <= 0 {
		return run, fmt.Errorf("the last task completed %s before the start", -elapsed)
	}
	run.WorkDownSeconds = elapsed.Seconds()
	run.StepsPerSec = float64(steps) / elapsed.Seconds()
	run.RunnerCPUMicrosPerStep = cpu * 1e6 / float64(steps)
	return run, nil
}

// workerGroup is the bench-worker processes of one run. stop ends them
// all, whatever happened: the caller defers it.
type workerGroup struct {
	procs    []*workerProc
	signal   chan struct{} // a process reported, or exited (capacity 1)
	stopOnce sync.Once
}

type workerProc struct {
	i         int
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	done      chan struct{} // closed once the process has exited
	err       error         // cmd.Wait's, once done is closed
	ready     atomic.Bool
	completed atomic.Int64
	result    atomic.Pointer[workerReport]
	bad       atomic.Pointer[string] // a line that was not the protocol's
}

// startBenchWorkers starts n bench-workers and waits until each is ready.
func startBenchWorkers(ctx context.Context, exe, url string, o benchOptions, ns string, n int) (*workerGroup, error) {
	g := &workerGroup{signal: make(chan struct{}, 1)}
	args := []string{"bench-worker", "--namespace", ns, "--concurrency", strconv.Itoa(o.concurrency), "--pool", strconv.Itoa(o.poolSize),
		"--flush-batch", strconv.Itoa(o.flushBatch), "--flush-writers", strconv.Itoa(o.flushWriters), "--flush-interval", o.flushEvery.String()}
	// The URL goes in the environment: on the command line, every user
	// of the machine could read a password in it.
	environ := append(append(environWithout("DATABASE_URL"), "DATABASE_URL="+url), benchWorkerEnv...)
	for i := range n {
		if err := g.spawn(exe, slices.Concat(args, []string{"--label", fmt.Sprintf("scale%d-%d", n, i)}), environ, o.progress); err != nil {
			g.stop()
			return nil, err
		}
	}
	if err := g.waitFor(ctx, time.Minute, "ready", func() bool {
		for _, p := range g.procs {
			if !p.ready.Load() {
				return false
			}
		}
		return true
	}); err != nil {
		g.stop()
		return nil, err
	}
	return g, nil
}

func (g *workerGroup) spawn(exe string, args, environ []string, progress io.Writer) error {
	p := &workerProc{i: len(g.procs), done: make(chan struct{})}
	p.cmd = exec.Command(exe, args...)
	p.cmd.Env = environ
	// A process group of its own: a terminal's Ctrl-C reaches the bench
	// alone, which then stops the workers in order; and the kernel kills
	// a worker whose bench died (Pdeathsig, Linux).
	procgroup.Set(p.cmd)
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return err
	}
	p.cmd.Stdout = &workerOut{p: p, g: g}
	p.cmd.Stderr = &linePrefixer{w: progress, prefix: fmt.Sprintf("bench:   [runner process %d] ", p.i)}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("starting runner process %d (%s): %w", p.i, exe, err)
	}
	g.procs = append(g.procs, p)
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
		g.notify()
	}()
	return nil
}

func (g *workerGroup) notify() {
	select {
	case g.signal <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds, failing when a process exits first,
// after timeout, or when ctx ends.
func (g *workerGroup) waitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !cond() {
		for _, p := range g.procs {
			select {
			case <-p.done:
				return fmt.Errorf("runner process %d exited before it was %s: %v%s (its output is above)", p.i, what, p.err, p.badLine())
			default:
			}
		}
		select {
		case <-g.signal:
		case <-deadline.C:
			return fmt.Errorf("%w: the runner processes were not %s within %s", errBenchTimeout, what, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// start tells every process to start its runner and returns when the
// first was told.
func (g *workerGroup) start() (time.Time, error) {
	t := time.Now()
	for _, p := range g.procs {
		if _, err := io.WriteString(p.stdin, "start\n"); err != nil {
			return t, fmt.Errorf("starting runner process %d: %w", p.i, err)
		}
	}
	return t, nil
}

// waitCompleted waits until the processes have seen target tasks complete.
func (g *workerGroup) waitCompleted(ctx context.Context, target int64, timeout time.Duration) error {
	var sum int64
	return g.waitFor(ctx, timeout, fmt.Sprintf("done with %d tasks", target), func() bool {
		sum = 0
		for _, p := range g.procs {
			sum += p.completed.Load()
		}
		return sum >= target
	})
}

// finish tells every process to stop, and returns their reports once they
// have exited.
func (g *workerGroup) finish() ([]workerReport, error) {
	for _, p := range g.procs {
		_ = p.stdin.Close()
	}
	var reports []workerReport
	var errs []error
	for _, p := range g.procs {
		select {
		case <-p.done:
		case <-time.After(time.Minute):
			errs = append(errs, fmt.Errorf("runner process %d did not stop within a minute", p.i))
			continue
		}
		r := p.result.Load()
		switch {
		case p.err != nil:
			errs = append(errs, fmt.Errorf("runner process %d: %v%s (its output is above)", p.i, p.err, p.badLine()))
		case r == nil:
			errs = append(errs, fmt.Errorf("runner process %d exited without its figures%s", p.i, p.badLine()))
		default:
			reports = append(reports, *r)
		}
	}
	return reports, errors.Join(errs...)
}

// stop ends every process: stdin closed (a graceful stop), then SIGTERM
// after 30s, then SIGKILL after 5s more; it returns once all have exited.
func (g *workerGroup) stop() {
	g.stopOnce.Do(func() {
		for _, p := range g.procs {
			_ = p.stdin.Close()
		}
		graceful := time.Now().Add(30 * time.Second)
		for _, p := range g.procs {
			wait := time.NewTimer(time.Until(graceful))
			select {
			case <-p.done:
				wait.Stop()
				continue
			case <-wait.C:
			}
			_ = procgroup.Term(p.cmd.Process)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				_ = procgroup.Kill(p.cmd.Process)
				<-p.done
			}
		}
	})
}

func (p *workerProc) badLine() string {
	if s := p.bad.Load(); s != nil {
		return fmt.Sprintf("; it wrote %q, which is not the bench-worker protocol", *s)
	}
	return ""
}

// workerOut decodes a bench-worker's stdout, a JSON message per line. It
// never blocks: it records, and signals the group.
type workerOut struct {
	p   *workerProc
	g   *workerGroup
	buf []byte
}

func (w *workerOut) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		w.line(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

func (w *workerOut) line(b []byte) {
	var m workerMsg
	if err := json.Unmarshal(b, &m); err != nil {
		s := string(b)
		w.p.bad.CompareAndSwap(nil, &s)
		return
	}
	if m.Ready {
		w.p.ready.Store(true)
	}
	if m.Completed > 0 {
		w.p.completed.Store(m.Completed)
	}
	if m.Result != nil {
		w.p.result.Store(m.Result)
	}
	w.g.notify()
}

func scaleFigures(s *scaleResult) []figure {
	how := fmt.Sprintf("%d single-step tasks inserted first, then VACUUM ANALYZE, then the runner processes (this binary, bench-worker; max_concurrent_steps %d and a pool of %d each) told to start at once; steps / (start -> the last task-complete event in any process)", s.Steps, s.Concurrency, s.PoolPerProcess)
	fs := []figure{
		{Name: "scale: 1 runner process", Value: s.One.StepsPerSec, Unit: "steps/s", How: how},
		{Name: fmt.Sprintf("scale: %d runner processes, total", s.Many.Processes), Value: s.Many.StepsPerSec, Unit: "steps/s", How: how + "; a fresh database"},
	}
	if s.Ratio > 0 {
		fs = append(fs, figure{Name: fmt.Sprintf("scale: %d processes / 1", s.Many.Processes), Value: s.Ratio, Unit: "ratio",
			Target: fmt.Sprintf(">= %.1fx", targetScaleRatio), Met: atLeast(s.Ratio, targetScaleRatio),
			How: "the processes' total steps/s ÷ one process's, same backlog size, same run"})
	}
	if s.Many.EmptyClaimsKnown {
		fs = append(fs, figure{Name: fmt.Sprintf("scale: empty claims, %d processes", s.Many.Processes), Value: float64(s.Many.EmptyClaims), Unit: "claims",
			How: fmt.Sprintf("claims that returned no step, summed over the processes, of %d claims (one process: %d of %d); counted per process from its pool's query trace: the statement run Stats().ClaimQueries times that returned Stats().Claimed rows in all",
				s.Many.ClaimQueries, s.One.EmptyClaims, s.One.ClaimQueries)})
	}
	return fs
}

func printScaleDetail(w io.Writer, s *scaleResult) {
	for _, r := range []scaleRun{s.One, s.Many} {
		empty := "unknown (the claim statement was not recognised in the query trace)"
		if r.EmptyClaimsKnown {
			empty = strconv.FormatInt(r.EmptyClaims, 10)
		}
		fmt.Fprintf(w, "  scale detail, %s: insert %.2fs, work-down %.2fs, %d claims, %s empty, runner CPU %.0f µs per step (all processes); per process:",
			processes(r.Processes), r.InsertSeconds, r.WorkDownSeconds, r.ClaimQueries, empty, r.RunnerCPUMicrosPerStep)
		for i, x := range r.Workers {
			fmt.Fprintf(w, " [%d] %d tasks, %d claims, peak RSS %.1f MB", i, x.Completed, x.ClaimQueries, x.PeakRSSMB)
		}
		fmt.Fprintln(w)
	}
}

func processes(n int) string {
	if n == 1 {
		return "1 runner process"
	}
	return fmt.Sprintf("%d runner processes", n)
}
