package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/app"
)

type benchResults struct {
	Timestamp    string          `json:"timestamp"`
	Version      string          `json:"version"`
	Quick        bool            `json:"quick"`
	Measured     string          `json:"measured"`
	Machine      machine         `json:"machine"`
	Settings     benchSettings   `json:"settings"`
	Figures      []figure        `json:"figures"`
	Backlog      *backlogResult  `json:"backlog,omitempty"`
	BacklogRuns  []backlogResult `json:"backlog_runs,omitempty"`
	Latency      *latencyResult  `json:"latency,omitempty"`
	LatencyRuns  []latencyResult `json:"latency_runs,omitempty"`
	HTTP         *httpResult     `json:"http,omitempty"`
	HTTPRuns     []httpResult    `json:"http_runs,omitempty"`
	Batch        *etlResult      `json:"batch,omitempty"`
	BatchRuns    []etlResult     `json:"batch_runs,omitempty"`
	Soak         *soakResult     `json:"soak,omitempty"`
	River        *riverResult    `json:"river,omitempty"`
	History      *historyResult  `json:"history,omitempty"`
	Scale        *scaleResult    `json:"scale,omitempty"`
	DAG          *dagResult      `json:"dag_sizes,omitempty"`
	TotalSeconds float64         `json:"total_seconds"`
}

type machine struct {
	CPUModel   string       `json:"cpu_model"`
	Cores      int          `json:"cores"`
	GOMAXPROCS int          `json:"gomaxprocs"`
	MemoryMB   float64      `json:"memory_mb,omitempty"`
	Kernel     string       `json:"kernel,omitempty"`
	Go         string       `json:"go"`
	GC         string       `json:"gc"`
	Postgres   postgresInfo `json:"postgres"`
}

type benchSettings struct {
	Steps           int     `json:"steps"`
	Concurrency     int     `json:"max_concurrent_steps"`
	RateStepsPerSec float64 `json:"rate_steps_per_sec"`
	DurationSeconds float64 `json:"duration_seconds"`
	WarmupSeconds   float64 `json:"warmup_seconds"`
	Repeat          int     `json:"repeat"`
	PoolMaxConns    int     `json:"pool_max_conns"`
	FlushBatch      int     `json:"flush_batch"`
	FlushWriters    int     `json:"flush_writers"`
	FlushIntervalMs float64 `json:"flush_interval_ms"`
	Mode            string  `json:"mode"`
	HTTPSteps       int     `json:"http_steps,omitempty"`
	BatchMax        int     `json:"batch_max,omitempty"`
	BatchWindowMs   float64 `json:"batch_window_ms,omitempty"`
	// The batch workflow scenario's large task and runs.
	BatchRows           int `json:"batch_rows,omitempty"`
	BatchCursors        int `json:"batch_cursors,omitempty"`
	BatchRuns           int `json:"batch_runs,omitempty"`
	BatchCheckpointRows int `json:"batch_checkpoint_rows,omitempty"`
	// The soak scenario's length and offered rate (--soak, --soak-rate).
	SoakSeconds         float64 `json:"soak_seconds,omitempty"`
	SoakRateStepsPerSec float64 `json:"soak_rate_steps_per_sec,omitempty"`
	// --vs-river, and the history, scale and DAG-size scenarios' sizes.
	VsRiver        bool  `json:"vs_river,omitempty"`
	HistorySteps   int   `json:"history_steps,omitempty"`
	ScaleProcesses int   `json:"scale_processes,omitempty"`
	DAGChains      []int `json:"dag_chains,omitempty"`
	DAGFanout      int   `json:"dag_fanout,omitempty"`
}

// figure is one line of the table: a measured value next to its target.
type figure struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target,omitempty"` // e.g. ">= 15000"
	Met    *bool   `json:"met,omitempty"`
	How    string  `json:"how"`
}

func atLeast(v, t float64) *bool { b := v >= t; return &b }
func below(v, t float64) *bool   { b := v < t; return &b }
func atMost(v, t float64) *bool  { b := v <= t; return &b }

