package openapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	adminv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/admin/v1"
	"github.com/tasker-runner/tasker-runner/contracts/gen/tasker/admin/v1/adminv1connect"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// A step's yields (checkpointed re-runs that used no attempt) show in
// GET /v1/steps/{id}, in its task's steps and in its dead letter, over REST
// and the mirror; retrying it resets them.
func TestStepYieldsShown(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{runner: true})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// The step yields twice (a checkpoint, back to enqueued), then parks
	// until told to fail for good.
	parked, fail := make(chan struct{}), make(chan struct{})
	e.funcs.Register("echo", func(ctx context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		var c struct{ Cursor int }
		_ = json.Unmarshal(env.Step.Checkpoint, &c)
		if c.Cursor < 2 {
			return contracts.StepResult{Success: true, Status: contracts.StatusYielded, Checkpoint: []byte(fmt.Sprintf(`{"cursor":%d}`, c.Cursor+1))}, nil
		}
		close(parked)
		select {
		case <-fail:
		case <-ctx.Done():
		}
		return contracts.StepResult{Error: &contracts.StepError{Message: "boom", ErrorType: contracts.ErrorTypeHandler}}, nil
	})
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": singleTemplate}, http.StatusCreated, nil)
	var task apiTask
	e.do(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "bulk", "name": "single", "context": map[string]any{}}, http.StatusCreated, &task)
	step := task.step("s")
	select {
	case <-parked:
	case <-ctx.Done():
		t.Fatal("the step did not run a third time")
	}

	var got apiStep
	e.do(http.MethodGet, "/v1/steps/"+step.StepUUID, nil, http.StatusOK, &got)
	if got.Yields != 2 || got.State != "in_progress" {
		t.Errorf("GET /v1/steps/{id}: yields %d, state %s; want 2, in_progress", got.Yields, got.State)
	}
	if s := e.task(task.TaskUUID, "").step("s"); s.Yields != 2 {
		t.Errorf("GET /v1/tasks/{id}: step yields %d, want 2", s.Yields)
	}

	base, _ := serveMirror(t, e.pool, nil)
	client := adminv1connect.NewAdminServiceClient(h2cClient(t), base)
	if st, err := client.GetStep(ctx, connect.NewRequest(&adminv1.GetStepRequest{StepUuid: step.StepUUID})); err != nil || st.Msg.GetStep().GetYields() != 2 {
		t.Errorf("mirror GetStep: %v %v; want yields 2", st, err)
	}
	if tk, err := client.GetTask(ctx, connect.NewRequest(&adminv1.GetTaskRequest{TaskUuid: task.TaskUUID})); err != nil || len(tk.Msg.GetTask().GetSteps()) != 1 || tk.Msg.GetTask().GetSteps()[0].GetYields() != 2 {
		t.Errorf("mirror GetTask: %v %v; want its step with yields 2", tk, err)
	}

	// It fails for good: its dead letter keeps the count. The runner stops
	// then, so that the retried step stays enqueued.
	close(fail)
	waitFor(t, 20*time.Second, "the step to fail", func() bool {
		e.do(http.MethodGet, "/v1/steps/"+step.StepUUID, nil, http.StatusOK, &got)
		return got.State == "error"
	})
	if err := e.runner.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	var dl apiPage[apiStep]
	e.do(http.MethodGet, "/v1/dead-letters?namespace=bulk", nil, http.StatusOK, &dl)
	if len(dl.Items) != 1 || dl.Items[0].StepUUID != step.StepUUID || dl.Items[0].Yields != 2 {
		t.Errorf("GET /v1/dead-letters: %+v; want the step with yields 2", dl.Items)
	}
	if list, err := client.ListDeadLetters(ctx, connect.NewRequest(&adminv1.ListDeadLettersRequest{Namespace: "bulk"})); err != nil || len(list.Msg.GetItems()) != 1 || list.Msg.GetItems()[0].GetStep().GetYields() != 2 {
		t.Errorf("mirror ListDeadLetters: %v %v; want the step with yields 2", list, err)
	}

	// A retry starts the count again.
	e.do(http.MethodPost, "/v1/steps/"+step.StepUUID+"/retry", map[string]any{}, http.StatusOK, &got)
	if got.Yields != 0 || got.State != "enqueued" {
		t.Errorf("retried step: yields %d, state %s; want 0, enqueued", got.Yields, got.State)
	}
}
