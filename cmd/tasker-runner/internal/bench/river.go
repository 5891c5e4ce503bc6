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
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
)

// --vs-river: River (riverqueue/river), the reference Go+PostgreSQL queue,
// measured by cmd/riverbench right before and right after the backlog
// scenario, on the same server and with the same backlog size, each time
// in a fresh database. The backlog's target is a ratio to River in the
// same run: figures of different runs on a shared VM move by ±30%.
// cmd/riverbench is a Go module of its own so that River stays out of the
// runner's go.mod: the bench builds it with the go command.

// benchModule is the module whose cmd/riverbench --vs-river builds.
const benchModule = "github.com/tasker-runner/tasker-runner"

type riverWhen int

const (
	riverBefore riverWhen = iota
	riverAfter
)

func (w riverWhen) String() string {
	if w == riverBefore {
		return "before"
	}
	return "after"
}

// riverRun is one riverbench work-down, as riverbench reports it.
type riverRun struct {
	Jobs             int     `json:"jobs"`
	Seconds          float64 `json:"seconds"`
	JobsPerSec       float64 `json:"jobs_per_sec"`
	ProcessCPUPerJob float64 `json:"process_cpu_us_per_job"`
	OtherCPUPerJob   float64 `json:"other_cpu_us_per_job"`
}

// riverOutput is what riverbench -json prints.
type riverOutput struct {
	River      string     `json:"river"`
	Postgres   string     `json:"postgres"`
	MaxWorkers int        `json:"max_workers"`
	Runs       []riverRun `json:"runs"`
}

type riverResult struct {
	River        string  `json:"river_version"`
	MaxWorkers   int     `json:"max_workers"`
	Source       string  `json:"source_dir"`
	BuildSeconds float64 `json:"build_seconds"`
	// Before and After are the runs right before and right after the
	// backlog scenario (before its first run and after its last with
	// --repeat).
	Before *riverRun `json:"before_backlog,omitempty"`
	After  *riverRun `json:"after_backlog,omitempty"`
	// MeanJobsPerSec is the mean of the two runs' jobs/s.
	MeanJobsPerSec     float64 `json:"mean_jobs_per_sec"`
	BacklogStepsPerSec float64 `json:"backlog_steps_per_sec"`
	// Ratio is the backlog's steps/s over MeanJobsPerSec.
	Ratio float64 `json:"backlog_to_river_ratio"`
}

// Targets: at least River's rate, and the goal of 1.3 times it.
const (
	targetRiverRatio     = 1.0
	targetRiverRatioGoal = 1.3
)

// riverBench is a built riverbench and the runs made with it.
type riverBench struct {
	res riverResult
	bin string
	tmp string
}

// prepareRiver finds cmd/riverbench and builds it into a temporary
// directory; close removes it.
func prepareRiver(ctx context.Context, srv *benchServer, o benchOptions) (*riverBench, error) {
	if srv.shared {
		return nil, errors.New("riverbench needs a fresh database for each run, and the role may not create databases")
	}
	dir, err := riverSource(o.riverDir)
	if err != nil {
		return nil, err
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("building %s needs the go command, which is not on PATH: %w", dir, err)
	}
	tmp, err := os.MkdirTemp("", "tasker-bench-river-")
	if err != nil {
		return nil, err
	}
	rb := &riverBench{tmp: tmp, bin: filepath.Join(tmp, "riverbench"), res: riverResult{Source: dir}}
	fmt.Fprintf(o.progress, "bench: --vs-river: building %s with %s\n", dir, goCmd)
	start := time.Now()
	build := exec.CommandContext(ctx, goCmd, "build", "-o", rb.bin, ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		rb.close()
		return nil, fmt.Errorf("go build in %s: %w\n%s", dir, err, bytes.TrimSpace(out))
	}
	rb.res.BuildSeconds = time.Since(start).Seconds()
	return rb, nil
}

func (rb *riverBench) close() { _ = os.RemoveAll(rb.tmp) }

// riverSource returns the riverbench source directory: dir when given,
// else cmd/riverbench of the tasker-runner module found in the working
// directory or above it.
func riverSource(dir string) (string, error) {
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		root, err := findModuleRoot(wd, benchModule)
		if err != nil {
			return "", fmt.Errorf("%w: pass --river-dir", err)
		}
		dir = filepath.Join(root, "cmd", "riverbench")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for _, f := range []string{"go.mod", "main.go"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return "", fmt.Errorf("no riverbench source in %s (%s is missing): pass --river-dir", dir, f)
		}
	}
	return dir, nil
}

// findModuleRoot walks up from dir to the directory whose go.mod declares
// module.
func findModuleRoot(dir, module string) (string, error) {
	for d := dir; ; {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && goModModule(b) == module {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod of module %s in %s or above it", module, dir)
		}
		d = parent
	}
}

