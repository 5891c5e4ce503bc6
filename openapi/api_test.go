package openapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/openapi"
)

// reviewTemplate is sent as JSON text: templates are accepted as YAML or
// JSON.
const reviewTemplate = `{
  "name": "review", "namespace_name": "shop", "version": "1",
  "steps": [
    {"name": "prepare", "handler": {"callable": "echo"}},
    {"name": "approve", "dependencies": ["prepare"], "handler": {"callable": "flaky"}},
    {"name": "publish", "dependencies": ["approve"], "handler": {"callable": "echo"}}
  ]
}`

const slowTemplate = `
name: slow
namespace_name: shop
version: 1
steps:
  - name: wait
    handler: {callable: gate}
`

const singleTemplate = `
name: single
namespace_name: bulk
version: 1
steps:
  - name: s
    handler: {callable: echo}
`

// echo answers its step name and the result of each dependency it saw.
func echo(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
	seen := map[string]json.RawMessage{}
	for name, r := range env.DependencyResults {
		seen[name] = r.Result
	}
	b, _ := json.Marshal(map[string]any{"step": env.Step.Name, "seen": seen})
	return contracts.StepResult{Success: true, Result: b}, nil
}

// endToEnd is the run of TestEndToEnd: an API with a runner, its Go
// handlers (flaky fails while failing is set; gate parks until release)
// and a remote service (ship) registered through the API.
type endToEnd struct {
	t           *testing.T
	e           *apiEnv
	failing     atomic.Bool
	entered     chan struct{}
	release     chan struct{}
	releaseOnce sync.Once
	shipCalls   atomic.Int64
	shipURL     string
}

// The API drives a real runner end to end over HTTP and JSON.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	x := newEndToEnd(t)
	x.handlers()
	x.templates()
	order := x.submitAndRedrive()
	x.resolve()
	x.retry()
	x.cancel(order)
	x.listPages()
	x.status()
	// Remove the endpoint.
	x.e.do(http.MethodDelete, "/v1/handlers/remote.*?namespace=shop", nil, http.StatusNoContent, nil)
	x.e.problem(http.MethodGet, "/v1/handlers/remote.*?namespace=shop", nil, http.StatusNotFound)
	waitFor(t, 10*time.Second, "the runner to drop the endpoint", func() bool { return len(x.e.reg.Endpoints()) == 0 })
}

func newEndToEnd(t *testing.T) *endToEnd {
	x := &endToEnd{t: t, entered: make(chan struct{}, 1), release: make(chan struct{})}
	x.e = newAPIEnv(t, envOptions{runner: true, env: map[string]string{"SHIP_SECRET": "whsec_" + strings.Repeat("c", 32)}})
	x.e.funcs.Register("echo", echo)
	x.e.funcs.Register("flaky", func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		if x.failing.Load() {
			return contracts.StepResult{}, callout.Permanent(errors.New("card declined"))
		}
		return contracts.StepResult{Success: true, Result: json.RawMessage(`{"charged":true}`)}, nil
	})
	t.Cleanup(func() { x.releaseOnce.Do(func() { close(x.release) }) })
	x.e.funcs.Register("gate", func(ctx context.Context, _ *contracts.StepEnvelope) (contracts.StepResult, error) {
		x.entered <- struct{}{}
		select {
		case <-x.release:
		case <-ctx.Done():
		}
		return contracts.StepResult{Success: true}, nil
	})
	// remote.* handlers live in a separate service, registered through the API.
	shipSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x.shipCalls.Add(1)
		if r.Header.Get("X-Tenant") != "acme" || r.Header.Get("webhook-signature") == "" || r.URL.Path != "/ship/remote.ship" {
			http.Error(w, "unexpected call "+r.URL.Path, http.StatusBadRequest)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		_ = json.NewEncoder(w).Encode(contracts.StepResult{Success: true, Result: json.RawMessage(`{"shipped":true}`)})
	}))
	t.Cleanup(shipSrv.Close)
	x.shipURL = shipSrv.URL
	return x
}

