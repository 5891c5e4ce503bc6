package openapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/openapi/auth"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// TaskSummary is a task without its context and steps.
type TaskSummary struct {
	TaskUUID            uuid.UUID  `json:"task_uuid" format:"uuid"`
	Namespace           string     `json:"namespace"`
	Name                string     `json:"name" doc:"template name"`
	Version             string     `json:"version" doc:"template version"`
	State               string     `json:"state" enum:"pending,steps_in_process,complete,blocked_by_failures,cancelled,resolved_manually"`
	Priority            int        `json:"priority"`
	CorrelationID       uuid.UUID  `json:"correlation_id" format:"uuid"`
	ParentCorrelationID uuid.UUID  `json:"parent_correlation_id,omitzero" format:"uuid"`
	IdempotencyKey      string     `json:"idempotency_key,omitempty"`
	Initiator           string     `json:"initiator,omitempty"`
	SourceSystem        string     `json:"source_system,omitempty"`
	Reason              string     `json:"reason,omitempty"`
	Tags                []string   `json:"tags" nullable:"false"`
	StepsTotal          int        `json:"steps_total"`
	StepsDone           int        `json:"steps_done" doc:"steps complete or resolved by hand"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`
	CompletedAt         *time.Time `json:"completed_at,omitempty"`
}

// Task is a task with its context, its steps and, when asked for, its
// audit trail.
type Task struct {
	TaskSummary
	Context     json.RawMessage `json:"context" doc:"the task's input (a JSON object)"`
	Steps       []Step          `json:"steps" nullable:"false" doc:"in creation order"`
	Transitions []Transition    `json:"transitions,omitempty" doc:"with include=transitions: every state change of the task and its steps, oldest first"`
}

// Step is one step of a task.
type Step struct {
	StepUUID         uuid.UUID       `json:"step_uuid" format:"uuid"`
	TaskUUID         uuid.UUID       `json:"task_uuid" format:"uuid"`
	Namespace        string          `json:"namespace"`
	Name             string          `json:"name"`
	TemplateStepName string          `json:"template_step_name"`
	Handler          string          `json:"handler" doc:"the callable"`
	Type             string          `json:"type" enum:"standard,decision,deferred_convergence,batchable,batch_worker"`
	State            string          `json:"state" enum:"pending,enqueued,in_progress,complete,waiting_for_retry,error,cancelled,resolved_manually"`
	DependsOn        []string        `json:"depends_on" nullable:"false" doc:"names of its parent steps"`
	PendingParents   int             `json:"pending_parents" doc:"parents not finished yet"`
	Attempts         int             `json:"attempts" doc:"attempts started"`
	MaxAttempts      int             `json:"max_attempts"`
	Yields           int             `json:"yields" doc:"times the step yielded (saved a checkpoint and ran again without using an attempt); reset by a redrive"`
	Retryable        bool            `json:"retryable"`
	TimeoutMs        int             `json:"timeout_ms,omitempty"`
	RunAt            time.Time       `json:"run_at" doc:"when it is (or was) ready to run; retries put it in the future"`
	LeaseOwner       string          `json:"lease_owner,omitempty" doc:"the runner working on it"`
	LeaseExpiresAt   *time.Time      `json:"lease_expires_at,omitempty"`
	Inputs           json.RawMessage `json:"inputs,omitempty"`
	Results          json.RawMessage `json:"results,omitempty" doc:"the handler's step result (success, status, result, metadata) once complete or resolved"`
	Checkpoint       json.RawMessage `json:"checkpoint,omitempty"`
	LastError        json.RawMessage `json:"last_error,omitempty" doc:"the step result of the last failed attempt"`
	CreatedAt        time.Time       `json:"created_at"`
	UpdatedAt        time.Time       `json:"updated_at"`
	LastAttemptedAt  *time.Time      `json:"last_attempted_at,omitempty"`
	CompletedAt      *time.Time      `json:"completed_at,omitempty"`
}

// Transition is one state change in the audit trail.
type Transition struct {
	StepUUID  uuid.UUID       `json:"step_uuid,omitzero" format:"uuid" doc:"the step that changed; absent for the task's own changes"`
	FromState string          `json:"from_state,omitempty" doc:"absent when created in to_state"`
	ToState   string          `json:"to_state"`
	Attempt   int             `json:"attempt,omitempty"`
	WorkerID  string          `json:"worker_id,omitempty" doc:"the runner, or the actor of a manual change (api)"`
	Metadata  json.RawMessage `json:"metadata,omitempty" doc:"the error of a failure; action, actor and reason of a manual change"`
	CreatedAt time.Time       `json:"created_at"`
}

// TaskList is a page of tasks.
type TaskList struct {
	Items      []TaskSummary `json:"items" nullable:"false"`
	NextCursor string        `json:"next_cursor,omitempty" doc:"pass as cursor for the next page; absent on the last page"`
}

