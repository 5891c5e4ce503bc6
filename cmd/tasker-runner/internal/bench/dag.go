package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/app"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/config"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/openapi/client"
	"github.com/tasker-runner/tasker-runner/runner"
)

// The DAG-size scenario (issue 18): one task of each shape, submitted and
// run alone, tried as a user would: a runner and its management API
// started in this process as serve starts them (loopback, default
// settings), the task submitted with POST /v1/tasks through the generated
// Go client, its steps calling an HTTP no-op handler service on loopback
// registered with PUT /v1/handlers. The shapes: a linear chain of each
// --dag-chains length, and a fan-out/fan-in (a root, --dag-fanout middle
// steps, a join). Submit time is the HTTP round trip of the submission;
// time per step is (the first handler call's arrival -> the runner's
// task-complete event) / steps. Slow sizes are reported, not failed.

// Targets of issue 18: a 1,000-step chain submits in < 100 ms and runs at
// most 1.2 times as slow per step as the 100-step chain.
const (
	targetDAGSubmitMs     = 100
	targetDAGChainRatio   = 1.2
	benchDAGShapeTimeout  = 5 * time.Minute
	benchDAGWarmupChain   = 2
	benchDAGTemplateVer   = "1.0.0"
	benchDAGEndpointGlob  = "bench.*"
	benchDAGRatioLong     = 1000
	benchDAGRatioBaseline = 100
)

type dagResult struct {
	Note   string           `json:"note"`
	Shapes []dagShapeResult `json:"shapes"`
	// ChainRatio is the 1,000-step chain's time per step over the
	// 100-step chain's, when both ran.
	ChainRatio float64 `json:"chain_1000_to_100_per_step_ratio,omitempty"`
}

type dagShapeResult struct {
	Shape      string  `json:"shape"` // "chain" or "fan-out/fan-in"
	Steps      int     `json:"steps"`
	SubmitMs   float64 `json:"submit_ms"`
	RunMs      float64 `json:"run_ms"`
	PerStepMs  float64 `json:"per_step_ms"`
	EndToEndMs float64 `json:"end_to_end_ms"`
	// HandlerCalls is what the handler service received for the task.
	HandlerCalls int `json:"handler_calls"`
	// MostDependencyResults is the most results of earlier steps one call
	// received: the chain's last step and the join should get every other
	// step's (Tasker's transitive dependencies), Steps-1.
	MostDependencyResults int `json:"most_dependency_results"`
	// APIRunMs is the run as the API reports it: the task's completed_at
	// less the earliest step's last_attempted_at.
	APIRunMs float64 `json:"api_run_ms,omitempty"`
}

// dagShape is one task shape to run.
type dagShape struct {
	kind  string
	steps int
	name  string
	doc   string
}

func dagShapes(ns string, o benchOptions) []dagShape {
	var shapes []dagShape
	for _, n := range o.dagChains {
		name := fmt.Sprintf("chain%d", n)
		shapes = append(shapes, dagShape{kind: "chain", steps: n, name: name, doc: chainTemplate(ns, name, n)})
	}
	if w := o.dagFanout; w > 0 {
		name := fmt.Sprintf("fan%d", w)
		shapes = append(shapes, dagShape{kind: "fan-out/fan-in", steps: w + 2, name: name, doc: fanTemplate(ns, name, w)})
	}
	return shapes
}

func chainTemplate(ns, name string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nnamespace_name: %s\nversion: %s\nsteps:\n", name, ns, benchDAGTemplateVer)
	for i := range n {
		fmt.Fprintf(&b, "  - name: s%d\n    handler: {callable: %s}\n", i+1, noopCallable)
		if i > 0 {
			fmt.Fprintf(&b, "    dependencies: [s%d]\n", i)
		}
	}
	return b.String()
}

func fanTemplate(ns, name string, width int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nnamespace_name: %s\nversion: %s\nsteps:\n  - name: root\n    handler: {callable: %s}\n", name, ns, benchDAGTemplateVer, noopCallable)
	middle := make([]string, width)
	for i := range width {
		middle[i] = fmt.Sprintf("m%d", i+1)
		fmt.Fprintf(&b, "  - name: %s\n    handler: {callable: %s}\n    dependencies: [root]\n", middle[i], noopCallable)
	}
	fmt.Fprintf(&b, "  - name: join\n    handler: {callable: %s}\n    dependencies: [%s]\n", noopCallable, strings.Join(middle, ", "))
	return b.String()
}

