package runner_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// The admin operations read and change tasks in the runner's own types,
// and report refusals with the runner's errors.
func TestClientAdminTasks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	client := runner.NewClient(pgtest.Pool(t), runner.ClientConfig{})
	register(t, client, "name: pair\nnamespace_name: admin\nversion: 1\nsteps:\n  - {name: a, handler: {callable: x}}\n  - {name: b, handler: {callable: x}, depends_on: [a]}\n")
	sub, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "admin", Name: "pair"})
	if err != nil {
		t.Fatal(err)
	}
	task, err := client.GetTask(ctx, sub.TaskUUID)
	if err != nil || task.State != contracts.TaskStateStepsInProcess || task.StepsTotal != 2 {
		t.Fatalf("GetTask: %+v %v", task, err)
	}
	steps, err := client.ListTaskSteps(ctx, sub.TaskUUID)
	if err != nil || len(steps) != 2 || steps[0].State != contracts.StepStateEnqueued || steps[1].State != contracts.StepStatePending {
		t.Fatalf("ListTaskSteps: %+v %v", steps, err)
	}
	tasks, more, err := client.ListTasks(ctx, runner.TaskFilter{States: []runner.TaskState{contracts.TaskStateStepsInProcess}, Limit: 10})
	if err != nil || more || len(tasks) != 1 || tasks[0].TaskUUID != sub.TaskUUID {
		t.Fatalf("ListTasks: %+v %v %v", tasks, more, err)
	}
	var conflict *runner.StateConflictError
	if _, err := client.RetryStep(ctx, steps[0].StepUUID, 1, runner.Manual{}); !errors.As(err, &conflict) || conflict.Items[0].State != "enqueued" {
		t.Errorf("retrying an enqueued step: %v", err)
	}
	if res, err := client.CancelTask(ctx, sub.TaskUUID, runner.Manual{Actor: "test", Reason: "done", Now: time.Now()}); err != nil || res.StepsCancelled != 2 {
		t.Fatalf("CancelTask: %+v %v", res, err)
	}
	if _, err := client.CancelTask(ctx, sub.TaskUUID, runner.Manual{}); !errors.As(err, &conflict) || conflict.Kind != "task" {
		t.Errorf("cancelling again: %v", err)
	}
	trs, err := client.ListTaskTransitions(ctx, sub.TaskUUID)
	if err != nil || len(trs) == 0 || trs[len(trs)-1].ToState != string(contracts.TaskStateCancelled) {
		t.Errorf("ListTaskTransitions: %+v %v", trs, err)
	}
	var missing *runner.MissingError
	if _, err := client.ResolveStep(ctx, uuid.New(), nil, runner.Manual{}); !errors.As(err, &missing) || !errors.Is(err, runner.ErrNotFound) {
		t.Errorf("resolving an unknown step: %v", err)
	}
	if _, err := client.GetStep(ctx, uuid.New()); !errors.Is(err, runner.ErrNotFound) {
		t.Errorf("an unknown step: %v", err)
	}
	counts, err := client.CountTasksByState(ctx, time.Now().Add(-time.Hour))
	if err != nil || counts[contracts.TaskStateCancelled] != 1 || len(counts) != len(contracts.TaskStates()) {
		t.Errorf("CountTasksByState: %v %v", counts, err)
	}
	if dl, _, err := client.ListDeadLetters(ctx, runner.DeadLetterFilter{Namespace: "admin"}, nil, 10); err != nil || len(dl) != 0 {
		t.Errorf("ListDeadLetters: %+v %v", dl, err)
	}
}

// Templates, endpoints and the status reads through the Client.
func TestClientAdminCatalogue(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	client := runner.NewClient(pgtest.Pool(t), runner.ClientConfig{})
	info := register(t, client, "name: one\nnamespace_name: cat\nversion: 1\nsteps:\n  - {name: a, handler: {callable: x}}\n")
	if _, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "cat", Name: "one"}); err != nil {
		t.Fatal(err)
	}
	if tpls, _, err := client.ListTemplates(ctx, runner.TemplateFilter{Namespace: "cat", Limit: 10}); err != nil || len(tpls) != 1 || tpls[0].Steps != 1 {
		t.Errorf("ListTemplates: %+v %v", tpls, err)
	}
	if tpl, err := client.GetTemplateByID(ctx, info.ID); err != nil || tpl.Name != "one" || len(tpl.Definition) == 0 {
		t.Errorf("GetTemplateByID: %+v %v", tpl, err)
	}
	var inUse *runner.TemplateInUseError
	if _, err := client.DeleteTemplate(ctx, "cat", "one", "1"); !errors.As(err, &inUse) || inUse.Unfinished != 1 {
		t.Errorf("deleting a template in use: %v", err)
	}
	ep := runner.HandlerEndpoint{Namespace: "cat", Pattern: "x", URL: "http://127.0.0.1:1/", Protocol: "http", BatchMax: 1}
	if err := runner.ValidateEndpoint(ep, runner.SecretSource{Logger: quietLogger()}); err != nil {
		t.Fatal(err)
	}
	saved, err := client.PutEndpoint(ctx, ep, time.Now())
	if err != nil || saved.ID == 0 || !saved.CreatedAt.Equal(saved.UpdatedAt) {
		t.Fatalf("PutEndpoint: %+v %v", saved, err)
	}
	if got, err := client.GetEndpoint(ctx, "cat", "x"); err != nil || got.URL != ep.URL {
		t.Errorf("GetEndpoint: %+v %v", got, err)
	}
	if all, err := client.ListEndpoints(ctx); err != nil || len(all) != 1 {
		t.Errorf("ListEndpoints: %+v %v", all, err)
	}
	if ok, err := client.DeleteEndpoint(ctx, "cat", "x"); err != nil || !ok {
		t.Errorf("DeleteEndpoint: %v %v", ok, err)
	}
	if _, err := client.GetEndpoint(ctx, "cat", "x"); !errors.Is(err, runner.ErrNotFound) {
		t.Errorf("a deleted endpoint: %v", err)
	}
	queues, err := client.ListNamespaceQueues(ctx, time.Now())
	if err != nil || len(queues) != 1 || queues[0].Name != "cat" || queues[0].Ready != 1 {
		t.Errorf("ListNamespaceQueues: %+v %v", queues, err)
	}
	if ready, err := client.ReadyQueues(ctx); err != nil || len(ready) != 1 || ready[0].Ready != 1 {
		t.Errorf("ReadyQueues: %+v %v", ready, err)
	}
	if workers, err := client.ListWorkers(ctx); err != nil || len(workers) != 0 {
		t.Errorf("ListWorkers: %+v %v", workers, err)
	}
}