// SubmitTaskRequest asks for a task.
type SubmitTaskRequest struct {
	Namespace           string          `json:"namespace" minLength:"1" maxLength:"56" example:"shop"`
	Name                string          `json:"name" minLength:"1" maxLength:"128" doc:"template name" example:"order_fulfillment"`
	Version             string          `json:"version,omitempty" maxLength:"64" doc:"template version; absent: the most recently registered"`
	Context             json.RawMessage `json:"context,omitempty" doc:"the task's input: a JSON object, validated against the template's input_schema"`
	Priority            int             `json:"priority,omitempty" minimum:"-2147483648" maximum:"2147483647" doc:"higher runs first"`
	CorrelationID       uuid.UUID       `json:"correlation_id,omitzero" format:"uuid" doc:"absent: generated"`
	ParentCorrelationID uuid.UUID       `json:"parent_correlation_id,omitzero" format:"uuid"`
	IdempotencyKey      string          `json:"idempotency_key,omitempty" minLength:"1" maxLength:"255" doc:"or the Idempotency-Key header: a resubmission with the same key returns the first task (200) instead of creating another"`
	Initiator           string          `json:"initiator,omitempty" maxLength:"255"`
	SourceSystem        string          `json:"source_system,omitempty" maxLength:"255"`
	Reason              string          `json:"reason,omitempty" maxLength:"1024"`
	Tags                []string        `json:"tags,omitempty" maxItems:"64"`
}

// ActionRequest is the optional body of a manual change.
type ActionRequest struct {
	Reason string `json:"reason,omitempty" maxLength:"1024" doc:"recorded in the audit trail"`
}

