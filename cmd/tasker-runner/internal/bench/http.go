package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
)

// Scenarios (d) and (e) of issue 4: the backlog work-down with every step
// called over HTTP+JSON on a no-op handler service, unbatched and batched,
// and the raw request rate of that same service driven by the same callout
// invoker without the runner, so that the runner's callout overhead is a
// ratio. The handler service is an in-process net/http server on a real
// loopback TCP listener: it shares this process (and its CPUs) with the
// runner.

const (
	benchHTTPStepsDefault   = 50_000
	benchHTTPStepsQuick     = 10_000
	benchBatchMaxDefault    = 50
	benchBatchWindowDefault = 2 * time.Millisecond
)

// noopService is the no-op handler service: it decodes each request body
// as a handler would and answers success for every step.
type noopService struct {
	URL      string
	srv      *http.Server
	ln       net.Listener
	requests atomic.Int64
	steps    atomic.Int64
	bad      atomic.Int64
	conns    atomic.Int64                           // TCP connections accepted
	sample   atomic.Pointer[contracts.StepEnvelope] // the first single envelope seen
	// observe, when set, sees every envelope with the time its request
	// arrived (the DAG-size scenario's clock).
	observe func(env *contracts.StepEnvelope, arrived time.Time)
}

func startNoopService() (*noopService, error) { return startNoopServiceWith(nil) }

// startNoopServiceWith starts the service with observe (may be nil).
func startNoopServiceWith(observe func(*contracts.StepEnvelope, time.Time)) (*noopService, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the no-op handler service: %w", err)
	}
	s := &noopService{ln: ln, URL: "http://" + ln.Addr().String() + "/", observe: observe}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.conns.Add(1)
			}
		}}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

var okBody = []byte(`{"success":true}`)