// goModModule returns the module path a go.mod declares.
func goModModule(b []byte) string {
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// measure runs riverbench once in a fresh database with o.steps jobs.
func (rb *riverBench) measure(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions, when riverWhen) error {
	fmt.Fprintf(o.progress, "bench: River work-down %s the backlog scenario: %d no-op jobs (cmd/riverbench, fresh database)\n", when, o.steps)
	db, err := srv.createDatabase(ctx, "river")
	if err != nil {
		return err
	}
	defer srv.dropDatabase(ctx, env, db)
	url, err := srv.databaseURL(db)
	if err != nil {
		return err
	}
	out, err := rb.exec(ctx, o, url)
	if err != nil {
		return err
	}
	if len(out.Runs) != 1 || !(out.Runs[0].JobsPerSec > 0) {
		return fmt.Errorf("riverbench reported %d runs, want one with a rate: %+v", len(out.Runs), out.Runs)
	}
	rb.res.River, rb.res.MaxWorkers = out.River, out.MaxWorkers
	run := out.Runs[0]
	if when == riverBefore {
		rb.res.Before = &run
	} else {
		rb.res.After = &run
	}
	fmt.Fprintf(o.progress, "bench:   River %s: %.0f jobs/s\n", out.River, run.JobsPerSec)
	return nil
}

// exec runs riverbench against url and decodes its JSON. The URL goes in
// DATABASE_URL (riverbench's -url default), not on the command line, where
// every user of the machine could read a password in it. On ctx's end
// riverbench gets SIGINT (it stops its client) and, 30s later, SIGKILL.
func (rb *riverBench) exec(ctx context.Context, o benchOptions, url string) (riverOutput, error) {
	var out riverOutput
	cmd := exec.CommandContext(ctx, rb.bin, "-jobs", fmt.Sprint(o.steps), "-json", "-repeat", "1")
	cmd.Env = append(environWithout("DATABASE_URL"), "DATABASE_URL="+url)
	var stdout bytes.Buffer
	stderr := &linePrefixer{w: o.progress, prefix: "bench:   "}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	err := cmd.Run()
	stderr.flush()
	if err != nil {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		return out, fmt.Errorf("riverbench failed: %w (its output is above)", err)
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return out, fmt.Errorf("riverbench's output is not its JSON: %w: %q", err, stdout.String())
	}
	return out, nil
}

// environWithout is the process environment less the named variables.
func environWithout(names ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(names, k) {
			env = append(env, kv)
		}
	}
	return env
}

// compare completes the result with the backlog's figure, once both River
// runs are in.
func (rb *riverBench) compare(backlog *backlogResult) *riverResult {
	r := rb.res
	if r.Before != nil && r.After != nil {
		r.MeanJobsPerSec = (r.Before.JobsPerSec + r.After.JobsPerSec) / 2
	}
	if backlog != nil && r.MeanJobsPerSec > 0 {
		r.BacklogStepsPerSec = backlog.StepsPerSec
		r.Ratio = backlog.StepsPerSec / r.MeanJobsPerSec
	}
	return &r
}

func riverFigures(r *riverResult) []figure {
	how := fmt.Sprintf("cmd/riverbench (River %s, MaxWorkers %d) in a fresh database on the same server: no-op jobs inserted (InsertManyFast), VACUUM ANALYZE river_job, then one River client; jobs / (client start -> last job-completed event)", r.River, r.MaxWorkers)
	var fs []figure
	if b := r.Before; b != nil {
		fs = append(fs, figure{Name: "River work-down, before the backlog", Value: b.JobsPerSec, Unit: "jobs/s",
			How: fmt.Sprintf("%d jobs right before the backlog scenario; %s", b.Jobs, how)})
	}
	if a := r.After; a != nil {
		fs = append(fs, figure{Name: "River work-down, after the backlog", Value: a.JobsPerSec, Unit: "jobs/s",
			How: fmt.Sprintf("%d jobs right after the backlog scenario; %s", a.Jobs, how)})
	}
	if r.MeanJobsPerSec > 0 {
		fs = append(fs, figure{Name: "River work-down, mean", Value: r.MeanJobsPerSec, Unit: "jobs/s",
			How: "the mean (not a median: there are two) of the River runs right before and right after the backlog scenario"})
	}
	if r.Ratio > 0 {
		fs = append(fs, figure{Name: "backlog / River", Value: r.Ratio, Unit: "ratio",
			Target: fmt.Sprintf(">= %.1fx River (goal %.1fx)", targetRiverRatio, targetRiverRatioGoal), Met: atLeast(r.Ratio, targetRiverRatio),
			How: fmt.Sprintf("backlog work-down (%.0f steps/s) ÷ the mean of the two River runs (%.0f jobs/s): same server, same backlog size, River right before and right after", r.BacklogStepsPerSec, r.MeanJobsPerSec)})
	}
	return fs
}

func printRiverDetail(w io.Writer, r *riverResult) {
	fmt.Fprintf(w, "  River detail: River %s, MaxWorkers %d, built from %s in %.1fs", r.River, r.MaxWorkers, r.Source, r.BuildSeconds)
	for _, x := range []struct {
		name string
		run  *riverRun
	}{{"before", r.Before}, {"after", r.After}} {
		if x.run != nil {
			fmt.Fprintf(w, "; %s: %d jobs in %.2fs, CPU per job: River process %.0f µs, rest of the machine %.0f µs",
				x.name, x.run.Jobs, x.run.Seconds, x.run.ProcessCPUPerJob, x.run.OtherCPUPerJob)
		}
	}
	fmt.Fprintln(w)
}

// linePrefixer writes whole lines to w, each with prefix: a child's output
// among the bench's progress lines.
type linePrefixer struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (l *linePrefixer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		fmt.Fprintf(l.w, "%s%s\n", l.prefix, l.buf[:i])
		l.buf = l.buf[i+1:]
	}
}

// flush writes what is left of an unfinished last line.
func (l *linePrefixer) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		fmt.Fprintf(l.w, "%s%s\n", l.prefix, l.buf)
		l.buf = nil
	}
}