func figures(r *benchResults) []figure {
	var fs []figure
	if b := r.Backlog; b != nil {
		fs = append(fs,
			figure{Name: "backlog work-down", Value: b.StepsPerSec, Unit: "steps/s",
				How: fmt.Sprintf("%d single-step tasks inserted first, then %s (the statistics autovacuum would have gathered), then one runner (max_concurrent_steps %d) started; steps / (runner start -> last task-complete event)", b.Steps, backlogVacuum, r.Settings.Concurrency)},
		)
		if b.RunnerCPUMicrosPerStep > 0 {
			fs = append(fs, figure{Name: "runner CPU per step (backlog)", Value: b.RunnerCPUMicrosPerStep, Unit: "µs",
				How: "user+system CPU time of this process during the work-down / steps; steadier than steps/s on a busy machine"})
		}
		if b.ServerCPUMicrosPerStep > 0 {
			fs = append(fs, figure{Name: "PostgreSQL CPU per step (backlog)", Value: b.ServerCPUMicrosPerStep, Unit: "µs",
				How: "CPU time of every process of the throwaway cluster during the work-down (/proc) / steps"})
		}
		fs = append(fs,
			figure{Name: "backlog insert", Value: b.InsertTasksPerSec, Unit: "tasks/s",
				How: fmt.Sprintf("Client.SubmitMany, %d tasks per transaction, before the runner starts", b.InsertBatch)},
			figure{Name: "runner peak RSS (backlog)", Value: b.Memory.PeakRSSMB, Unit: "MB",
				Target: fmt.Sprintf("< %d", targetRSSMB), Met: below(b.Memory.PeakRSSMB, targetRSSMB),
				How: b.Memory.PeakRSSSource + "; includes the bench's own bookkeeping"},
			figure{Name: "runner peak Go heap (backlog)", Value: b.Memory.PeakGoHeapMB, Unit: "MB",
				How: "highest live+unswept heap objects (runtime/metrics) sampled every 20ms"},
		)
	}
	if l := r.Latency; l != nil {
		how := fmt.Sprintf("%d linear-4 tasks (%.0f steps/s offered, open loop, %s mode, first %.1fs discarded; %d tasks run and tables analysed before)",
			l.TasksMeasured, l.OfferedStepsPerSec, l.Mode, l.WarmupSeconds, l.HistoryTasks)
		fs = append(fs,
			figure{Name: "linear-4 end to end p50", Value: l.EndToEndMs.P50, Unit: "ms",
				Target: fmt.Sprintf("< %g", float64(targetE2EP50Ms)), Met: below(l.EndToEndMs.P50, targetE2EP50Ms),
				How: "Submit called -> task-complete event; " + how},
			figure{Name: "linear-4 end to end p95", Value: l.EndToEndMs.P95, Unit: "ms", How: "as p50"},
			figure{Name: "linear-4 end to end p99", Value: l.EndToEndMs.P99, Unit: "ms", How: "as p50"},
			figure{Name: "enqueue to handler start p50", Value: l.EnqueueToStartMs.P50, Unit: "ms",
				Target: fmt.Sprintf("< %g", float64(targetE2SP50Ms)), Met: below(l.EnqueueToStartMs.P50, targetE2SP50Ms),
				How: fmt.Sprintf("step run_at (ready time, set before the commit that made it ready) -> handler start, %d steps; %s", l.EnqueueToStartMs.N, how)},
			figure{Name: "enqueue to handler start p99", Value: l.EnqueueToStartMs.P99, Unit: "ms",
				Target: fmt.Sprintf("< %g", float64(targetE2SP99Ms)), Met: below(l.EnqueueToStartMs.P99, targetE2SP99Ms),
				How: "as p50"},
		)
	}
	if h := r.HTTP; h != nil {
		fs = append(fs, httpFigures(h, r.Settings.Concurrency)...)
		if r.Backlog != nil {
			fs = append(fs, httpToBacklogFigures(h, r.Backlog.StepsPerSec)...)
		}
	}
	if b := r.Batch; b != nil {
		fs = append(fs, etlFigures(b)...)
	}
	if s := r.Soak; s != nil {
		fs = append(fs, soakFigures(s)...)
	}
	if rv := r.River; rv != nil {
		fs = append(fs, riverFigures(rv)...)
	}
	if h := r.History; h != nil {
		fs = append(fs, historyFigures(h)...)
	}
	if sc := r.Scale; sc != nil {
		fs = append(fs, scaleFigures(sc)...)
	}
	if d := r.DAG; d != nil {
		fs = append(fs, dagFigures(d)...)
	}
	return fs
}