func (s *noopService) serve(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	s.requests.Add(1)
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get(callout.HeaderBatchSize) != "" {
		var req callout.BatchRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			s.bad.Add(1)
			http.Error(w, "invalid batch request: "+err.Error(), http.StatusBadRequest)
			return
		}
		resp := callout.BatchResponse{Results: make([]contracts.StepResult, len(req.Steps))}
		for i, env := range req.Steps {
			resp.Results[i] = contracts.StepResult{StepUUID: env.Step.StepUUID, Success: true}
			if s.observe != nil {
				s.observe(env, arrived)
			}
		}
		s.steps.Add(int64(len(req.Steps)))
		_ = json.NewEncoder(w).Encode(resp)
		return
	}
	var env contracts.StepEnvelope
	if err := json.NewDecoder(r.Body).Decode(&env); err != nil {
		s.bad.Add(1)
		http.Error(w, "invalid step envelope: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.steps.Add(1)
	if s.observe != nil {
		s.observe(&env, arrived)
	}
	if s.sample.Load() == nil {
		s.sample.CompareAndSwap(nil, &env)
	}
	_, _ = w.Write(okBody)
}

// counts returns the requests and steps seen so far.
func (s *noopService) counts() (requests, steps, conns int64) {
	return s.requests.Load(), s.steps.Load(), s.conns.Load()
}

// close stops the service, and closes the shared callout client's idle
// connections to it so that no keep-alive goroutine outlives the bench.
// Shutdown leaves alone, for 5s, a connection that was dialed but never
// used (a client's spare, such as the transport of a runner started by
// serve, which this cannot reach): Close then ends it, and with it the
// client's goroutines for it.
func (s *noopService) close() {
	callout.SharedClient().CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	_ = s.srv.Close()
	callout.SharedClient().CloseIdleConnections()
}

type httpResult struct {
	// Note says where the handler service runs.
	Note          string         `json:"note"`
	URL           string         `json:"handler_url"`
	BatchMax      int            `json:"batch_max"`
	BatchWindowMs float64        `json:"batch_window_ms"`
	Unbatched     *backlogResult `json:"unbatched,omitempty"`
	Batched       *backlogResult `json:"batched,omitempty"`
	Raw           *rawResult     `json:"raw,omitempty"`
	// Ratios of the runner's steps/s to the raw request rate.
	UnbatchedToRaw float64 `json:"unbatched_to_raw_ratio,omitempty"`
	BatchedToRaw   float64 `json:"batched_to_raw_ratio,omitempty"`
	// EngineCPUMicrosPerStep estimates the runner's own CPU per step (claims,
	// completion writes, dispatch), without the HTTP call: the unbatched
	// run's process CPU per step minus the raw run's per request (invoker
	// plus handler service).
	EngineCPUMicrosPerStep float64 `json:"engine_cpu_us_per_step_estimate,omitempty"`
	MedianOf               int     `json:"median_of,omitempty"`
}

// rawResult is the handler service's request rate without the runner.
type rawResult struct {
	Requests    int     `json:"requests"`
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	ReqPerSec   float64 `json:"requests_per_sec"`
	// CPUMicrosPerRequest is this process's CPU per request: the callout
	// invoker (client side) and the handler service (server side) together.
	CPUMicrosPerRequest float64  `json:"cpu_us_per_request"`
	CPU                 cpuUsage `json:"cpu"`
	Failed              int64    `json:"failed_requests"`
	EnvelopeBytes       int      `json:"envelope_bytes"`
	// Connections is how many TCP connections the handler service accepted.
	Connections int64 `json:"handler_connections"`
}

// runHTTP runs the HTTP scenarios once: unbatched work-down, batched
// work-down, then the raw request rate.
func runHTTP(ctx context.Context, env *cli.Env, srv *benchServer, o benchOptions, profiles map[string]*os.File) (httpResult, error) {
	res := httpResult{
		BatchMax: o.batchMax, BatchWindowMs: float64(o.batchWindow) / float64(time.Millisecond),
		Note: "the no-op handler service is a net/http server in this process on a loopback TCP listener: it shares the process and its CPUs with the runner (and, in the raw run, with the invoker driving it)",
	}
	svc, err := startNoopService()
	if err != nil {
		return res, err
	}
	defer svc.close()
	res.URL = svc.URL

	work := func(label string, batchMax int) (backlogResult, error) {
		reg := callout.NewRegistry(callout.RegistryConfig{})
		defer reg.Close()
		ep := callout.Endpoint{Pattern: "bench.*", URL: svc.URL, Protocol: callout.ProtocolHTTP}
		if batchMax > 1 {
			ep.BatchMax, ep.BatchWindow = batchMax, o.batchWindow
		}
		if err := reg.Set([]callout.Endpoint{ep}); err != nil {
			return backlogResult{}, err
		}
		req0, steps0, conns0 := svc.counts()
		b, err := runBacklogWith(ctx, env, srv, o, backlogSpec{label: label, steps: o.httpSteps, handlers: reg}, profiles[label])
		req1, steps1, conns1 := svc.counts()
		b.HandlerRequests, b.HandlerConnections = req1-req0, conns1-conns0
		if b.HandlerRequests > 0 {
			b.MeanBatchSize = float64(steps1-steps0) / float64(b.HandlerRequests)
		}
		if bad := svc.bad.Load(); err == nil && bad > 0 {
			err = fmt.Errorf("the handler service could not decode %d requests", bad)
		}
		return b, err
	}

	fmt.Fprintf(o.progress, "bench:   HTTP callouts, unbatched: %d single-step tasks\n", o.httpSteps)
	u, err := work("http", 1)
	if err != nil {
		return res, fmt.Errorf("unbatched: %w", err)
	}
	fmt.Fprintf(o.progress, "bench:     worked down in %.2fs: %.0f steps/s, %d requests on %d new connections, process CPU %.0f µs per step\n",
		u.WorkDownSeconds, u.StepsPerSec, u.HandlerRequests, u.HandlerConnections, u.RunnerCPUMicrosPerStep)
	res.Unbatched = &u

	fmt.Fprintf(o.progress, "bench:   HTTP callouts, batch_max %d, batch_window %s: %d single-step tasks\n", o.batchMax, o.batchWindow, o.httpSteps)
	b, err := work("httpbatch", o.batchMax)
	if err != nil {
		return res, fmt.Errorf("batched: %w", err)
	}
	fmt.Fprintf(o.progress, "bench:     worked down in %.2fs: %.0f steps/s, %d requests (%.1f steps each), process CPU %.0f µs per step\n",
		b.WorkDownSeconds, b.StepsPerSec, b.HandlerRequests, b.MeanBatchSize, b.RunnerCPUMicrosPerStep)
	res.Batched = &b

	fmt.Fprintf(o.progress, "bench:   raw handler rate: %d requests through the callout HTTP invoker, %d at a time, no runner\n", o.httpSteps, o.concurrency)
	raw, err := runRaw(ctx, srv, o, svc, profiles["raw"])
	if err != nil {
		return res, fmt.Errorf("raw handler rate: %w", err)
	}
	fmt.Fprintf(o.progress, "bench:     %.0f requests/s, process CPU %.0f µs per request, %d new connections\n", raw.ReqPerSec, raw.CPUMicrosPerRequest, raw.Connections)
	res.Raw = &raw
	res.ratios()
	return res, nil
}

func (r *httpResult) ratios() {
	if r.Raw == nil || r.Raw.ReqPerSec <= 0 {
		return
	}
	if r.Unbatched != nil {
		r.UnbatchedToRaw = r.Unbatched.StepsPerSec / r.Raw.ReqPerSec
		if d := r.Unbatched.RunnerCPUMicrosPerStep - r.Raw.CPUMicrosPerRequest; r.Raw.CPUMicrosPerRequest > 0 && d > 0 {
			r.EngineCPUMicrosPerStep = d
		}
	}
	if r.Batched != nil {
		r.BatchedToRaw = r.Batched.StepsPerSec / r.Raw.ReqPerSec
	}
}

// runRaw POSTs o.httpSteps step envelopes, like the runner's, through a
// callout HTTP invoker with o.concurrency calls in flight, and times it.
func runRaw(ctx context.Context, srv *benchServer, o benchOptions, svc *noopService, profile *os.File) (rawResult, error) {
	res := rawResult{Requests: o.httpSteps, Concurrency: o.concurrency}
	inv, err := callout.NewHTTP(callout.HTTPConfig{URL: svc.URL})
	if err != nil {
		return res, err
	}
	// The envelopes: the runner's own (the first one the service received),
	// with fresh identifiers for each request; built before the clock starts.
	tmpl := svc.sample.Load()
	if tmpl == nil {
		tmpl = syntheticEnvelope()
	}
	envs := make([]*contracts.StepEnvelope, o.httpSteps)
	for i := range envs {
		e := *tmpl
		e.EventID = uuid.NewString()
		e.Task.TaskUUID = uuid.NewString()
		e.Task.CorrelationID = uuid.NewString()
		e.Step.StepUUID = uuid.NewString()
		envs[i] = &e
	}
	if b, err := json.Marshal(envs[0]); err == nil {
		res.EnvelopeBytes = len(b)
	}
	var (
		next   atomic.Int64
		failed atomic.Int64
		first  atomic.Pointer[contracts.StepResult]
		wg     sync.WaitGroup
	)
	stopProfile, err := startProfile(profile)
	if err != nil {
		return res, err
	}
	_, _, conns0 := svc.counts()
	cpu0 := takeCPUSnapshot(srv.postmaster)
	start := time.Now()
	for range min(o.concurrency, o.httpSteps) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(envs) || ctx.Err() != nil {
					return
				}
				// A deadline per call, as the runner gives each step.
				cctx, cancel := context.WithTimeout(ctx, runner.StepTimeoutDefault)
				r := inv.Invoke(cctx, envs[i])
				cancel()
				if !r.Success {
					failed.Add(1)
					first.CompareAndSwap(nil, &r)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1 := takeCPUSnapshot(srv.postmaster)
	stopProfile()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	_, _, conns1 := svc.counts()
	res.Connections = conns1 - conns0
	res.Seconds = elapsed.Seconds()
	res.ReqPerSec = float64(o.httpSteps) / elapsed.Seconds()
	if cpu := cpu1.self - cpu0.self; cpu > 0 {
		res.CPUMicrosPerRequest = float64(cpu.Microseconds()) / float64(o.httpSteps)
	}
	res.CPU = cpuBetween(cpu0, cpu1)
	res.Failed = failed.Load()
	if res.Failed > 0 {
		msg := ""
		if r := first.Load(); r != nil && r.Error != nil {
			msg = ": " + r.Error.Message
		}
		return res, fmt.Errorf("%d of %d requests failed%s", res.Failed, o.httpSteps, msg)
	}
	return res, nil
}

// syntheticEnvelope stands in for the runner's envelope when none was seen.
func syntheticEnvelope() *contracts.StepEnvelope {
	return &contracts.StepEnvelope{
		Task: contracts.TaskInfo{Namespace: "bench", Name: "single", Version: "1.0.0", Context: json.RawMessage(`{}`), Tags: []string{}},
		Step: contracts.StepInfo{Name: "only", TemplateStepName: "only", Attempts: 1, MaxAttempts: 3, Retryable: true, Inputs: json.RawMessage(`{}`)},
		StepDefinition: contracts.StepDefinition{
			Handler: contracts.HandlerDefinition{Callable: noopCallable}, Dependencies: []string{},
		},
		DependencyResults: map[string]contracts.StepResult{},
	}
}

// medianHTTP reports the run with the median main figure (the unbatched
// work-down's steps/s; without it the batched one's, then the raw rate),
// whole: its ratios and CPU estimate compare figures of that one run.
func medianHTTP(runs []httpResult) httpResult {
	if len(runs) == 1 {
		return runs[0]
	}
	m := medianRun(runs, httpMainFigure)
	m.MedianOf = len(runs)
	return m
}

// httpMainFigure is the figure medianHTTP picks the median run by.
func httpMainFigure(h httpResult) float64 {
	switch {
	case h.Unbatched != nil:
		return h.Unbatched.StepsPerSec
	case h.Batched != nil:
		return h.Batched.StepsPerSec
	case h.Raw != nil:
		return h.Raw.ReqPerSec
	}
	return 0
}

// httpToBacklogFigures holds the HTTP work-downs to the in-process backlog
// of the same run: batched calls should cost the runner next to nothing
// over in-process ones, and unbatched ones are bound by the handler
// service and PostgreSQL sharing the machine, 1 / (1/raw + 1/backlog).
func httpToBacklogFigures(h *httpResult, backlog float64) []figure {
	if backlog <= 0 {
		return nil
	}
	var fs []figure
	if b := h.Batched; b != nil {
		v := b.StepsPerSec / backlog
		fs = append(fs, figure{Name: "HTTP batched / backlog", Value: v, Unit: "ratio",
			Target: fmt.Sprintf(">= %gx", targetHTTPBatchedToBacklog), Met: atLeast(v, targetHTTPBatchedToBacklog),
			How: "HTTP batched work-down steps/s ÷ the in-process backlog work-down steps/s of the same run"})
	}
	if u, r := h.Unbatched, h.Raw; u != nil && r != nil && r.ReqPerSec > 0 {
		limit := 1 / (1/r.ReqPerSec + 1/backlog)
		v := u.StepsPerSec / limit
		fs = append(fs, figure{Name: "HTTP unbatched / combined limit", Value: v, Unit: "ratio",
			Target: fmt.Sprintf(">= %gx", targetHTTPUnbatchedToLimit), Met: atLeast(v, targetHTTPUnbatchedToLimit),
			How: fmt.Sprintf("HTTP unbatched work-down steps/s ÷ 1 / (1/raw + 1/backlog) = %.0f steps/s, the rate when every step costs one raw request and one in-process step on the same machine", limit)})
	}
	return fs
}

func httpFigures(h *httpResult, concurrency int) []figure {
	var fs []figure
	inProc := "; the handler service is in this process"
	if u := h.Unbatched; u != nil {
		fs = append(fs, figure{Name: "HTTP callout work-down, unbatched", Value: u.StepsPerSec, Unit: "steps/s",
			How: fmt.Sprintf("%d single-step tasks whose callable matches an HTTP endpoint (a no-op handler service on loopback) inserted first, then %s, then one runner (max_concurrent_steps %d); steps / (runner start -> last task-complete event)%s", u.Steps, backlogVacuum, concurrency, inProc)})
	}
	if b := h.Batched; b != nil {
		fs = append(fs, figure{Name: fmt.Sprintf("HTTP callout work-down, batch_max %d", h.BatchMax), Value: b.StepsPerSec, Unit: "steps/s",
			How: fmt.Sprintf("as unbatched, the endpoint with batch_max %d and batch_window %gms: %d requests, %.1f steps each", h.BatchMax, h.BatchWindowMs, b.HandlerRequests, b.MeanBatchSize)})
	}
	if r := h.Raw; r != nil {
		fs = append(fs, figure{Name: "raw handler service rate", Value: r.ReqPerSec, Unit: "req/s",
			How: fmt.Sprintf("%d step envelopes (%d bytes, the runner's, fresh ids) POSTed by callout.NewHTTP(...).Invoke (shared keep-alive pool), %d in flight, %d new connections, no runner and no database%s", r.Requests, r.EnvelopeBytes, r.Concurrency, r.Connections, inProc)})
	}
	if h.UnbatchedToRaw > 0 {
		fs = append(fs, figure{Name: "HTTP unbatched / raw", Value: h.UnbatchedToRaw, Unit: "ratio",
			How: "runner steps/s through unbatched HTTP callouts ÷ raw handler req/s: the share of the raw rate the runner keeps"})
	}
	if h.BatchedToRaw > 0 {
		fs = append(fs, figure{Name: "HTTP batched / raw", Value: h.BatchedToRaw, Unit: "ratio",
			How: "runner steps/s with batched calls ÷ raw handler req/s (one step per request)"})
	}
	if u := h.Unbatched; u != nil && u.RunnerCPUMicrosPerStep > 0 {
		fs = append(fs, figure{Name: "process CPU per step (HTTP unbatched)", Value: u.RunnerCPUMicrosPerStep, Unit: "µs",
			How: "user+system CPU of this process during the work-down / steps: runner, callout invoker and handler service together"})
	}
	if b := h.Batched; b != nil && b.RunnerCPUMicrosPerStep > 0 {
		fs = append(fs, figure{Name: "process CPU per step (HTTP batched)", Value: b.RunnerCPUMicrosPerStep, Unit: "µs",
			How: "as unbatched"})
	}
	if r := h.Raw; r != nil && r.CPUMicrosPerRequest > 0 {
		fs = append(fs, figure{Name: "process CPU per request (raw)", Value: r.CPUMicrosPerRequest, Unit: "µs",
			How: "user+system CPU of this process during the raw run / requests: callout invoker and handler service together"})
	}
	if h.EngineCPUMicrosPerStep > 0 {
		fs = append(fs, figure{Name: "runner engine CPU per step (HTTP, est.)", Value: h.EngineCPUMicrosPerStep, Unit: "µs",
			How: "process CPU per step (HTTP unbatched) − process CPU per request (raw): the runner's share, the call itself taken out"})
	}
	return fs
}