// runDAG starts the server and the handler service, then runs each shape
// once, after a warm-up task.
func runDAG(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions) (dagResult, error) {
	res := dagResult{Note: "one task at a time; the runner, its management API and the no-op handler service run in this process, on loopback; default server settings (max_concurrent_steps 500, unbatched HTTP calls)"}
	if o.quick && !slices.Contains(o.dagChains, benchDAGRatioLong) {
		res.Note += "; --quick: the 1,000-step chain skipped"
	}
	if o.quick && o.dagFanout < benchDAGFanoutDefault {
		res.Note += fmt.Sprintf("; --quick: fan-out %d wide, not %d", o.dagFanout, benchDAGFanoutDefault)
	}
	d, err := startDAG(ctx, env, srv, o)
	if err != nil {
		return res, err
	}
	defer d.close()
	shapes := dagShapes(d.ns, o)
	warm := dagShape{kind: "chain", steps: benchDAGWarmupChain, name: "warmup", doc: chainTemplate(d.ns, "warmup", benchDAGWarmupChain)}
	if _, err := d.run(ctx, warm); err != nil {
		return res, fmt.Errorf("warm-up task: %w", err)
	}
	for _, sh := range shapes {
		fmt.Fprintf(o.progress, "bench: DAG sizes: a %s of %d steps, submitted over HTTP\n", sh.kind, sh.steps)
		r, err := d.run(ctx, sh)
		if err != nil {
			return res, fmt.Errorf("%s of %d steps: %w", sh.kind, sh.steps, err)
		}
		fmt.Fprintf(o.progress, "bench:   submitted in %.1f ms, ran in %.0f ms: %.2f ms per step\n", r.SubmitMs, r.RunMs, r.PerStepMs)
		res.Shapes = append(res.Shapes, r)
	}
	res.ChainRatio = dagChainRatio(res.Shapes)
	return res, nil
}

func dagChainRatio(shapes []dagShapeResult) float64 {
	var long, base float64
	for _, s := range shapes {
		switch {
		case s.Shape == "chain" && s.Steps == benchDAGRatioLong:
			long = s.PerStepMs
		case s.Shape == "chain" && s.Steps == benchDAGRatioBaseline:
			base = s.PerStepMs
		}
	}
	if long > 0 && base > 0 {
		return long / base
	}
	return 0
}

// dagBench is the server, the handler service and the API client.
type dagBench struct {
	ns           string
	api          *client.ClientWithResponses
	apiTransport *http.Transport
	svc          *noopService
	tracker      *dagTracker
	sc           *scenarioDB
	stop         func() error // stops the server, and returns what serve returned
}

// startDAG prepares a database, starts the handler service and the server,
// and registers the service's endpoint through the API.
func startDAG(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions) (_ *dagBench, err error) {
	d := &dagBench{tracker: newDAGTracker(), stop: func() error { return nil }}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if d.sc, err = srv.scenario(ctx, env, "dag", 2); err != nil {
		return nil, err
	}
	d.ns = d.sc.namespace
	url, err := srv.databaseURL(d.sc.database)
	if err != nil {
		return nil, err
	}
	if d.svc, err = startNoopServiceWith(d.tracker.called); err != nil {
		return nil, err
	}
	apiAddr, err := d.startServer(ctx, env, url)
	if err != nil {
		return nil, err
	}
	// A transport of its own, whose connections close stops.
	d.apiTransport = &http.Transport{}
	if d.api, err = client.New("http://"+apiAddr, "", client.WithHTTPClient(&http.Client{Transport: d.apiTransport, Timeout: time.Minute})); err != nil {
		return nil, err
	}
	ep := client.HandlerEndpointInput{Url: &d.svc.URL, Protocol: client.Ptr(client.HandlerEndpointInputProtocol("http"))}
	put, err := d.api.PutHandlerWithResponse(ctx, benchDAGEndpointGlob, &client.PutHandlerParams{Namespace: &d.ns}, ep)
	if err == nil {
		err = client.CheckResponse(put.HTTPResponse, put.Body)
	}
	if err != nil {
		return nil, fmt.Errorf("PUT /v1/handlers/%s: %w", benchDAGEndpointGlob, err)
	}
	return d, nil
}

