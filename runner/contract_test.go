package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	handlerv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/handler/v1"
	"github.com/tasker-runner/tasker-runner/contracts/gen/tasker/handler/v1/handlerv1connect"
	"github.com/tasker-runner/tasker-runner/contracts/webhook"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// The contract's promises about what a handler receives and how its
// answers are read (contracts/README.md), checked through the runner.

// seenCall is one request a handler service received.
type seenCall struct {
	path   string
	header http.Header
	body   map[string]json.RawMessage
}

type callLog struct {
	mu    sync.Mutex
	calls []seenCall
}

func (l *callLog) add(c seenCall) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, c)
}

func (l *callLog) all() []seenCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]seenCall(nil), l.calls...)
}

// TestBatchEndpointAlwaysGetsTheBatchShape: an endpoint registered with
// batch_max > 1 receives {"steps": [...]} with Tasker-Batch-Size even for a
// lone step, over HTTP (and ExecuteBatch over Connect and gRPC), never the
// single-step shape; and the headers the contract says are always sent are
// there (Idempotency-Key and Tasker-Attempt only on single-step calls).
func TestBatchEndpointAlwaysGetsTheBatchShape(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, "name: lone\nnamespace_name: batched\nversion: 1\nsteps:\n  - name: only\n    handler: {callable: work.one}\n")
	register(t, client, "name: lone\nnamespace_name: single\nversion: 1\nsteps:\n  - name: only\n    handler: {callable: work.one}\n")
	register(t, client, "name: lone\nnamespace_name: viaconnect\nversion: 1\nsteps:\n  - name: only\n    handler: {callable: work.one}\n")
	register(t, client, "name: lone\nnamespace_name: viagrpc\nversion: 1\nsteps:\n  - name: only\n    handler: {callable: work.one}\n")

	log := &callLog{}
	srvURL := shapeServer(t, log)
	rpc := &batchRecorder{}
	rpcURL := serveRPC(t, rpc)

	reg := callout.NewRegistry(callout.RegistryConfig{})
	t.Cleanup(reg.Close)
	if err := reg.Set([]callout.Endpoint{
		{Namespace: "batched", Pattern: "*", URL: srvURL + "/batched", BatchMax: 5, BatchWindow: time.Millisecond},
		{Namespace: "single", Pattern: "*", URL: srvURL + "/single"},
		{Namespace: "viaconnect", Pattern: "*", URL: rpcURL, Protocol: callout.ProtocolConnect, BatchMax: 5},
		{Namespace: "viagrpc", Pattern: "*", URL: rpcURL, Protocol: callout.ProtocolGRPC, BatchMax: 5},
	}); err != nil {
		t.Fatal(err)
	}
	startRunner(t, pool, runner.Config{Handlers: reg})
	var tasks []uuid.UUID
	for _, ns := range []string{"batched", "single", "viaconnect", "viagrpc"} {
		s, err := client.Submit(ctx, runner.SubmitRequest{Namespace: ns, Name: "lone"})
		if err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, s.TaskUUID)
	}
	for _, task := range tasks {
		waitFor(t, 20*time.Second, "the lone steps", func() bool { return taskState(t, pool, task) == "complete" })
	}

	calls := log.all()
	if len(calls) != 2 {
		t.Fatalf("%d HTTP calls, want 2: %+v", len(calls), calls)
	}
	for _, c := range calls {
		checkCallShape(t, c)
	}
	single, batches := rpc.counts()
	if single != 0 || len(batches) != 2 || batches[0] != "1/1" || batches[1] != "1/1" {
		t.Errorf("Connect and gRPC: %d Execute calls and ExecuteBatch calls %v (steps/Tasker-Batch-Size), want 0 and [1/1 1/1]", single, batches)
	}
}

// shapeServer answers every call with success, in the shape of its body
// (a batch's results, or one result), recording each call in log.
func shapeServer(t *testing.T, log *callLog) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		log.add(seenCall{path: r.URL.Path, header: r.Header.Clone(), body: body})
		w.Header().Set("Content-Type", "application/json")
		if raw, ok := body["steps"]; ok {
			var steps []contracts.StepEnvelope
			_ = json.Unmarshal(raw, &steps)
			var out struct {
				Results []contracts.StepResult `json:"results"`
			}
			for _, s := range steps {
				out.Results = append(out.Results, contracts.StepResult{StepUUID: s.Step.StepUUID, Success: true})
			}
			_ = json.NewEncoder(w).Encode(out)
			return
		}
		_ = json.NewEncoder(w).Encode(contracts.StepResult{Success: true})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// checkCallShape checks one recorded call's headers and body: a batch