func (x *endToEnd) handlers() {
	t, e := x.t, x.e
	// Handlers: register, replace, read (credentials masked), list.
	var h openapi.HandlerEndpoint
	put := map[string]any{
		"url": x.shipURL + "/ship/{callable}", "timeout_ms": 5000, "secret_ref": "env:SHIP_SECRET",
		"headers": map[string]string{"X-Tenant": "acme", "Authorization": "Bearer s3cret"},
	}
	e.do(http.MethodPut, "/v1/handlers/remote.*?namespace=shop", put, http.StatusCreated, &h)
	put["max_concurrency"] = 8
	e.do(http.MethodPut, "/v1/handlers/remote.*?namespace=shop", put, http.StatusOK, &h)
	if h.MaxConcurrency != 8 || h.BatchMax != 1 || h.BatchWindowMs != 2 || h.Protocol != "http" || !h.Signed {
		t.Fatalf("replaced endpoint = %+v", h)
	}
	e.do(http.MethodGet, "/v1/handlers/"+url.PathEscape("remote.*")+"?namespace=shop", nil, http.StatusOK, &h)
	if h.Headers["Authorization"] == "Bearer s3cret" || h.Headers["X-Tenant"] != "acme" || h.SecretRef != "env:SHIP_SECRET" {
		t.Fatalf("endpoint as read = %+v", h)
	}
	var handlers openapi.HandlerList
	e.do(http.MethodGet, "/v1/handlers", nil, http.StatusOK, &handlers)
	if len(handlers.Items) != 1 || handlers.Items[0].Pattern != "remote.*" || handlers.Items[0].Namespace != "shop" {
		t.Fatalf("handlers = %+v", handlers)
	}
	// Every runner applies it without a restart.
	waitFor(t, 10*time.Second, "the runner to load the endpoint", func() bool {
		return slices.ContainsFunc(e.reg.Endpoints(), func(s callout.EndpointStatus) bool { return s.Pattern == "remote.*" })
	})

}

func (x *endToEnd) templates() {
	t, e := x.t, x.e
	// Templates: register (YAML and JSON text), list, read.
	for _, doc := range []string{orderTemplate, reviewTemplate, slowTemplate, singleTemplate} {
		e.do(http.MethodPost, "/v1/templates", map[string]string{"template": doc}, http.StatusCreated, nil)
	}
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": orderTemplate}, http.StatusOK, nil)
	var tpls apiPage[openapi.TemplateSummary]
	e.do(http.MethodGet, "/v1/templates?namespace=shop", nil, http.StatusOK, &tpls)
	if len(tpls.Items) != 3 || tpls.Items[0].Name != "slow" {
		t.Fatalf("shop templates = %+v", tpls)
	}
	var tpl openapi.Template
	e.do(http.MethodGet, "/v1/templates/shop/order", nil, http.StatusOK, &tpl)
	if tpl.Version != "1.0.0" || tpl.Steps != 3 || !strings.Contains(string(tpl.Definition), `"input_schema"`) {
		t.Fatalf("template = %+v", tpl)
	}

}

// submitAndRedrive fails an order for good, redrives it and returns it complete.
func (x *endToEnd) submitAndRedrive() apiTask {
	t, e := x.t, x.e
	// Submit, idempotently.
	x.failing.Store(true)
	var order apiTask
	hdr := e.do(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "shop", "name": "order", "context": map[string]any{"order_id": 42}},
		http.StatusCreated, &order, "Idempotency-Key", "order-42")
	if hdr.Get("Location") != "/v1/tasks/"+order.TaskUUID || order.IdempotencyKey != "order-42" || len(order.Steps) != 3 || order.StepsTotal != 3 {
		t.Fatalf("submitted %+v (Location %q)", order, hdr.Get("Location"))
	}
	var again apiTask
	e.do(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "shop", "name": "order", "context": map[string]any{"order_id": 42}, "idempotency_key": "order-42"},
		http.StatusOK, &again)
	if again.TaskUUID != order.TaskUUID {
		t.Fatalf("resubmission created task %s, want %s", again.TaskUUID, order.TaskUUID)
	}

	// A permanent failure: the task is blocked and the step dead-lettered.
	order = e.waitTask(order.TaskUUID, "blocked_by_failures")
	charge := order.step("charge")
	if charge.State != "error" || !strings.Contains(string(charge.LastError), "card declined") || order.step("ship").State != "pending" {
		t.Fatalf("after the failure: %+v", order.Steps)
	}
	var dead apiPage[struct {
		apiStep
		TemplateName string `json:"template_name"`
	}]
	e.do(http.MethodGet, "/v1/dead-letters?namespace=shop&handler=flaky", nil, http.StatusOK, &dead)
	if len(dead.Items) != 1 || dead.Items[0].StepUUID != charge.StepUUID || dead.Items[0].TemplateName != "order" {
		t.Fatalf("dead letters = %+v", dead)
	}

	// Fix the handler, redrive: the task completes, through the remote endpoint.
	x.failing.Store(false)
	var redriven openapi.RedriveResult
	e.do(http.MethodPost, "/v1/dead-letters/redrive", map[string]any{"step_uuids": []string{charge.StepUUID}, "reason": "card fixed"}, http.StatusOK, &redriven)
	if redriven.Redriven != 1 || len(redriven.TasksResumed) != 1 || redriven.TasksResumed[0].String() != order.TaskUUID {
		t.Fatalf("redrive = %+v", redriven)
	}
	e.waitTask(order.TaskUUID, "complete")
	order = e.task(order.TaskUUID, "?include=transitions")
	if order.StepsDone != 3 || order.step("ship").result(t)["shipped"] != true || x.shipCalls.Load() != 1 {
		t.Fatalf("completed order = %+v (ship calls %d)", order, x.shipCalls.Load())
	}
	if c := order.step("charge"); c.Attempts != 2 || c.MaxAttempts < 2 {
		t.Fatalf("redriven charge = %+v", c)
	}
	if !slices.ContainsFunc(order.Transitions, func(tr apiTransition) bool {
		return tr.StepUUID == charge.StepUUID && tr.FromState == "error" && tr.ToState == "enqueued" && tr.WorkerID == "api" &&
			strings.Contains(string(tr.Metadata), `"card fixed"`)
	}) {
		t.Fatalf("no audit row for the redrive in %+v", order.Transitions)
	}
	e.do(http.MethodGet, "/v1/dead-letters", nil, http.StatusOK, &dead)
	if len(dead.Items) != 0 {
		t.Fatalf("dead letters after the redrive = %+v", dead.Items)
	}

	return order
}