// startServer runs serve in the background with the configuration's
// defaults, on a free loopback port, and returns its API's address.
func (d *dagBench) startServer(ctx context.Context, env *cli.Env, url string) (string, error) {
	cfg := config.Default()
	cfg.Database.URL = url
	cfg.Worker.WorkerID = "bench-" + d.ns + "-dag"
	cfg.Worker.Namespaces = []string{d.ns}
	cfg.Worker.Web.Port = 0
	cfg.Worker.GRPC.Enabled = false
	cfg.Worker.Callout.URLPolicy.AllowLoopback = true // the handler service is on 127.0.0.1
	quiet := *env
	quiet.Logger = slog.New(minLevel{env.Logger.Handler(), slog.LevelWarn})
	serveCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Serve(serveCtx, &quiet, cfg, app.ServeOptions{OnEvent: d.tracker.event, Ready: func(api, _ string) { ready <- api }})
	}()
	d.stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	select {
	case addr := <-ready:
		return addr, nil
	case err := <-done:
		return "", fmt.Errorf("the server stopped while starting: %w", err)
	case <-time.After(time.Minute):
		return "", fmt.Errorf("%w: the server did not start within a minute", errBenchTimeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// close stops the server, then the handler service, then drops the
// database; each only if it was started.
func (d *dagBench) close() {
	if d.apiTransport != nil {
		d.apiTransport.CloseIdleConnections()
	}
	_ = d.stop()
	if d.svc != nil {
		d.svc.close()
	}
	if d.sc != nil {
		d.sc.cleanup()
	}
}

// run registers the shape's template through the API, submits one task of
// it, waits for it to complete, and checks it through the API.
func (d *dagBench) run(ctx context.Context, sh dagShape) (dagShapeResult, error) {
	res := dagShapeResult{Shape: sh.kind, Steps: sh.steps}
	reg, err := d.api.RegisterTemplateWithResponse(ctx, client.TemplateDocument{Template: sh.doc})
	if err == nil {
		err = client.CheckResponse(reg.HTTPResponse, reg.Body)
	}
	if err != nil {
		return res, fmt.Errorf("POST /v1/templates: %w", err)
	}
	submitted := time.Now()
	task, err := d.submit(ctx, sh.name)
	if err != nil {
		return res, err
	}
	res.SubmitMs = ms(time.Since(submitted))
	t, err := d.tracker.wait(ctx, task.String(), benchDAGShapeTimeout)
	if err != nil {
		return res, err
	}
	res.RunMs = ms(t.completed.Sub(t.firstCall))
	res.PerStepMs = res.RunMs / float64(sh.steps)
	res.EndToEndMs = ms(t.completed.Sub(submitted))
	res.HandlerCalls, res.MostDependencyResults = t.calls, t.mostDeps
	if res.APIRunMs, err = d.check(ctx, task, sh.steps); err != nil {
		return res, err
	}
	return res, nil
}

// submit is POST /v1/tasks, timed by the caller up to the response's last
// byte; it returns the task's id.
func (d *dagBench) submit(ctx context.Context, name string) (uuid.UUID, error) {
	rsp, err := d.api.SubmitTask(ctx, nil, client.SubmitTaskRequest{Namespace: d.ns, Name: name, Version: client.Ptr(benchDAGTemplateVer)})
	if err != nil {
		return uuid.Nil, fmt.Errorf("POST /v1/tasks: %w", err)
	}
	body, err := io.ReadAll(rsp.Body)
	_ = rsp.Body.Close()
	if err != nil {
		return uuid.Nil, fmt.Errorf("POST /v1/tasks: reading the answer: %w", err)
	}
	rsp.Body = io.NopCloser(bytes.NewReader(body))
	parsed, err := client.ParseSubmitTaskResponse(rsp)
	if err == nil {
		err = client.CheckResponse(rsp, body)
	}
	if err == nil && parsed.JSON201 == nil {
		err = fmt.Errorf("status %d, want 201 with the task", rsp.StatusCode)
	}
	if err != nil {
		return uuid.Nil, fmt.Errorf("POST /v1/tasks: %w", err)
	}
	return parsed.JSON201.TaskUuid, nil
}

// check reads the task back through the API: complete, every step done.
// It returns the run time the API's timestamps give.
func (d *dagBench) check(ctx context.Context, task uuid.UUID, steps int) (float64, error) {
	got, err := d.api.GetTaskWithResponse(ctx, task, nil)
	if err == nil {
		err = client.CheckResponse(got.HTTPResponse, got.Body)
	}
	if err == nil && got.JSON200 == nil {
		err = fmt.Errorf("status %d, want 200 with the task", got.StatusCode())
	}
	if err != nil {
		return 0, fmt.Errorf("GET /v1/tasks/%s: %w", task, err)
	}
	t := got.JSON200
	if t.State != "complete" || t.StepsDone != int64(steps) || t.StepsTotal != int64(steps) {
		return 0, fmt.Errorf("GET /v1/tasks/%s: state %s, %d of %d steps done; want complete, %d of %d", task, t.State, t.StepsDone, t.StepsTotal, steps, steps)
	}
	var first time.Time
	for _, s := range t.Steps {
		if a := s.LastAttemptedAt; a != nil && (first.IsZero() || a.Before(first)) {
			first = *a
		}
	}
	if t.CompletedAt == nil || first.IsZero() {
		return 0, nil
	}
	return ms(t.CompletedAt.Sub(first)), nil
}

// dagTracker records, per task, what the handler service and the runner
// saw: the first call, the calls, and the task-complete event.
type dagTracker struct {
	mu      sync.Mutex
	tasks   map[string]*dagTaskTimes
	changed chan struct{} // capacity 1: something was recorded
}

type dagTaskTimes struct {
	firstCall time.Time
	calls     int
	mostDeps  int
	completed time.Time
	failure   string
}

func newDAGTracker() *dagTracker {
	return &dagTracker{tasks: map[string]*dagTaskTimes{}, changed: make(chan struct{}, 1)}
}

func (t *dagTracker) task(id string) *dagTaskTimes { // with mu held
	x := t.tasks[id]
	if x == nil {
		x = &dagTaskTimes{}
		t.tasks[id] = x
	}
	return x
}

func (t *dagTracker) signal() {
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// called is the handler service's observer.
func (t *dagTracker) called(env *contracts.StepEnvelope, arrived time.Time) {
	t.mu.Lock()
	x := t.task(env.Task.TaskUUID)
	if x.calls == 0 || arrived.Before(x.firstCall) {
		x.firstCall = arrived
	}
	x.calls++
	x.mostDeps = max(x.mostDeps, len(env.DependencyResults))
	t.mu.Unlock()
}

// event is the runner's OnEvent.
func (t *dagTracker) event(ev runner.Event) {
	now := time.Now()
	if ev.State == contracts.StepStateComplete && ev.TaskState == "" {
		return
	}
	t.mu.Lock()
	x := t.task(ev.Step.TaskUUID.String())
	switch {
	case ev.State != contracts.StepStateComplete:
		x.failure = fmt.Sprintf("step %s ended %s with a no-op handler", ev.Step.Name, ev.State)
	case ev.TaskState == contracts.TaskStateComplete:
		x.completed = now
	default:
		x.failure = "the task ended " + string(ev.TaskState)
	}
	t.mu.Unlock()
	t.signal()
}

// wait returns the task's record once it completed.
func (t *dagTracker) wait(ctx context.Context, id string, timeout time.Duration) (dagTaskTimes, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		t.mu.Lock()
		x := *t.task(id)
		t.mu.Unlock()
		switch {
		case x.failure != "":
			return x, fmt.Errorf("task %s: %s", id, x.failure)
		case !x.completed.IsZero() && x.calls > 0:
			return x, nil
		}
		select {
		case <-t.changed:
		case <-deadline.C:
			return x, fmt.Errorf("%w: task %s not complete after %s (%d handler calls)", errBenchTimeout, id, timeout, x.calls)
		case <-ctx.Done():
			return x, ctx.Err()
		}
	}
}

func dagFigures(d *dagResult) []figure {
	var fs []figure
	how := "the template registered with POST /v1/templates, then one task submitted with POST /v1/tasks (generated Go client) to a server started in this process as serve starts it; its steps call an HTTP no-op handler service on loopback (PUT /v1/handlers); " + d.Note
	for i, s := range d.Shapes {
		label := fmt.Sprintf("DAG %s of %s steps", s.Shape, groupThousands(int64(s.Steps)))
		if s.Shape != "chain" {
			label = fmt.Sprintf("DAG fan-out/fan-in, %s wide", groupThousands(int64(s.Steps-2)))
		}
		if i > 0 {
			how = "as the first DAG submit"
		}
		submit := figure{Name: label + ": submit", Value: s.SubmitMs, Unit: "ms",
			How: "HTTP round trip of POST /v1/tasks, to the last byte of the answer; " + how}
		if s.Shape == "chain" && s.Steps == benchDAGRatioLong {
			submit.Target, submit.Met = fmt.Sprintf("< %d", targetDAGSubmitMs), below(s.SubmitMs, targetDAGSubmitMs)
		}
		fs = append(fs, submit, figure{Name: label + ": per step", Value: s.PerStepMs, Unit: "ms",
			How: fmt.Sprintf("(first handler call's arrival -> the runner's task-complete event) / %d steps: %.0f ms in all; the API's own timestamps say %.0f ms", s.Steps, s.RunMs, s.APIRunMs)})
	}
	if d.ChainRatio > 0 {
		fs = append(fs, figure{Name: "DAG chain per step, 1,000 / 100 steps", Value: d.ChainRatio, Unit: "ratio",
			Target: fmt.Sprintf("<= %.1fx", targetDAGChainRatio), Met: atMost(d.ChainRatio, targetDAGChainRatio),
			How: "the 1,000-step chain's time per step ÷ the 100-step chain's, same run"})
	}
	return fs
}

func printDAGDetail(w io.Writer, d *dagResult) {
	fmt.Fprintf(w, "  DAG sizes detail (%s):", d.Note)
	for _, s := range d.Shapes {
		fmt.Fprintf(w, " %s %d: end to end %.0f ms, %d handler calls, most earlier results in one call %d of %d;",
			s.Shape, s.Steps, s.EndToEndMs, s.HandlerCalls, s.MostDependencyResults, s.Steps-1)
	}
	fmt.Fprintln(w)
}
