package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
)

// bench-worker is one runner process of the scale scenario (bench_scale.go).
// The bench starts it (this binary again, a hidden subcommand) with the
// database in DATABASE_URL, and talks to it in lines: it writes
// {"ready":true} once connected, starts its runner when it reads "start"
// on stdin, writes {"completed":N} as tasks complete (at most every 20ms),
// and when stdin ends (the bench closed it, or died) or a signal comes it
// stops the runner gracefully and writes {"result":{...}}, its figures.

// benchWorkerProgressEvery is how often a worker reports its count.
const benchWorkerProgressEvery = 20 * time.Millisecond

// workerMsg is one line a bench-worker writes on stdout.
type workerMsg struct {
	Ready     bool          `json:"ready,omitempty"`
	Completed int64         `json:"completed,omitempty"`
	Result    *workerReport `json:"result,omitempty"`
}

// workerReport is a bench-worker's figures.
type workerReport struct {
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
	// LastDoneUnixNano is the wall-clock time of its last task-complete
	// event (0 if none): the bench's end of the work-down is the latest.
	LastDoneUnixNano int64 `json:"last_done_unix_nano"`
	Claimed          int64 `json:"claimed"`
	ClaimQueries     int64 `json:"claim_queries"`
	// EmptyClaims counts the claim queries that returned no step
	// (runner.Stats.EmptyClaims); always known now.
	EmptyClaims      int64   `json:"empty_claims"`
	EmptyClaimsKnown bool    `json:"empty_claims_known"`
	Flushes          int64   `json:"flushes"`
	CPUSeconds       float64 `json:"cpu_seconds"`
	PeakRSSMB        float64 `json:"peak_rss_mb,omitempty"`
}

// WorkerCommand is one runner process of the scale scenario, started by the bench itself (a hidden command).
var WorkerCommand = cli.Command{
	Name: "bench-worker", Run: runBenchWorker,
	Summary: "one runner process of the bench's scale scenario, which starts it and talks to it on stdin and stdout",
	Usage:   "--namespace NS [flags]",
}

func runBenchWorker(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet("bench-worker")
	o := benchOptions{}
	var label string
	ns := fs.String("namespace", "", "the namespace to work")
	fs.StringVar(&label, "label", "worker", "names the runner: bench-NAMESPACE-LABEL")
	fs.IntVar(&o.concurrency, "concurrency", benchConcurrencyDefault, "the runner's max_concurrent_steps")
	fs.IntVar(&o.poolSize, "pool", benchPoolDefault, "the runner's connection pool size")
	fs.IntVar(&o.flushBatch, "flush-batch", 0, "the completer's most outcomes per write (0: the runner's default)")
	fs.IntVar(&o.flushWriters, "flush-writers", 0, "the completer's most writes at once (0: the runner's default)")
	fs.DurationVar(&o.flushEvery, "flush-interval", 0, "the completer's longest wait for company (0: the runner's default)")
	if err := cli.ParseFlags(env, fs, args); err != nil {
		return err
	}
	url, _ := env.Lookup.Lookup("DATABASE_URL")
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", cli.ErrUsage, fs.Arg(0))
	case *ns == "":
		return fmt.Errorf("%w: --namespace is required", cli.ErrUsage)
	case url == "":
		return fmt.Errorf("%w: DATABASE_URL is not set", cli.ErrUsage)
	}
	w, err := newBenchWorker(ctx, env, o, url, *ns, label)
	if err != nil {
		return err
	}
	defer w.pool.Close()
	return w.serve(ctx, os.Stdin)
}

// benchWorker is the runner of one bench-worker process.
type benchWorker struct {
	env       *cli.Env
	pool      *pgxpool.Pool
	r         *runner.Runner
	completed atomic.Int64
	failed    atomic.Int64
	lastDone  atomic.Int64
	outMu     sync.Mutex
}

func newBenchWorker(ctx context.Context, env *cli.Env, o benchOptions, url, ns, label string) (*benchWorker, error) {
	w := &benchWorker{env: env}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing DATABASE_URL %s: %w", runner.RedactURL(url), err)
	}
	cfg.MaxConns, cfg.MinConns = int32(o.poolSize), int32(o.poolSize)
	cfg.ConnConfig.RuntimeParams["application_name"] = "tasker-runner-bench-worker"
	if w.pool, err = pgxpool.NewWithConfig(ctx, cfg); err == nil {
		err = w.pool.Ping(ctx)
	}
	if err != nil {
		if w.pool != nil {
			w.pool.Close()
		}
		return nil, fmt.Errorf("connecting to %s: %w", runner.RedactURL(url), err)
	}
	funcs := &callout.Funcs{}
	funcs.Register(noopCallable, noopHandler)
	w.r, err = runner.New(w.pool, runnerConfigWith(env, o, &scenarioDB{namespace: ns}, label, funcs, w.onEvent))
	if err != nil {
		w.pool.Close()
		return nil, err
	}
	return w, nil
}

func (w *benchWorker) onEvent(ev runner.Event) {
	if ev.TaskState == "" {
		if ev.State == contracts.StepStateError {
			w.failed.Add(1)
		}
		return
	}
	if ev.TaskState != "complete" {
		w.failed.Add(1)
	}
	w.lastDone.Store(time.Now().UnixNano())
	w.completed.Add(1)
}

// serve follows the protocol above on stdin and stdout.
func (w *benchWorker) serve(ctx context.Context, stdin io.Reader) error {
	if err := w.send(workerMsg{Ready: true}); err != nil {
		return err
	}
	in := bufio.NewReader(stdin)
	line, err := in.ReadString('\n')
	if err != nil || line != "start\n" {
		return nil // told to stop before starting: nothing to report
	}
	// The end of stdin is the signal to stop. The goroutine reading it ends
	// with it; should the bench be gone, so is the pipe's other end.
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, in)
		close(eof)
	}()

	cpu0 := processCPU()
	hwmReset := resetPeakRSS()
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	if err := w.r.Start(runCtx); err != nil {
		return err
	}
	w.reportUntil(ctx, eof)
	stopErr := stopRunner(ctx, w.r)
	cancelRun()
	w.r.Wait()

	rep := w.report()
	rep.CPUSeconds = (processCPU() - cpu0).Seconds()
	if hwmReset {
		rep.PeakRSSMB = procStatusMB("VmHWM")
	}
	return errors.Join(stopErr, w.send(workerMsg{Completed: rep.Completed, Result: &rep}))
}

// reportUntil writes the completed count whenever it changed, until stdin
// ends or ctx is done.
func (w *benchWorker) reportUntil(ctx context.Context, eof <-chan struct{}) {
	t := time.NewTicker(benchWorkerProgressEvery)
	defer t.Stop()
	var sent int64
	for {
		select {
		case <-eof:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n := w.completed.Load(); n != sent {
			if w.send(workerMsg{Completed: n}) != nil {
				return // the bench is gone
			}
			sent = n
		}
	}
}

func (w *benchWorker) report() workerReport {
	st := w.r.Stats()
	rep := workerReport{
		Completed: w.completed.Load(), Failed: w.failed.Load(), LastDoneUnixNano: w.lastDone.Load(),
		Claimed: st.Claimed, ClaimQueries: st.ClaimQueries, Flushes: st.Flushes,
	}
	rep.EmptyClaims, rep.EmptyClaimsKnown = st.EmptyClaims, true
	return rep
}

func (w *benchWorker) send(m workerMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	w.outMu.Lock()
	defer w.outMu.Unlock()
	_, err = w.env.Stdout.Write(append(b, '\n'))
	return err
}
