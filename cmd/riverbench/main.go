// Command riverbench measures River (riverqueue/river) on this machine the
// way "tasker-runner bench" measures the backlog work-down: a backlog of
// no-op jobs inserted first, then one client works it down; jobs/s is jobs
// / (client start -> last job-completed event). The backlog target is
// a ratio to River on the same machine: this is how to get
// that figure. It is a module of its own so that River stays out of the
// runner's dependencies; "make bench-river" runs it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/tasker-runner/tasker-runner/runner/store/pgcluster"
)

type noopArgs struct{}

func (noopArgs) Kind() string { return "noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (*noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

// run is one measured work-down.
type run struct {
	Jobs             int     `json:"jobs"`
	Seconds          float64 `json:"seconds"`
	JobsPerSec       float64 `json:"jobs_per_sec"`
	ProcessCPUPerJob float64 `json:"process_cpu_us_per_job"`
	OtherCPUPerJob   float64 `json:"other_cpu_us_per_job"` // machine busy time less this process: PostgreSQL, on a quiet machine
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "riverbench:", err)
		os.Exit(1)
	}
}

func bench(ctx context.Context) error {
	url := flag.String("url", os.Getenv("DATABASE_URL"), "PostgreSQL to use (a database River may migrate and truncate); default: a throwaway cluster with fsync on")
	jobs := flag.Int("jobs", 100_000, "backlog size")
	workers := flag.Int("workers", 2_000, "River's MaxWorkers for the queue")
	repeat := flag.Int("repeat", 3, "work-downs to run; the median is reported")
	asJSON := flag.Bool("json", false, "print the runs and the median as JSON on stdout")
	flag.Parse()
	if *jobs <= 0 || *workers <= 0 || *repeat <= 0 {
		return errors.New("--jobs, --workers and --repeat must be positive")
	}
	if *url == "" {
		fmt.Fprintln(os.Stderr, "riverbench: starting a throwaway PostgreSQL cluster (fsync on)")
		c, err := pgcluster.Start(ctx, pgcluster.Config{Fsync: true})
		if err != nil {
			return err
		}
		defer c.Stop()
		*url = c.URL("postgres")
	}
	pool, err := pgxpool.New(ctx, *url)
	if err != nil {
		return err
	}
	defer pool.Close()
	var pgVersion string
	if err := pool.QueryRow(ctx, "SHOW server_version").Scan(&pgVersion); err != nil {
		return err
	}
	driver := riverpgxv5.New(pool)
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		return err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrating River's schema: %w", err)
	}
	var runs []run
	for i := range *repeat {
		r, err := workDown(ctx, pool, *jobs, *workers)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "riverbench: run %d/%d: %d jobs in %.2fs: %.0f jobs/s; CPU per job: River process %.0f µs, rest of the machine %.0f µs\n",
			i+1, *repeat, r.Jobs, r.Seconds, r.JobsPerSec, r.ProcessCPUPerJob, r.OtherCPUPerJob)
		runs = append(runs, r)
	}
	med := median(runs)
	fmt.Fprintf(os.Stderr, "riverbench: median of %d: %.0f jobs/s; CPU per job: River process %.0f µs, rest of the machine (PostgreSQL) %.0f µs; River %s, MaxWorkers %d, PostgreSQL %s, %d cores\n",
		len(runs), med.JobsPerSec, med.ProcessCPUPerJob, med.OtherCPUPerJob, riverVersion(), *workers, pgVersion, runtime.NumCPU())
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{
			"river": riverVersion(), "postgres": pgVersion, "max_workers": *workers, "runs": runs, "median": med,
		})
	}
	return nil
}

func workDown(ctx context.Context, pool *pgxpool.Pool, jobs, workers int) (run, error) {
	if _, err := pool.Exec(ctx, "TRUNCATE river_job"); err != nil {
		return run{}, err
	}
	ws := river.NewWorkers()
	river.AddWorker(ws, &noopWorker{})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workers}},
		Workers: ws,
	})
	if err != nil {
		return run{}, err
	}
	params := make([]river.InsertManyParams, 0, 10_000)
	for i := 0; i < jobs; i += cap(params) {
		params = params[:0]
		for j := i; j < min(i+cap(params), jobs); j++ {
			params = append(params, river.InsertManyParams{Args: noopArgs{}})
		}
		if _, err := client.InsertManyFast(ctx, params); err != nil {
			return run{}, fmt.Errorf("inserting the backlog: %w", err)
		}
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE river_job"); err != nil {
		return run{}, err
	}
	events, cancel := client.SubscribeConfig(&river.SubscribeConfig{ChanSize: jobs + 1, Kinds: []river.EventKind{river.EventKindJobCompleted}})
	defer cancel()
	m0, p0 := machineBusy(), processCPU()
	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return run{}, err
	}
	defer func() {
		stopCtx, done := context.WithTimeout(context.Background(), 30*time.Second)
		defer done()
		_ = client.Stop(stopCtx)
	}()
	deadline := time.After(10 * time.Minute)
	for n := 0; n < jobs; n++ {
		select {
		case <-events:
		case <-deadline:
			return run{}, fmt.Errorf("only %d of %d jobs completed in 10 minutes", n, jobs)
		case <-ctx.Done():
			return run{}, ctx.Err()
		}
	}
	el := time.Since(start)
	m1, p1 := machineBusy(), processCPU()
	perJob := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(jobs) }
	return run{
		Jobs: jobs, Seconds: el.Seconds(), JobsPerSec: float64(jobs) / el.Seconds(),
		ProcessCPUPerJob: perJob(p1 - p0), OtherCPUPerJob: perJob((m1 - m0) - (p1 - p0)),
	}, nil
}

func median(runs []run) run {
	by := func(f func(run) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return run{
		Jobs:             runs[0].Jobs,
		Seconds:          by(func(r run) float64 { return r.Seconds }),
		JobsPerSec:       by(func(r run) float64 { return r.JobsPerSec }),
		ProcessCPUPerJob: by(func(r run) float64 { return r.ProcessCPUPerJob }),
		OtherCPUPerJob:   by(func(r run) float64 { return r.OtherCPUPerJob }),
	}
}

// machineBusy is the CPU time the whole machine spent busy (/proc/stat).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var ticks float64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
		if i < len(f) {
			v, _ := strconv.ParseFloat(f[i], 64)
			ticks += v
		}
	}
	return time.Duration(ticks * float64(time.Second) / 100) // USER_HZ
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// riverVersion is the River module this program was built with.
func riverVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/riverqueue/river" {
				return d.Version
			}
		}
	}
	return "unknown"
}