// endpoint gets {"steps": [...]} even for one step, a single endpoint one
// envelope with its idempotency headers.
func checkCallShape(t *testing.T, c seenCall) {
	t.Helper()
	h := c.header
	for _, name := range []string{"Content-Type", "Accept", "User-Agent", "Tasker-Deadline", "Traceparent"} {
		if h.Get(name) == "" {
			t.Errorf("%s: header %s is not sent", c.path, name)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, h.Get("Tasker-Deadline")); err != nil {
		t.Errorf("%s: Tasker-Deadline %q: %v", c.path, h.Get("Tasker-Deadline"), err)
	}
	switch c.path {
	case "/batched":
		var steps []json.RawMessage
		if err := json.Unmarshal(c.body["steps"], &steps); err != nil || len(steps) != 1 || len(c.body) != 1 {
			t.Errorf("batched endpoint, one step: body %v, want {\"steps\": [one envelope]}", c.body)
		}
		if h.Get("Tasker-Batch-Size") != "1" || h.Get("Idempotency-Key") != "" || h.Get("Tasker-Attempt") != "" {
			t.Errorf("batched call headers: Tasker-Batch-Size %q, Idempotency-Key %q, Tasker-Attempt %q; want 1, none, none",
				h.Get("Tasker-Batch-Size"), h.Get("Idempotency-Key"), h.Get("Tasker-Attempt"))
		}
	case "/single":
		if _, ok := c.body["steps"]; ok || c.body["step"] == nil {
			t.Errorf("single endpoint: body %v, want one envelope", c.body)
		}
		if h.Get("Tasker-Batch-Size") != "" || h.Get("Idempotency-Key") == "" || h.Get("Tasker-Attempt") != "1" {
			t.Errorf("single call headers: Tasker-Batch-Size %q, Idempotency-Key %q, Tasker-Attempt %q",
				h.Get("Tasker-Batch-Size"), h.Get("Idempotency-Key"), h.Get("Tasker-Attempt"))
		}
	default:
		t.Errorf("unexpected call to %s", c.path)
	}
}

// batchRecorder is a Connect/gRPC handler that records its calls.
type batchRecorder struct {
	handlerv1connect.UnimplementedHandlerServiceHandler
	mu      sync.Mutex
	single  int
	batches []string // "<steps>/<Tasker-Batch-Size>"
}

func (b *batchRecorder) counts() (int, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.single, append([]string(nil), b.batches...)
}

func (b *batchRecorder) Execute(_ context.Context, req *connect.Request[handlerv1.ExecuteRequest]) (*connect.Response[handlerv1.ExecuteResponse], error) {
	b.mu.Lock()
	b.single++
	b.mu.Unlock()
	return connect.NewResponse(&handlerv1.ExecuteResponse{Success: true}), nil
}

func (b *batchRecorder) ExecuteBatch(_ context.Context, req *connect.Request[handlerv1.ExecuteBatchRequest]) (*connect.Response[handlerv1.ExecuteBatchResponse], error) {
	b.mu.Lock()
	b.batches = append(b.batches, fmt.Sprintf("%d/%s", len(req.Msg.GetSteps()), req.Header().Get("Tasker-Batch-Size")))
	b.mu.Unlock()
	out := &handlerv1.ExecuteBatchResponse{}
	for _, s := range req.Msg.GetSteps() {
		out.Results = append(out.Results, &handlerv1.ExecuteResponse{StepUuid: s.GetStep().GetStepUuid(), Success: true})
	}
	return connect.NewResponse(out), nil
}

func serveRPC(t *testing.T, svc handlerv1connect.HandlerServiceHandler) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(handlerv1connect.NewHandlerServiceHandler(svc))
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: &protocols, ReadHeaderTimeout: time.Minute}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return "http://" + ln.Addr().String()
}

