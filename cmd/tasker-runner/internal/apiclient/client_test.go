package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/openapi/client"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

const e2eTemplate = `
name: e2e_order
namespace_name: e2e
version: 1.0.0
input_schema:
  type: object
  required: [order_id]
  properties:
    order_id: {type: integer}
steps:
  - name: charge
    handler: {callable: e2e.charge}
  - name: ship
    handler: {callable: e2e.ship}
    dependencies: [charge]
`

// e2eHandlers is a handler service: it answers every callable with its
// name and the task's order_id, and fails e2e.ship permanently while
// failShip is set.
func e2eHandlers(t *testing.T, failShip *atomic.Bool) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env contracts.StepEnvelope
		if err := json.NewDecoder(r.Body).Decode(&env); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		callable := strings.TrimPrefix(r.URL.Path, "/h/")
		if callable == "e2e.ship" && failShip.Load() {
			_ = json.NewEncoder(w).Encode(contracts.StepResult{Error: &contracts.StepError{Message: "carrier rejected the parcel", ErrorType: "CarrierError", Retryable: false}})
			return
		}
		var in struct {
			OrderID int `json:"order_id"`
		}
		_ = json.Unmarshal(env.Task.Context, &in)
		res, _ := json.Marshal(map[string]any{"done": callable, "order_id": in.OrderID})
		_ = json.NewEncoder(w).Encode(contracts.StepResult{Success: true, Result: res})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// must fails the test on a call error or an error response.