func (x *endToEnd) resolve() {
	t, e := x.t, x.e
	// Resolve by hand: the workflow advances with the given result.
	x.failing.Store(true)
	var review apiTask
	e.do(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "shop", "name": "review"}, http.StatusCreated, &review)
	review = e.waitTask(review.TaskUUID, "blocked_by_failures")
	var resolved openapi.StepDetail
	e.do(http.MethodPost, "/v1/steps/"+review.step("approve").StepUUID+"/resolve",
		map[string]any{"result": map[string]any{"approved_by": "ops"}, "reason": "approved by phone"}, http.StatusOK, &resolved)
	if resolved.State != "resolved_manually" {
		t.Fatalf("resolved step = %+v", resolved)
	}
	review = e.waitTask(review.TaskUUID, "complete")
	seen, _ := review.step("publish").result(t)["seen"].(map[string]any)
	if fmt.Sprint(seen["approve"]) != "map[approved_by:ops]" || review.StepsDone != 3 {
		t.Fatalf("publish saw %v; task %+v", seen, review)
	}

}

func (x *endToEnd) retry() {
	t, e := x.t, x.e
	// Retry one failed step with more attempts.
	var retried apiTask
	e.do(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "shop", "name": "order", "context": map[string]any{"order_id": 43}}, http.StatusCreated, &retried)
	retried = e.waitTask(retried.TaskUUID, "blocked_by_failures")
	x.failing.Store(false)
	var step openapi.StepDetail
	e.do(http.MethodPost, "/v1/steps/"+retried.step("charge").StepUUID+"/retry", map[string]any{"additional_attempts": 2}, http.StatusOK, &step)
	// The runner may have claimed it already (attempt 2).
	if step.MaxAttempts != 3 || step.Attempts < 1 || step.Attempts > 2 || step.State == "error" {
		t.Fatalf("retried step = %+v", step.Step)
	}
	e.waitTask(retried.TaskUUID, "complete")
	e.do(http.MethodGet, "/v1/steps/"+step.StepUUID.String()+"?include=transitions", nil, http.StatusOK, &step)
	if step.State != "complete" || len(step.Transitions) < 5 || step.Transitions[len(step.Transitions)-1].ToState != "complete" {
		t.Fatalf("step with transitions = %+v", step)
	}
	e.problem(http.MethodPost, "/v1/steps/"+step.StepUUID.String()+"/retry", nil, http.StatusConflict)

}

// cancel cancels a running task; order (complete) cannot be.
func (x *endToEnd) cancel(order apiTask) {
	t, e := x.t, x.e
	// Cancel a running task: its step is cancelled under the runner.
	var slow apiTask
	e.do(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "shop", "name": "slow", "reason": "test"}, http.StatusCreated, &slow)
	select {
	case <-x.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the gate handler was never called")
	}
	e.do(http.MethodPost, "/v1/tasks/"+slow.TaskUUID+"/cancel", map[string]string{"reason": "no longer needed"}, http.StatusOK, &slow)
	if slow.State != "cancelled" || slow.step("wait").State != "cancelled" {
		t.Fatalf("cancelled = %+v", slow)
	}
	x.releaseOnce.Do(func() { close(x.release) })
	waitFor(t, 10*time.Second, "the runner to report the stale outcome", func() bool { return e.runner.Stats().Stale >= 1 })
	if got := e.task(slow.TaskUUID, ""); got.State != "cancelled" || got.step("wait").State != "cancelled" {
		t.Fatalf("after the handler returned: %+v", got)
	}
	p := e.problem(http.MethodPost, "/v1/tasks/"+order.TaskUUID+"/cancel", nil, http.StatusConflict)
	if !strings.Contains(p.Detail, "(complete)") {
		t.Fatalf("cancel of a complete task: %s", p)
	}

}