// describe says what was measured, how and on what, in one line.
func describe(r *benchResults, srv *benchServer) string {
	m := r.Machine
	pg := m.Postgres
	dur := "fsync " + pg.Fsync + ", synchronous_commit " + pg.SynchronousCommit
	handlers := "in-process Go no-op handlers"
	switch {
	case r.HTTP != nil && (r.Backlog != nil || r.Latency != nil):
		handlers += " (backlog, latency) and HTTP+JSON callouts to a no-op handler service on loopback that also runs in this process (HTTP scenarios)"
	case r.HTTP != nil:
		handlers = "HTTP+JSON callouts to a no-op handler service on loopback that also runs in this process"
	}
	if r.Soak != nil && r.Backlog == nil && r.Latency == nil && r.HTTP == nil && r.Batch == nil {
		handlers = "in-process Go no-op handlers (soak: 1 first attempt in " + strconv.Itoa(benchSoakRetryEvery) + " fails and is retried)"
	}
	if r.Batch != nil {
		if r.Backlog == nil && r.Latency == nil && r.HTTP == nil {
			handlers = "in-process Go batch handlers (rows generated, JSON-encoded and checksummed)"
		} else {
			handlers += "; in-process Go batch handlers (rows generated, JSON-encoded and checksummed) in the batch workflow"
		}
	}
	if r.Backlog == nil && r.Latency == nil && r.HTTP == nil && r.Batch == nil && r.Soak == nil {
		// Only the scale and DAG-size scenarios: no runner in this process.
		return describeMore(r)
	}
	var more string
	if r.River != nil {
		more += "; River by cmd/riverbench, built with go build and run as a child process"
	}
	if r.Scale != nil {
		more += "; scale: runners in child processes of this binary"
	}
	if r.DAG != nil {
		more += "; DAG sizes: the management API and an HTTP no-op handler service in this process, on loopback"
	}
	return fmt.Sprintf("in-process runner with %s (the runner is this process), hybrid mode%s; "+
		"PostgreSQL %s (%s, %s, %s); %s, %d cores, %s, %s",
		handlers, more, pg.Version, pg.Source, pg.Isolation, dur, m.CPUModel, m.Cores, m.Go, m.GC)
}