func must(t *testing.T, what string, err error, res *http.Response, body []byte) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := client.CheckResponse(res, body); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestClientEndToEnd drives a running server (the real command, as a
// subprocess) through the generated Go client, then through the CLI.
func TestClientEndToEnd(t *testing.T) {
	t.Parallel()
	e, srv := startE2E(t)
	defer srv.Stop(syscall.SIGTERM)
	e.register()
	task := e.checkSubmit()
	e.checkDeadLetters()
	e.checkCLISubmit()
	e.checkCLIReads(task)
	e.checkProblems()
}

// e2e is TestClientEndToEnd's server, its API client and its handler
// service (whose ship step fails while failShip is set).
type e2e struct {
	t        *testing.T
	ctx      context.Context
	c        *client.ClientWithResponses
	api      string
	cli      map[string]string // the environment of the CLI commands
	handlers *httptest.Server
	failShip *atomic.Bool
}

// startE2E starts serve on an empty database, with a handler service on
// loopback.
func startE2E(t *testing.T) (*e2e, *clitest.Child) {
	e := &e2e{t: t, failShip: &atomic.Bool{}}
	e.handlers = e2eHandlers(t, e.failShip)
	vars, addr := clitest.WebVars(t)
	vars["DATABASE_URL"] = pgtest.URL(t)
	// The handler service is on loopback, which serve refuses by default.
	vars["TASKER_WORKER_CALLOUT_URL_POLICY_ALLOW_LOOPBACK"] = "true"
	srv := clitest.Start(t, vars, "serve")
	srv.WaitHealthy(addr, clitest.StartupTimeout)
	e.api = "http://" + addr
	e.cli = map[string]string{"TASKER_API_URL": e.api}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	e.ctx = ctx
	var err error
	if e.c, err = client.New(e.api, ""); err != nil {
		t.Fatal(err)
	}
	return e, srv
}

func (e *e2e) register() {
	t := e.t
	// Register the handler endpoint and the template.
	put, err := e.c.PutHandlerWithResponse(e.ctx, "e2e.*", &client.PutHandlerParams{Namespace: client.Ptr("e2e")},
		client.HandlerEndpointInput{Url: client.Ptr(e.handlers.URL + "/h/{callable}"), TimeoutMs: client.Ptr[int64](5000)})
	must(t, "putHandler", err, put.HTTPResponse, put.Body)
	if put.JSON201 == nil || put.JSON201.Pattern != "e2e.*" {
		t.Fatalf("putHandler = %s %s", put.Status(), put.Body)
	}
	reg, err := e.c.RegisterTemplateWithResponse(e.ctx, client.TemplateDocument{Template: e2eTemplate})
	must(t, "registerTemplate", err, reg.HTTPResponse, reg.Body)

	// A bad context is a problem with field paths, and nothing is submitted.
	bad, err := e.c.SubmitTaskWithResponse(e.ctx, nil, client.SubmitTaskRequest{Namespace: "e2e", Name: "e2e_order", Context: map[string]any{"order_id": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	var p *client.Problem
	if err := client.CheckResponse(bad.HTTPResponse, bad.Body); !errors.As(err, &p) || p.StatusCode != http.StatusUnprocessableEntity || p.Errors == nil || len(*p.Errors) == 0 {
		t.Fatalf("submit with a bad context: %v", err)
	}

}

func (e *e2e) submit(orderID int) uuid.UUID {
	t := e.t
	t.Helper()
	res, err := e.c.SubmitTaskWithResponse(e.ctx, &client.SubmitTaskParams{IdempotencyKey: client.Ptr(uuid.NewString())},
		client.SubmitTaskRequest{Namespace: "e2e", Name: "e2e_order", Context: map[string]any{"order_id": orderID}})
	must(t, "submitTask", err, res.HTTPResponse, res.Body)
	if res.JSON201 == nil {
		t.Fatalf("submitTask = %s %s", res.Status(), res.Body)
	}
	return res.JSON201.TaskUuid
}

func (e *e2e) wait(id uuid.UUID, want client.TaskState) *client.Task {
	t := e.t
	t.Helper()
	task, err := waitTask(e.ctx, e.c, id, 100*time.Millisecond, io.Discard)
	if err != nil {
		t.Fatalf("waiting for task %s: %v", id, err)
	}
	if task.State != want {
		t.Fatalf("task %s ended %s, want %s: %+v", id, task.State, want, task.Steps)
	}
	return task
}

// checkSubmit submits, waits and reads the results.
func (e *e2e) checkSubmit() *client.Task {
	t := e.t
	// Submit, wait, read the results.
	task := e.wait(e.submit(7), client.TaskStateComplete)
	for _, s := range task.Steps {
		b, _ := json.Marshal(s.Results)
		if s.State != client.StepStateComplete || !strings.Contains(string(b), `"done":"e2e.`+s.Name+`"`) || !strings.Contains(string(b), `"order_id":7`) {
			t.Errorf("step %s: %s %s", s.Name, s.State, b)
		}
	}

	return task
}

// checkDeadLetters forces a permanent failure, finds the step in the dead
// letters (API and CLI), fixes the handler and redrives it.
func (e *e2e) checkDeadLetters() {
	t := e.t
	// Force a permanent failure: the step lands in the dead letters.
	e.failShip.Store(true)
	failed := e.wait(e.submit(8), client.TaskStateBlockedByFailures)
	dl, err := e.c.ListDeadLettersWithResponse(e.ctx, &client.ListDeadLettersParams{Namespace: client.Ptr("e2e"), TaskUuid: &failed.TaskUuid})
	must(t, "listDeadLetters", err, dl.HTTPResponse, dl.Body)
	if len(dl.JSON200.Items) != 1 || dl.JSON200.Items[0].Name != "ship" {
		t.Fatalf("dead letters = %s", dl.Body)
	}
	if b, _ := json.Marshal(dl.JSON200.Items[0].LastError); !strings.Contains(string(b), "carrier rejected") {
		t.Errorf("dead letter's last error = %s", b)
	}

	// The CLI shows it too.
	if r := clitest.Run(t, e.cli, "dlq", "list", "--namespace", "e2e"); r.Code != 0 || !strings.Contains(r.Stdout, dl.JSON200.Items[0].StepUuid.String()) || !strings.Contains(r.Stdout, "carrier rejected") {
		t.Errorf("dlq list: %v", r)
	}

	// Fix the handler, redrive: the task completes.
	e.failShip.Store(false)
	rd, err := e.c.RedriveDeadLettersWithResponse(e.ctx, client.RedriveRequest{StepUuids: &[]string{dl.JSON200.Items[0].StepUuid.String()}, Reason: client.Ptr("carrier fixed")})
	must(t, "redriveDeadLetters", err, rd.HTTPResponse, rd.Body)
	if rd.JSON200.Redriven != 1 {
		t.Fatalf("redrive = %s", rd.Body)
	}
	e.wait(failed.TaskUuid, client.TaskStateComplete)
	dl, err = e.c.ListDeadLettersWithResponse(e.ctx, &client.ListDeadLettersParams{Namespace: client.Ptr("e2e")})
	must(t, "listDeadLetters", err, dl.HTTPResponse, dl.Body)
	if len(dl.JSON200.Items) != 0 {
		t.Errorf("dead letters after the redrive = %s", dl.Body)
	}

}

// checkCLISubmit: submit --wait, and dlq redrive --all.
func (e *e2e) checkCLISubmit() {
	t := e.t
	// The CLI: submit --wait, tasks list/get, handlers list, status.
	r := clitest.Run(t, e.cli, "submit", "--namespace", "e2e", "--name", "e2e_order", "--context", `{"order_id": 9}`, "--wait", "--poll", "100ms")
	if r.Code != 0 || !strings.Contains(r.Stdout, "step ship") || !strings.Contains(r.Stdout, "task complete") || !strings.Contains(r.Stdout, `"order_id":9`) {
		t.Errorf("submit --wait: %v", r)
	}
	r = clitest.Run(t, e.cli, "submit", "--namespace", "e2e", "--name", "e2e_order", "--context", `{"order_id": 10}`, "--wait", "--json")
	var done client.Task
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &done) != nil || done.State != client.TaskStateComplete {
		t.Errorf("submit --wait --json: %v", r)
	}
	e.failShip.Store(true)
	if r := clitest.Run(t, e.cli, "submit", "--namespace", "e2e", "--name", "e2e_order", "--context", `{"order_id": 11}`, "--wait", "--poll", "100ms"); r.Code != 1 || !strings.Contains(r.Stdout, "blocked_by_failures") || !strings.Contains(r.Stderr, "blocked_by_failures") {
		t.Errorf("submit --wait of a failing task: want exit 1, got %v", r)
	}
	if r := clitest.Run(t, e.cli, "dlq", "redrive", "--all", "--namespace", "e2e"); r.Code != 0 || !strings.Contains(r.Stdout, "redriven 1 step(s)") {
		t.Errorf("dlq redrive --all: %v", r)
	}
	e.failShip.Store(false)
}

// checkCLIReads: tasks list/get, handlers list and put, status.
func (e *e2e) checkCLIReads(task *client.Task) {
	t := e.t
	if r := clitest.Run(t, e.cli, "tasks", "list", "--namespace", "e2e", "--state", "complete"); r.Code != 0 || strings.Count(r.Stdout, "e2e_order") < 4 {
		t.Errorf("tasks list: %v", r)
	}
	var list client.TaskList
	if r := clitest.Run(t, e.cli, "tasks", "list", "--json", "--limit", "2"); r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &list) != nil || len(list.Items) != 2 || list.NextCursor == nil {
		t.Errorf("tasks list --json --limit 2: %v", r)
	}
	// --correlation-id: only the task of that correlation id (every task here has its own).
	list = client.TaskList{}
	if r := clitest.Run(t, e.cli, "tasks", "list", "--json", "--correlation-id", task.CorrelationId.String()); r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &list) != nil ||
		len(list.Items) != 1 || list.Items[0].TaskUuid != task.TaskUuid || list.Items[0].CorrelationId != task.CorrelationId {
		t.Errorf("tasks list --correlation-id %s: want only task %s, got %v", task.CorrelationId, task.TaskUuid, r)
	}
	if r := clitest.Run(t, e.cli, "tasks", "list", "--correlation-id", uuid.NewString()); r.Code != 0 || strings.Contains(r.Stdout, "e2e_order") {
		t.Errorf("tasks list --correlation-id of no task: %v", r)
	}
	if r := clitest.Run(t, e.cli, "tasks", "get", task.TaskUuid.String()); r.Code != 0 || !strings.Contains(r.Stdout, "charge") || !strings.Contains(r.Stdout, "complete") {
		t.Errorf("tasks get: %v", r)
	}
	if r := clitest.Run(t, e.cli, "handlers", "list"); r.Code != 0 || !strings.Contains(r.Stdout, "e2e.*") || !strings.Contains(r.Stdout, e.handlers.URL) {
		t.Errorf("handlers list: %v", r)
	}
	if r := clitest.Run(t, e.cli, "handlers", "put", "e2e.extra", "--namespace", "e2e", "--url", e.handlers.URL+"/h/{callable}", "--batch-max", "4", "--header", "X-Tenant=acme"); r.Code != 0 || !strings.Contains(r.Stdout, "registered handler e2e.extra") {
		t.Errorf("handlers put: %v", r)
	}
	if r := clitest.Run(t, e.cli, "status"); r.Code != 0 || !strings.Contains(r.Stdout, "NAMESPACE") || !strings.Contains(r.Stdout, "e2e") {
		t.Errorf("status: %v", r)
	}
}

// checkProblems: problems are shown with their fields.
func (e *e2e) checkProblems() {
	t := e.t
	r := clitest.Run(t, e.cli, "submit", "--namespace", "e2e", "--name", "e2e_order", "--context", `{"order_id": "x"}`)
	if r.Code != 1 || !strings.Contains(r.Stderr, "422") || !strings.Contains(r.Stderr, "order_id") {
		t.Errorf("submit with a bad context: want exit 1 and the problem, got %v", r)
	}
	r = clitest.Run(t, e.cli, "tasks", "get", uuid.NewString())
	if r.Code != 1 || !strings.Contains(r.Stderr, "404") {
		t.Errorf("tasks get of an unknown task: %v", r)
	}
}

func TestClientCommandsUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"submit"},
		{"submit", "--namespace", "a", "--name", "b", "--context", "{nope"},
		{"tasks"},
		{"tasks", "frob"},
		{"tasks", "get"},
		{"tasks", "get", "not-a-uuid"},
		{"tasks", "list", "--correlation-id", "not-a-uuid"},
		{"handlers", "put"},
		{"dlq", "redrive"},
		{"dlq", "redrive", "--all", uuid.NewString()},
	} {
		if r := clitest.Run(t, nil, args...); r.Code != 2 {
			t.Errorf("%q: want exit 2, got %v", args, r)
		}
	}
	// Nothing listens there: a clear error, exit 1.
	r := clitest.Run(t, map[string]string{"TASKER_API_URL": "http://127.0.0.1:1"}, "status")
	if r.Code != 1 || !strings.Contains(r.Stderr, "calling the API") {
		t.Errorf("status without a server: %v", r)
	}
}

// tasks get shows a step's yields next to its attempts, only when it has
// any.
func TestPrintTaskShowsYields(t *testing.T) {
	task := &client.Task{TaskUuid: uuid.New(), State: client.TaskStateStepsInProcess, Steps: []client.Step{
		{Name: "scan", Handler: "etl.scan", State: client.StepStateEnqueued, Attempts: 1, MaxAttempts: 3, Yields: 2},
		{Name: "load", Handler: "etl.load", State: client.StepStatePending, MaxAttempts: 3},
		{Name: "once", Handler: "etl.once", State: client.StepStateEnqueued, Attempts: 1, MaxAttempts: 1, Yields: 1},
	}}
	var out strings.Builder
	printTask(&out, task)
	for _, want := range []string{"1/3, 2 yields", "0/3 ", "1/1, 1 yield "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printTask: no %q in\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "0/3,") {
		t.Errorf("printTask shows yields of a step that has none:\n%s", out.String())
	}
}