func (x *endToEnd) listPages() {
	t, e := x.t, x.e
	// List with filters, across pages.
	start := time.Now().Add(-time.Second)
	var bulk []string
	for i := range 7 {
		var tk apiTask
		e.do(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "bulk", "name": "single", "context": map[string]any{"i": i}}, http.StatusCreated, &tk)
		bulk = append(bulk, tk.TaskUUID)
	}
	slices.Reverse(bulk) // newest first
	for _, id := range bulk {
		e.waitTask(id, "complete")
	}
	q := url.Values{"namespace": {"bulk"}, "state": {"complete,cancelled"}, "template": {"single"}, "limit": {"3"},
		"created_after": {start.Format(time.RFC3339Nano)}, "created_before": {time.Now().Add(time.Second).Format(time.RFC3339Nano)}}
	var listed []string
	pages := 0
	for {
		var page apiPage[apiTask]
		e.do(http.MethodGet, "/v1/tasks?"+q.Encode(), nil, http.StatusOK, &page)
		pages++
		for _, it := range page.Items {
			listed = append(listed, it.TaskUUID)
			if it.State != "complete" || it.Namespace != "bulk" || it.Steps != nil {
				t.Fatalf("listed %+v", it)
			}
		}
		if page.NextCursor == "" {
			break
		}
		q.Set("cursor", page.NextCursor)
	}
	if pages != 3 || !slices.Equal(listed, bulk) {
		t.Fatalf("%d pages listed %v, want 3 pages of %v", pages, listed, bulk)
	}
	var none apiPage[apiTask]
	e.do(http.MethodGet, "/v1/tasks?namespace=bulk&created_before="+url.QueryEscape(start.Format(time.RFC3339Nano)), nil, http.StatusOK, &none)
	if len(none.Items) != 0 {
		t.Fatalf("tasks created before the bulk ones: %+v", none.Items)
	}

}

func (x *endToEnd) status() {
	t, e := x.t, x.e
	// Status.
	var st openapi.StatusBody
	e.do(http.MethodGet, "/v1/status", nil, http.StatusOK, &st)
	if len(st.Workers) != 1 || st.Workers[0].WorkerID != "runner-1" || st.Workers[0].Status != "alive" {
		t.Fatalf("workers = %+v", st.Workers)
	}
	if st.Tasks["complete"] != 3+7 || st.Tasks["cancelled"] != 1 || st.Tasks["blocked_by_failures"] != 0 {
		t.Fatalf("task counts = %v", st.Tasks)
	}
	if len(st.Namespaces) != 2 || st.Namespaces[0].Name != "bulk" || st.Namespaces[0].Ready != 0 || st.Namespaces[1].DeadLetters != 0 {
		t.Fatalf("namespaces = %+v", st.Namespaces)
	}
	if len(st.Endpoints) != 1 || st.Endpoints[0].BreakerState != "closed" || st.Endpoints[0].Calls < 1 {
		t.Fatalf("endpoints = %+v", st.Endpoints)
	}
	if st.Runner == nil || st.Runner.Completed < 10 || st.Runner.Failed != 3 {
		t.Fatalf("runner counters = %+v", st.Runner)
	}

}

// The docs page and the spec are served without a database or a CDN.
func TestDocsAndSpecServed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(openapi.New(openapi.Config{}).Handler())
	t.Cleanup(srv.Close)
	get := func(path string) (int, http.Header, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	code, h, body := get("/docs")
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(body, `fetch("openapi.json")`) {
		t.Fatalf("GET /docs = %d %s", code, h.Get("Content-Type"))
	}
	for _, external := range []string{"http://", "https://", "//cdn", "unpkg", "jsdelivr"} {
		if strings.Contains(body, external) {
			t.Errorf("the docs page refers to %q: it must work offline", external)
		}
	}
	code, _, body = get("/openapi.json")
	if code != http.StatusOK || !strings.Contains(body, `"operationId":"submitTask"`) {
		t.Fatalf("GET /openapi.json = %d", code)
	}
	// Without a database the /v1 operations answer 503 problems.
	code, h, body = get("/v1/status")
	if code != http.StatusServiceUnavailable || h.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("GET /v1/status without a database = %d %s %s", code, h.Get("Content-Type"), body)
	}
}
