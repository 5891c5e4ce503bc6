package openapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/runner"
)

// DeadLetter is a step that failed for good (state error).
type DeadLetter struct {
	Step
	TemplateName    string `json:"template_name"`
	TemplateVersion string `json:"template_version"`
}

// DeadLetterList is a page of dead letters.
type DeadLetterList struct {
	Items      []DeadLetter `json:"items" nullable:"false"`
	NextCursor string       `json:"next_cursor,omitempty" doc:"pass as cursor for the next page; absent on the last page"`
}

// DeadLetterFilter selects dead letters; absent fields do not filter.
type DeadLetterFilter struct {
	Namespace    string    `json:"namespace,omitempty" maxLength:"56"`
	Handler      string    `json:"handler,omitempty" maxLength:"255" doc:"the callable"`
	TaskUUID     uuid.UUID `json:"task_uuid,omitzero" format:"uuid"`
	Template     string    `json:"template,omitempty" maxLength:"128" doc:"template name of the step's task"`
	FailedAfter  time.Time `json:"failed_after,omitzero" doc:"failed at or after"`
	FailedBefore time.Time `json:"failed_before,omitzero" doc:"failed before"`
}

func (f DeadLetterFilter) filter() runner.DeadLetterFilter {
	return runner.DeadLetterFilter{
		Namespace: f.Namespace, Handler: f.Handler, TaskUUID: f.TaskUUID, TemplateName: f.Template,
		FailedAfter: f.FailedAfter, FailedBefore: f.FailedBefore,
	}
}

// RedriveRequest is the body of redriveDeadLetters: step_uuids or filter.
type RedriveRequest struct {
	StepUUIDs          []uuid.UUID       `json:"step_uuids,omitempty" maxItems:"1000" doc:"the dead letters to redrive: all exist and are in state error, or nothing changes (404 or 409)"`
	Filter             *DeadLetterFilter `json:"filter,omitempty" doc:"instead of step_uuids: redrive the dead letters matching it, at most limit of them (most recently failed first); an empty filter matches every dead letter"`
	Limit              int               `json:"limit,omitempty" minimum:"1" maximum:"10000" default:"1000" doc:"with filter: the most to redrive in this call (more reports whether others matched)"`
	AdditionalAttempts int               `json:"additional_attempts,omitempty" minimum:"1" maximum:"100" default:"1" doc:"attempts each step gets at least: max_attempts becomes max(max_attempts, attempts + additional_attempts)"`
	Reason             string            `json:"reason,omitempty" maxLength:"1024" doc:"recorded in the audit trail"`
}

// RedriveResult is the answer of redriveDeadLetters.
type RedriveResult struct {
	Redriven     int         `json:"redriven" doc:"steps moved back to enqueued"`
	StepUUIDs    []uuid.UUID `json:"step_uuids" nullable:"false"`
	TasksResumed []uuid.UUID `json:"tasks_resumed" nullable:"false" doc:"tasks that left blocked_by_failures (no other dead letter)"`
	More         bool        `json:"more" doc:"with filter: more dead letters matched than limit; call again"`
}

type listDeadLettersInput struct {
	Namespace    string    `query:"namespace" maxLength:"56"`
	Handler      string    `query:"handler" maxLength:"255" doc:"only steps of this callable"`
	TaskUUID     uuid.UUID `query:"task_uuid" format:"uuid"`
	Template     string    `query:"template" maxLength:"128" doc:"only steps of tasks of this template name"`
	FailedAfter  time.Time `query:"failed_after" doc:"failed at or after (RFC 3339)"`
	FailedBefore time.Time `query:"failed_before" doc:"failed before (RFC 3339)"`
	Cursor       string    `query:"cursor" maxLength:"64" doc:"next_cursor of the previous page"`
	Limit        int       `query:"limit" minimum:"1" maximum:"500" default:"50" doc:"page size"`
}

type listDeadLettersOutput struct {
	Body DeadLetterList
}

type redriveInput struct {
	Body RedriveRequest
}

