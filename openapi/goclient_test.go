package openapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/openapi/client"
)

const gatedTemplate = `
name: gated
namespace_name: shop
version: 1
steps:
  - name: first
    handler: {callable: echo}
  - name: wait
    dependencies: [first]
    handler: {callable: gate}
`

// gatedEnv is an API with a runner whose shop/gated tasks wait in their
// second step until release is called.
func gatedEnv(t *testing.T) (e *apiEnv, c *client.ClientWithResponses, entered <-chan struct{}, release func()) {
	t.Helper()
	e = newAPIEnv(t, envOptions{runner: true})
	in := make(chan struct{}, 8)
	rel := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(rel) }) }
	t.Cleanup(release)
	e.funcs.Register("echo", echo)
	e.funcs.Register("gate", func(ctx context.Context, _ *contracts.StepEnvelope) (contracts.StepResult, error) {
		in <- struct{}{}
		select {
		case <-rel:
		case <-ctx.Done():
		}
		return contracts.StepResult{Success: true}, nil
	})
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": gatedTemplate}, http.StatusCreated, nil)
	c, err := client.New(e.srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	return e, c, in, release
}

// The Go client's submit outcome: 201 is SubmitCreated, a resubmission
// under the same Idempotency-Key is SubmitExisting with the same task, an
// error answer is a *client.Problem.
func TestGoClientSubmitOutcome(t *testing.T) {
	t.Parallel()
	_, c, _, release := gatedEnv(t)
	defer release()
	ctx := t.Context()
	body := client.SubmitTaskRequest{Namespace: "shop", Name: "gated", Context: map[string]any{"order": 1}}
	params := &client.SubmitTaskParams{IdempotencyKey: client.Ptr("order-1")}

	res, err := c.SubmitTaskWithResponse(ctx, params, body)
	if err != nil {
		t.Fatal(err)
	}
	first, outcome, err := res.Outcome()
	if err != nil || outcome != client.SubmitCreated || res.StatusCode() != http.StatusCreated {
		t.Fatalf("first submission: %v %v (status %d), want created (201)", outcome, err, res.StatusCode())
	}
	res, err = c.SubmitTaskWithResponse(ctx, params, body)
	if err != nil {
		t.Fatal(err)
	}
	again, outcome, err := res.Outcome()
	if err != nil || outcome != client.SubmitExisting || res.StatusCode() != http.StatusOK {
		t.Fatalf("resubmission under the same key: %v %v (status %d), want existing (200)", outcome, err, res.StatusCode())
	}
	if again.TaskUuid != first.TaskUuid || outcome.String() != "existing" {
		t.Fatalf("resubmission answered task %s (%s), want %s", again.TaskUuid, outcome, first.TaskUuid)
	}

	res, err = c.SubmitTaskWithResponse(ctx, nil, client.SubmitTaskRequest{Namespace: "shop", Name: "no_such_template", Context: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	task, outcome, err := res.Outcome()
	var p *client.Problem
	if !errors.As(err, &p) || p.StatusCode != http.StatusUnprocessableEntity || task != nil || outcome != 0 {
		t.Fatalf("unknown template: %v %v %v, want a 422 *client.Problem", task, outcome, err)
	}
}

// WaitTask polls until the task is final, calling OnPoll with every read;
// it does not return while the task still runs.
func TestGoClientWaitTask(t *testing.T) {
	t.Parallel()
	_, c, entered, release := gatedEnv(t)
	ctx := t.Context()
	res, err := c.SubmitTaskWithResponse(ctx, nil, client.SubmitTaskRequest{Namespace: "shop", Name: "gated", Context: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	task, _, err := res.Outcome()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the gated step never started")
	}

	type answer struct {
		task *client.Task
		err  error
	}
	done := make(chan answer, 1)
	polls := make(chan client.TaskState, 2)
	var last atomic.Value
	go func() {
		got, err := client.WaitTask(ctx, c, task.TaskUuid, &client.WaitOptions{
			Interval: 10 * time.Millisecond,
			OnPoll: func(t *client.Task) {
				last.Store(t.State)
				select {
				case polls <- t.State:
				default:
				}
			},
		})
		done <- answer{got, err}
	}()
	// Two reads of the running task, and WaitTask has not returned.
	for range 2 {
		if s := <-polls; s != client.TaskStateStepsInProcess {
			t.Fatalf("OnPoll saw %s while the gated step runs, want steps_in_process", s)
		}
	}
	select {
	case a := <-done:
		t.Fatalf("WaitTask returned while the task runs: %+v, %v", a.task, a.err)
	default:
	}
	release()
	a := <-done
	if a.err != nil {
		t.Fatal(a.err)
	}
	if a.task.State != client.TaskStateComplete || a.task.StepsDone != 2 || a.task.TaskUuid != task.TaskUuid {
		t.Fatalf("WaitTask = %s %d/%d steps, want complete 2/2", a.task.State, a.task.StepsDone, a.task.StepsTotal)
	}
	if l := last.Load(); l != client.TaskStateComplete {
		t.Fatalf("OnPoll's last state = %v, want complete (the final read too)", l)
	}
}

// WaitTask returns when its context ends, wrapping ctx.Err() and naming
// the last state seen; an unknown task is a 404 *client.Problem.
func TestGoClientWaitTaskEnds(t *testing.T) {
	t.Parallel()
	_, c, entered, release := gatedEnv(t)
	defer release()
	res, err := c.SubmitTaskWithResponse(t.Context(), nil, client.SubmitTaskRequest{Namespace: "shop", Name: "gated", Context: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	task, _, err := res.Outcome()
	if err != nil {
		t.Fatal(err)
	}
	<-entered

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	polled := 0
	_, err = client.WaitTask(ctx, c, task.TaskUuid, &client.WaitOptions{Interval: time.Hour, OnPoll: func(*client.Task) {
		polled++
		cancel() // the context ends during the first interval
	}})
	if !errors.Is(err, context.Canceled) || polled != 1 {
		t.Fatalf("WaitTask after cancel = %v after %d reads, want context.Canceled after 1", err, polled)
	}
	if want := "still steps_in_process"; !strings.Contains(err.Error(), want) {
		t.Errorf("WaitTask error %q does not say %q", err, want)
	}

	var p *client.Problem
	_, err = client.WaitTask(t.Context(), c, [16]byte{1}, nil)
	if !errors.As(err, &p) || p.StatusCode != http.StatusNotFound {
		t.Fatalf("WaitTask of an unknown task = %v, want a 404 *client.Problem", err)
	}
}