func printBenchTable(w io.Writer, r *benchResults) {
	title := "tasker-runner bench"
	if r.Quick {
		title += " --quick"
	}
	if r.Soak != nil {
		title += " --soak " + time.Duration(r.Soak.DurationSeconds*float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(w, "\n%s (%s, %s)\n", title, r.Version, r.Timestamp)
	fmt.Fprintf(w, "measured: %s\n\n", r.Measured)
	printFigures(w, r.Figures)
	fmt.Fprintf(w, "\nhow:\n")
	for _, f := range r.Figures {
		if f.How != "as p50" {
			fmt.Fprintf(w, "  %s: %s\n", f.Name, f.How)
		}
	}
	printCPUs(w, r)
	printDetails(w, r)
	if b := r.Batch; b != nil {
		printCPU(w, fmt.Sprintf("batch workflow, %s rows", groupThousands(int64(b.Large.Rows))), b.Large.CPU)
		printETLDetail(w, b)
	}
	if s := r.Soak; s != nil {
		printSoakDetail(w, s)
	}
	if rv := r.River; rv != nil {
		printRiverDetail(w, rv)
	}
	if h := r.History; h != nil {
		printHistoryDetail(w, h)
	}
	if sc := r.Scale; sc != nil {
		printScaleDetail(w, sc)
	}
	if d := r.DAG; d != nil {
		printDAGDetail(w, d)
	}
	fmt.Fprintln(w)
}

// printFigures prints the table of figures against their targets.
func printFigures(w io.Writer, figures []figure) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "FIGURE\tVALUE\tTARGET\t\n")
	for _, f := range figures {
		met := ""
		if f.Met != nil {
			met = "ok"
			if !*f.Met {
				met = "MISSED"
			}
		}
		target := f.Target
		switch {
		case target == "":
			target = "-"
		case f.Unit != "ratio": // a ratio's target says it all: ">= 1.0x River (goal 1.3x)"
			target += " " + f.Unit
		}
		value := formatValue(f.Value)
		if f.Unit == "claims" { // a count
			value = groupThousands(int64(f.Value))
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\n", f.Name, value, f.Unit, target, met)
	}
	_ = tw.Flush()
}

// printCPUs prints the CPU use of the backlog, latency and HTTP runs.
func printCPUs(w io.Writer, r *benchResults) {
	if b := r.Backlog; b != nil {
		printCPU(w, "backlog work-down", b.CPU)
	}
	if l := r.Latency; l != nil {
		printCPU(w, "latency run", l.CPU)
	}
	if h := r.HTTP; h != nil {
		if h.Unbatched != nil {
			printCPU(w, "HTTP unbatched work-down (runner = runner + handler service)", h.Unbatched.CPU)
		}
		if h.Batched != nil {
			printCPU(w, "HTTP batched work-down (runner = runner + handler service)", h.Batched.CPU)
		}
		if h.Raw != nil {
			printCPU(w, "raw handler run (runner = invoker + handler service)", h.Raw.CPU)
		}
	}
}

// printDetails prints the backlog's, the latency run's and the HTTP runs'
// details.
func printDetails(w io.Writer, r *benchResults) {
	if b := r.Backlog; b != nil {
		fmt.Fprintf(w, "  backlog detail: insert %.2fs, work-down %.2fs, %d claim queries (%.0f steps each), %d completion writes (%.0f steps each; they claimed %d steps), runner CPU %.0f µs per step",
			b.InsertSeconds, b.WorkDownSeconds, b.ClaimQueries, b.MeanClaimSize, b.Flushes, b.MeanFlushSize, b.ClaimedWithCompletions, b.RunnerCPUMicrosPerStep)
		if b.MedianOf > 1 {
			fmt.Fprintf(w, "; the median run of %d by steps/s, every figure from it", b.MedianOf)
		}
		fmt.Fprintln(w)
	}
	if l := r.Latency; l != nil {
		fmt.Fprintf(w, "  latency detail: enqueue to start: first step p50 %.2f / p99 %.2f ms (includes Submit's transaction, p50 %.2f ms), later steps p50 %.2f / p99 %.2f ms = completion write p50 %.2f ms + wake, claim, dispatch p50 %.2f ms; e2e max %.2f ms",
			l.EnqueueToStartFirstStepMs.P50, l.EnqueueToStartFirstStepMs.P99, l.SubmitMs.P50, l.EnqueueToStartChildMs.P50, l.EnqueueToStartChildMs.P99,
			l.ChildReadyToWrittenMs.P50, l.ChildWrittenToStartMs.P50, l.EndToEndMs.Max)
		if l.MedianOf > 1 {
			fmt.Fprintf(w, "; the median run of %d by end to end p50, every figure from it", l.MedianOf)
		}
		fmt.Fprintln(w)
	}
	if h := r.HTTP; h != nil {
		fmt.Fprintf(w, "  HTTP note: %s\n", h.Note)
		for _, x := range []struct {
			name string
			b    *backlogResult
		}{{"unbatched", h.Unbatched}, {fmt.Sprintf("batch_max %d", h.BatchMax), h.Batched}} {
			if b := x.b; b != nil {
				fmt.Fprintf(w, "  HTTP %s detail: insert %.2fs, work-down %.2fs, %d claim queries (%.0f steps each), %d completion writes (%.0f steps each; they claimed %d steps), %d handler requests (%.1f steps each) on %d new connections",
					x.name, b.InsertSeconds, b.WorkDownSeconds, b.ClaimQueries, b.MeanClaimSize, b.Flushes, b.MeanFlushSize, b.ClaimedWithCompletions, b.HandlerRequests, b.MeanBatchSize, b.HandlerConnections)
				if b.ServerCPUMicrosPerStep > 0 {
					fmt.Fprintf(w, ", PostgreSQL CPU %.0f µs per step", b.ServerCPUMicrosPerStep)
				}
				fmt.Fprintln(w)
			}
		}
		if h.MedianOf > 1 {
			fmt.Fprintf(w, "  HTTP figures: the median run of %d by its first work-down's steps/s, every figure from it\n", h.MedianOf)
		}
	}
}

func formatValue(v float64) string {
	switch {
	case v >= 1000:
		return groupThousands(int64(v + 0.5))
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func machineInfo() machine {
	m := machine{Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: goVersion(), GC: app.GCSetting()}
	m.CPUModel = cpuModel()
	if kb := procFileKB("/proc/meminfo", "MemTotal"); kb > 0 {
		m.MemoryMB = float64(kb) / 1024
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return m
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU (" + runtime.GOARCH + ")"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU (" + runtime.GOARCH + ")"
}

// procFileKB reads a "Key: N kB" line of a /proc file; 0 when absent.
func procFileKB(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range bytes.Lines(b) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || string(k) != key {
			continue
		}
		fields := strings.Fields(string(v))
		if len(fields) == 0 {
			return 0
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		return n
	}
	return 0
}

// procStatusMB returns a memory figure of /proc/self/status in MB.
func procStatusMB(key string) float64 {
	return float64(procFileKB("/proc/self/status", key)) / 1024
}

// resetPeakRSS resets the process's VmHWM (Linux >= 4.0) so that it covers
// only what follows. It reports whether that worked.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// memSampler records the highest Go heap and RSS seen while it runs.
type memSampler struct {
	stopCh   chan struct{}
	wg       sync.WaitGroup
	peakHeap uint64
	peakRSS  float64
}

func startMemSampler(every time.Duration) *memSampler {
	s := &memSampler{stopCh: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			s.peakHeap = max(s.peakHeap, sample[0].Value.Uint64())
		}
		s.peakRSS = max(s.peakRSS, procStatusMB("VmRSS"))
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			read()
			select {
			case <-s.stopCh:
				read()
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peaks in MB.
func (s *memSampler) stop() (heapMB, rssMB float64) {
	close(s.stopCh)
	s.wg.Wait()
	return float64(s.peakHeap) / (1 << 20), s.peakRSS
}

// contendedCores is how much CPU other processes may use during a scenario
// before the table warns that the figures are pessimistic.
const contendedCores = 0.2

func printCPU(w io.Writer, scenario string, u cpuUsage) {
	if !u.known {
		return
	}
	fmt.Fprintf(w, "  CPU during the %s: machine %.2f cores busy, runner %.2f", scenario, u.MachineCores, u.RunnerCores)
	if u.serverKnown {
		fmt.Fprintf(w, ", PostgreSQL %.2f, other processes %.2f", u.ServerCores, u.OtherCores)
		if u.OtherCores > contendedCores {
			fmt.Fprintf(w, " (WARNING: other work competed for the CPUs; the figures are pessimistic)")
		}
	}
	fmt.Fprintln(w)
}

// describeMore is describe for a run of only the scale and DAG-size
// scenarios.
func describeMore(r *benchResults) string {
	m, pg := r.Machine, r.Machine.Postgres
	var parts []string
	if r.Scale != nil {
		parts = append(parts, "scale: runners with in-process Go no-op handlers in child processes of this binary")
	}
	if r.DAG != nil {
		parts = append(parts, "DAG sizes: a runner and its management API in this process, HTTP+JSON callouts to a no-op handler service in this process, on loopback")
	}
	return fmt.Sprintf("%s; hybrid mode; PostgreSQL %s (%s, %s, fsync %s, synchronous_commit %s); %s, %d cores, %s, %s",
		strings.Join(parts, "; "), pg.Version, pg.Source, pg.Isolation, pg.Fsync, pg.SynchronousCommit, m.CPUModel, m.Cores, m.Go, m.GC)
}