// TestBatchItemAsksForItsOwnDelay: in a batched answer each item asks for
// its own retry delay with orchestration_metadata (backoff_request_seconds,
// or Tasker's backoff_hint.delay_seconds), as a single-step result does; an
// item that says "retryable": false is dead-lettered at once; the others
// of the call are not affected. The clock is frozen, so run_at must be
// exactly that instant plus the delay.
func TestBatchItemAsksForItsOwnDelay(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	items := map[string]string{ // callable -> the item's fields after success
		"request": `"success":false,"error":{"message":"later","retryable":true},"orchestration_metadata":{"backoff_request_seconds":30}`,
		"hint":    `"success":false,"error":{"message":"later","retryable":true},"orchestration_metadata":{"backoff_hint":{"delay_seconds":45,"backoff_type":"server_requested"}}`,
		"none":    `"success":false,"error":{"message":"later","retryable":true}`,
		"never":   `"success":false,"error":{"message":"declined","error_type":"declined","retryable":false}`,
		"ok":      `"success":true,"result":{"fine":true}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req callout.BatchRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Steps == nil {
			http.Error(w, "want a batch", http.StatusBadRequest)
			return
		}
		var parts []string
		for _, s := range req.Steps {
			parts = append(parts, fmt.Sprintf(`{"step_uuid":%q,%s}`, s.Step.StepUUID, items[s.StepDefinition.Handler.Callable]))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"results":[%s]}`, strings.Join(parts, ","))
	}))
	t.Cleanup(srv.Close)

	frozen := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	now := func() time.Time { return frozen }
	reg := callout.NewRegistry(callout.RegistryConfig{Now: now})
	t.Cleanup(reg.Close)
	if err := reg.Set([]callout.Endpoint{{Pattern: "*", URL: srv.URL, BatchMax: 10, BatchWindow: 20 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	tasks := map[string]uuid.UUID{}
	for callable := range items {
		register(t, client, fmt.Sprintf("name: %s\nnamespace_name: batchdelays\nversion: 1\nsteps:\n  - name: only\n    handler: {callable: %s}\n"+
			"    retry: {max_attempts: 5, backoff: fixed, backoff_base_ms: 200}\n", callable, callable))
		s, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "batchdelays", Name: callable})
		if err != nil {
			t.Fatal(err)
		}
		tasks[callable] = s.TaskUUID
	}
	startRunner(t, pool, runner.Config{Handlers: reg, Now: now, Rand: func() float64 { return 0.5 }, Mode: runner.ModePollingOnly, PollInterval: 50 * time.Millisecond})

	type row struct {
		state    string
		attempts int
		runAt    time.Time
	}
	read := func(task uuid.UUID) row {
		var r row
		if err := pool.QueryRow(ctx, `SELECT state, attempts, run_at FROM tasker.steps WHERE task_uuid = $1`, task).Scan(&r.state, &r.attempts, &r.runAt); err != nil {
			t.Fatal(err)
		}
		return r
	}
	want := map[string]row{
		"request": {state: "waiting_for_retry", attempts: 1, runAt: frozen.Add(30 * time.Second)},
		"hint":    {state: "waiting_for_retry", attempts: 1, runAt: frozen.Add(45 * time.Second)},
		"none":    {state: "waiting_for_retry", attempts: 1, runAt: frozen.Add(150 * time.Millisecond)}, // the template's backoff, jitter at its middle
		"never":   {state: "error", attempts: 1},
		"ok":      {state: "complete", attempts: 1},
	}
	waitFor(t, 30*time.Second, "every step's first attempt to be written", func() bool {
		for callable, task := range tasks {
			if read(task).state != want[callable].state {
				return false
			}
		}
		return true
	})
	for callable, task := range tasks {
		got, w := read(task), want[callable]
		if got.attempts != w.attempts || (w.state == "waiting_for_retry" && !got.runAt.Equal(w.runAt)) {
			t.Errorf("%s: attempts %d, run_at = first attempt + %s; want %d and + %s", callable, got.attempts, got.runAt.Sub(frozen), w.attempts, w.runAt.Sub(frozen))
		}
	}
}

// TestBadSignatureIsPermanent: a handler that cannot verify a request
// answers 401, and the runner records that as a permanent handler_error
// with status_code 401 on the first attempt: the step is dead-lettered,
// its other attempts unused (a wrong secret does not fix itself).
func TestBadSignatureIsPermanent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, "name: signed\nnamespace_name: sig\nversion: 1\nsteps:\n  - name: only\n    handler: {callable: sig.work}\n    retry: {max_attempts: 5, backoff_base_ms: 10}\n")
	v, err := webhook.NewVerifier(webhook.NewSecret()) // not the runner's
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(webhook.Middleware(v, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("the handler ran a step whose signature did not verify")
		w.WriteHeader(http.StatusNoContent)
	})))
	t.Cleanup(srv.Close)
	reg := callout.NewRegistry(callout.RegistryConfig{})
	t.Cleanup(reg.Close)
	if err := reg.Set([]callout.Endpoint{{Pattern: "sig.*", URL: srv.URL, Secrets: []string{webhook.NewSecret()}}}); err != nil {
		t.Fatal(err)
	}
	startRunner(t, pool, runner.Config{Handlers: reg, PollInterval: 50 * time.Millisecond})
	s, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "sig", Name: "signed"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the task to be blocked", func() bool { return taskState(t, pool, s.TaskUUID) == "blocked_by_failures" })
	var state string
	var attempts int
	var lastErr contracts.StepResult
	var raw []byte
	if err := pool.QueryRow(ctx, `SELECT state, attempts, last_error FROM tasker.steps WHERE task_uuid = $1`, s.TaskUUID).Scan(&state, &attempts, &raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &lastErr); err != nil {
		t.Fatal(err)
	}
	if e := lastErr.Error; state != "error" || attempts != 1 || e == nil || e.StatusCode != http.StatusUnauthorized || e.Retryable || e.ErrorType != contracts.ErrorTypeHandler {
		t.Errorf("step %s after %d attempts, last error %s; want error after 1, a permanent handler_error with status_code 401", state, attempts, raw)
	}
}