type redriveOutput struct {
	Body RedriveResult
}

func (s *Server) registerDeadLetters() {
	tags := []string{"dead-letters"}
	huma.Register(s.api, huma.Operation{
		OperationID: "listDeadLetters",
		Method:      http.MethodGet,
		Path:        "/v1/dead-letters",
		Summary:     "List dead letters",
		Description: "Steps in state error (failed permanently, or out of attempts), most recently failed first, with their last error; cursor pagination.",
		Tags:        tags,
		Errors:      []int{http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.listDeadLetters)
	huma.Register(s.api, huma.Operation{
		OperationID: "redriveDeadLetters",
		Method:      http.MethodPost,
		Path:        "/v1/dead-letters/redrive",
		Summary:     "Redrive dead letters",
		Description: "Moves dead letters, named by step_uuids or selected by filter, back to enqueued (ready at once) in one " +
			"transaction and wakes the runners of their namespaces. Attempts keep counting; each step gets at least " +
			"additional_attempts more. Tasks with no other dead letter go back from blocked_by_failures to steps_in_process.",
		Tags:         tags,
		MaxBodyBytes: s.cfg.MaxRequestBytes,
		Errors:       []int{http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.redriveDeadLetters)
}

func (s *Server) listDeadLetters(ctx context.Context, in *listDeadLettersInput) (*listDeadLettersOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	f := DeadLetterFilter{
		Namespace: in.Namespace, Handler: in.Handler, TaskUUID: in.TaskUUID, Template: in.Template,
		FailedAfter: in.FailedAfter, FailedBefore: in.FailedBefore,
	}
	var after *runner.DeadLetterCursor
	if in.Cursor != "" {
		var err error
		if after, err = decodeDeadLetterCursor(in.Cursor); err != nil {
			return nil, err
		}
	}
	rows, more, err := s.cfg.Client.ListDeadLetters(ctx, f.filter(), after, in.Limit)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &listDeadLettersOutput{Body: DeadLetterList{Items: make([]DeadLetter, 0, len(rows))}}
	for _, r := range rows {
		out.Body.Items = append(out.Body.Items, DeadLetter{Step: stepFromRow(r.Step), TemplateName: r.TemplateName, TemplateVersion: r.TemplateVersion})
		hideStepExcerpts(ctx, &out.Body.Items[len(out.Body.Items)-1].Step)
	}
	if more {
		last := rows[len(rows)-1]
		out.Body.NextCursor = encodeDeadLetterCursor(runner.DeadLetterCursor{FailedAt: last.UpdatedAt, StepUUID: last.StepUUID})
	}
	return out, nil
}

func (s *Server) redriveDeadLetters(ctx context.Context, in *redriveInput) (*redriveOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	b := in.Body
	switch {
	case len(b.StepUUIDs) > 0 && b.Filter != nil:
		return nil, invalid("step_uuids and filter exclude each other",
			fieldError("body.filter", "give either step_uuids or filter, not both"))
	case len(b.StepUUIDs) == 0 && b.Filter == nil:
		return nil, invalid("nothing to redrive",
			fieldError("body", "give step_uuids, or a filter (an empty filter {} selects every dead letter)"))
	}
	req := runner.RedriveRequest{
		StepUUIDs: b.StepUUIDs, Limit: b.Limit, AdditionalAttempts: max(b.AdditionalAttempts, 1), Manual: s.manual(ctx, b.Reason),
	}
	if b.Filter != nil {
		req.Filter = b.Filter.filter()
	}
	res, err := s.cfg.Client.RedriveSteps(ctx, req)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &redriveOutput{Body: RedriveResult{
		Redriven: len(res.Steps), StepUUIDs: res.Steps, TasksResumed: res.TasksResumed, More: res.More,
	}}
	if out.Body.StepUUIDs == nil {
		out.Body.StepUUIDs = []uuid.UUID{}
	}
	if out.Body.TasksResumed == nil {
		out.Body.TasksResumed = []uuid.UUID{}
	}
	return out, nil
}
