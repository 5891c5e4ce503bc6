package openapi_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	adminv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/admin/v1"
	"github.com/tasker-runner/tasker-runner/contracts/gen/tasker/admin/v1/adminv1connect"
	"github.com/tasker-runner/tasker-runner/runner/store"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// A step's yields (checkpointed re-runs that used no attempt) show in
// GET /v1/steps/{id}, in its task's steps and in its dead letter, over REST
// and the mirror; retrying it resets them.
func TestStepYieldsShown(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": singleTemplate}, http.StatusCreated, nil)
	var task apiTask
	e.do(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "bulk", "name": "single", "context": map[string]any{}}, http.StatusCreated, &task)
	step := task.step("s")
	if step.Yields != 0 {
		t.Fatalf("a new step has %d yields", step.Yields)
	}
	id := uuid.MustParse(step.StepUUID)

	// The step yields twice, as a runner writes it: a checkpoint, back to enqueued.
	claim := func() store.ClaimedStep {
		t.Helper()
		cs, err := store.Claim(ctx, e.pool, store.ClaimParams{WorkerID: "w1", Namespaces: []string{"bulk"}, Limit: 1, Now: time.Now(), LeaseFor: time.Minute})
		if err != nil || len(cs) != 1 || cs[0].StepUUID != id {
			t.Fatalf("claim: %+v %v", cs, err)
		}
		return cs[0]
	}
	for i := range 2 {
		c := claim()
		ckpt := fmt.Sprintf(`{"cursor":%d}`, i)
		if _, err := store.Complete(ctx, e.pool, "w1", time.Now(), []store.Completion{{StepUUID: id, Attempt: c.Attempt, Epoch: c.Epoch, State: contracts.StepStateEnqueued, RunAt: time.Now(), Checkpoint: []byte(ckpt)}}); err != nil {
			t.Fatal(err)
		}
	}

	var got apiStep
	e.do(http.MethodGet, "/v1/steps/"+step.StepUUID, nil, http.StatusOK, &got)
	if got.Yields != 2 || got.State != "enqueued" {
		t.Errorf("GET /v1/steps/{id}: yields %d, state %s; want 2, enqueued", got.Yields, got.State)
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

	// It fails for good: its dead letter keeps the count.
	c := claim()
	if _, err := store.Complete(ctx, e.pool, "w1", time.Now(), []store.Completion{{StepUUID: id, Attempt: c.Attempt, Epoch: c.Epoch, State: contracts.StepStateError, Error: []byte(`{"message":"boom"}`)}}); err != nil {
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