type submitTaskInput struct {
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"makes the submission idempotent, like the body's idempotency_key"`
	Body           SubmitTaskRequest
}

type submitTaskOutput struct {
	Status   int
	Location string `header:"Location" doc:"the task's URL"`
	Body     Task
}

type taskOutput struct {
	Body Task
}

type getTaskInput struct {
	TaskUUID uuid.UUID `path:"task_uuid" format:"uuid"`
	Include  []string  `query:"include" enum:"transitions" doc:"transitions: add the audit trail"`
}

type listTasksInput struct {
	State         []string  `query:"state" enum:"pending,steps_in_process,complete,blocked_by_failures,cancelled,resolved_manually" doc:"only tasks in these states (comma-separated)"`
	Namespace     string    `query:"namespace" maxLength:"56"`
	Template      string    `query:"template" maxLength:"128" doc:"only tasks of this template name"`
	CorrelationID uuid.UUID `query:"correlation_id" format:"uuid" doc:"only tasks with this correlation_id"`
	CreatedAfter  time.Time `query:"created_after" doc:"only tasks created at or after (RFC 3339)"`
	CreatedBefore time.Time `query:"created_before" doc:"only tasks created before (RFC 3339)"`
	Cursor        string    `query:"cursor" maxLength:"64" doc:"next_cursor of the previous page"`
	Limit         int       `query:"limit" minimum:"1" maximum:"500" default:"50" doc:"page size"`
}

type listTasksOutput struct {
	Body TaskList
}

type cancelTaskInput struct {
	TaskUUID uuid.UUID `path:"task_uuid" format:"uuid"`
	Body     *ActionRequest
}

func (s *Server) registerTasks() {
	tags := []string{"tasks"}
	huma.Register(s.api, huma.Operation{
		OperationID: "submitTask",
		Method:      http.MethodPost,
		Path:        "/v1/tasks",
		Summary:     "Submit a task",
		Description: "Creates a task from a registered template and its initial steps in one transaction (201). With an " +
			"idempotency key (the Idempotency-Key header or idempotency_key in the body) a resubmission returns the task " +
			"created first (200). A context that does not match the template's input_schema answers 422 with each problem at body.context.<path>.",
		Tags:          tags,
		DefaultStatus: http.StatusCreated,
		MaxBodyBytes:  s.cfg.MaxRequestBytes,
		Responses: map[string]*huma.Response{
			"200": {Description: "An earlier task with the same idempotency key", Content: map[string]*huma.MediaType{"application/json": {Schema: s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[Task](), true, "")}}},
		},
		Errors: []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.submitTask)
	huma.Register(s.api, huma.Operation{
		OperationID: "getTask",
		Method:      http.MethodGet,
		Path:        "/v1/tasks/{task_uuid}",
		Summary:     "Get a task with its steps",
		Description: "The task, its context, and every step with its state, attempts, results, last error and timestamps; include=transitions adds the audit trail.",
		Tags:        tags,
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.getTask)
	huma.Register(s.api, huma.Operation{
		OperationID: "listTasks",
		Method:      http.MethodGet,
		Path:        "/v1/tasks",
		Summary:     "List tasks",
		Description: "Tasks newest first, filtered by state, namespace, template, correlation id and creation time, in pages of at most 500 (cursor pagination).",
		Tags:        tags,
		Errors:      []int{http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.listTasks)
	huma.Register(s.api, huma.Operation{
		OperationID: "cancelTask",
		Method:      http.MethodPost,
		Path:        "/v1/tasks/{task_uuid}/cancel",
		Summary:     "Cancel a task",
		Description: "In one transaction every step that has not finished (pending, enqueued, in_progress, waiting_for_retry, error) " +
			"becomes cancelled, then the task. A runner still working on a step loses its lease and its result is discarded. " +
			"A finished task (complete, cancelled, resolved_manually) answers 409.",
		Tags:         tags,
		MaxBodyBytes: s.cfg.MaxRequestBytes,
		Errors:       []int{http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.cancelTask)
}

func taskSummary(t runner.Task) TaskSummary {
	tags := t.Tags
	if tags == nil {
		tags = []string{}
	}
	return TaskSummary{
		TaskUUID: t.TaskUUID, Namespace: t.Namespace, Name: t.TemplateName, Version: t.TemplateVersion, State: string(t.State),
		Priority: t.Priority, CorrelationID: t.CorrelationID, ParentCorrelationID: t.ParentCorrelationID.UUID,
		IdempotencyKey: t.IdempotencyKey, Initiator: t.Initiator, SourceSystem: t.SourceSystem, Reason: t.Reason, Tags: tags,
		StepsTotal: t.StepsTotal, StepsDone: t.StepsDone, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, CompletedAt: t.CompletedAt,
	}
}

func stepFromRow(s runner.Step) Step {
	deps := s.DependsOn
	if deps == nil {
		deps = []string{}
	}
	return Step{
		StepUUID: s.StepUUID, TaskUUID: s.TaskUUID, Namespace: s.Namespace, Name: s.Name, TemplateStepName: s.TemplateStepName,
		Handler: s.Handler, Type: s.Type, State: string(s.State), DependsOn: deps, PendingParents: s.PendingParents,
		Attempts: s.Attempts, MaxAttempts: s.MaxAttempts, Yields: s.Yields, Retryable: s.Retryable, TimeoutMs: s.TimeoutMs, RunAt: s.RunAt,
		LeaseOwner: s.LeaseOwner, LeaseExpiresAt: s.LeaseExpiresAt,
		Inputs: rawJSON(s.Inputs), Results: rawJSON(s.Results), Checkpoint: rawJSON(s.Checkpoint), LastError: rawJSON(s.LastError),
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, LastAttemptedAt: s.LastAttemptedAt, CompletedAt: s.CompletedAt,
	}
}

// rawJSON returns b as a JSON value, or nothing for SQL NULL.
func rawJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(b)
}

func transitionsFromRows(rows []runner.Transition) []Transition {
	out := make([]Transition, 0, len(rows))
	for _, r := range rows {
		out = append(out, Transition{
			StepUUID: r.StepUUID.UUID, FromState: r.FromState, ToState: r.ToState, Attempt: r.Attempt,
			WorkerID: r.WorkerID, Metadata: rawJSON(r.Metadata), CreatedAt: r.CreatedAt,
		})
	}
	return out
}

// loadTask reads a task with its steps (and transitions).
func (s *Server) loadTask(ctx context.Context, id uuid.UUID, transitions bool) (Task, error) {
	t, err := s.cfg.Client.GetTask(ctx, id)
	if err != nil {
		return Task{}, s.fail(ctx, err)
	}
	steps, err := s.cfg.Client.ListTaskSteps(ctx, id)
	if err != nil {
		return Task{}, s.fail(ctx, err)
	}
	out := Task{TaskSummary: taskSummary(t), Context: rawJSON(t.Context), Steps: make([]Step, 0, len(steps))}
	for _, st := range steps {
		out.Steps = append(out.Steps, stepFromRow(st))
		hideStepExcerpts(ctx, &out.Steps[len(out.Steps)-1])
	}
	if transitions {
		rows, err := s.cfg.Client.ListTaskTransitions(ctx, id)
		if err != nil {
			return Task{}, s.fail(ctx, err)
		}
		out.Transitions = transitionsFromRows(rows)
		hideTransitionExcerpts(ctx, out.Transitions)
	}
	return out, nil
}

func (s *Server) submitTask(ctx context.Context, in *submitTaskInput) (*submitTaskOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	b := in.Body
	key := b.IdempotencyKey
	if in.IdempotencyKey != "" {
		if key != "" && key != in.IdempotencyKey {
			return nil, invalid("two different idempotency keys",
				fieldError("header.Idempotency-Key", "differs from body.idempotency_key; send one of them"))
		}
		key = in.IdempotencyKey
	}
	// The schema bounds the number of tags; huma's tags cannot bound each item.
	var tagProblems []*huma.ErrorDetail
	for i, tag := range b.Tags {
		if n := utf8.RuneCountInString(tag); n > contracts.MaxTagLen {
			tagProblems = append(tagProblems, fieldError(fmt.Sprintf("body.tags[%d]", i),
				fmt.Sprintf("is %d characters long; a tag may have at most %d", n, contracts.MaxTagLen)))
		}
	}
	if len(tagProblems) > 0 {
		return nil, invalid("validation failed", tagProblems...)
	}
	res, err := s.cfg.Client.Submit(ctx, runner.SubmitRequest{
		Namespace: b.Namespace, Name: b.Name, Version: b.Version, Context: b.Context, Priority: b.Priority,
		CorrelationID: b.CorrelationID, ParentCorrelationID: b.ParentCorrelationID, IdempotencyKey: key,
		Initiator: b.Initiator, SourceSystem: b.SourceSystem, Reason: b.Reason, Tags: b.Tags,
	})
	if err != nil {
		var ve *workflow.ValidationError
		switch {
		case errors.Is(err, runner.ErrInvalidContext) && errors.As(err, &ve):
			return nil, invalid("the context does not match the template's input_schema", problemsAt("body.context", ve.Problems)...)
		case errors.Is(err, runner.ErrTemplateUnloadable):
			return nil, invalid("the template cannot be loaded", fieldError("body.name", lastPart(err)+"; delete this version and register it again"))
		case errors.Is(err, runner.ErrInvalidRequest):
			return nil, invalid("validation failed", fieldError("body", lastPart(err)))
		case errors.Is(err, runner.ErrNotFound):
			v := b.Version
			if v == "" {
				v = "any version"
			}
			return nil, invalid("unknown template", fieldError("body.name",
				fmt.Sprintf("template %s/%s (%s) is not registered", b.Namespace, b.Name, v)))
		}
		return nil, s.fail(ctx, err)
	}
	task, err := s.loadTask(ctx, res.TaskUUID, false)
	if err != nil {
		return nil, err
	}
	out := &submitTaskOutput{Status: http.StatusOK, Location: "/v1/tasks/" + res.TaskUUID.String(), Body: task}
	if res.Created {
		out.Status = http.StatusCreated
	}
	return out, nil
}

func (s *Server) getTask(ctx context.Context, in *getTaskInput) (*taskOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	task, err := s.loadTask(ctx, in.TaskUUID, slices.Contains(in.Include, "transitions"))
	if err != nil {
		return nil, err
	}
	return &taskOutput{Body: task}, nil
}

func (s *Server) listTasks(ctx context.Context, in *listTasksInput) (*listTasksOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	f := runner.TaskFilter{
		States: typedTaskStates(in.State), Namespace: in.Namespace, TemplateName: in.Template, CorrelationID: in.CorrelationID,
		CreatedAfter: in.CreatedAfter, CreatedBefore: in.CreatedBefore, Limit: in.Limit,
	}
	if in.Cursor != "" {
		id, err := decodeTaskCursor(in.Cursor)
		if err != nil {
			return nil, err
		}
		f.Before = id
	}
	rows, more, err := s.cfg.Client.ListTasks(ctx, f)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &listTasksOutput{Body: TaskList{Items: make([]TaskSummary, 0, len(rows))}}
	for _, r := range rows {
		out.Body.Items = append(out.Body.Items, taskSummary(r))
	}
	if more {
		out.Body.NextCursor = encodeTaskCursor(rows[len(rows)-1].TaskUUID)
	}
	return out, nil
}

// typedTaskStates types the state filter (already checked against the enum).
func typedTaskStates(in []string) []runner.TaskState {
	out := make([]runner.TaskState, len(in))
	for i, s := range in {
		out[i] = runner.TaskState(s)
	}
	return out
}

// manual describes a manual change for the audit trail: the actor "api",
// the authenticated caller when auth is on, and the reason given.
func (s *Server) manual(ctx context.Context, reason string) runner.Manual {
	m := runner.Manual{Actor: "api", Reason: reason, Now: s.cfg.Now()}
	if p, ok := auth.PrincipalFrom(ctx); ok {
		m.Principal = string(p.Kind) + ":" + p.Name
	}
	return m
}

func (s *Server) cancelTask(ctx context.Context, in *cancelTaskInput) (*taskOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	var reason string
	if in.Body != nil {
		reason = in.Body.Reason
	}
	if _, err := s.cfg.Client.CancelTask(ctx, in.TaskUUID, s.manual(ctx, reason)); err != nil {
		return nil, s.fail(ctx, err)
	}
	task, err := s.loadTask(ctx, in.TaskUUID, false)
	if err != nil {
		return nil, err
	}
	return &taskOutput{Body: task}, nil
}
