package openapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
)

// StepDetail is a step with, when asked for, its audit trail.
type StepDetail struct {
	Step
	Transitions []Transition `json:"transitions,omitempty" doc:"with include=transitions: every state change of the step, oldest first"`
}

// RetryRequest is the optional body of retryStep.
type RetryRequest struct {
	Reason             string `json:"reason,omitempty" maxLength:"1024" doc:"recorded in the audit trail"`
	AdditionalAttempts int    `json:"additional_attempts,omitempty" minimum:"1" maximum:"100" default:"1" doc:"attempts the step gets at least: max_attempts becomes max(max_attempts, attempts + additional_attempts)"`
}

// ResolveRequest is the optional body of resolveStep.
type ResolveRequest struct {
	Reason string          `json:"reason,omitempty" maxLength:"1024" doc:"recorded in the audit trail and the step's result metadata"`
	Result json.RawMessage `json:"result,omitempty" doc:"the step's result as its handler would have returned it (any JSON); dependent steps receive it as this step's dependency result"`
}

type getStepInput struct {
	StepUUID uuid.UUID `path:"step_uuid" format:"uuid"`
	Include  []string  `query:"include" enum:"transitions" doc:"transitions: add the audit trail"`
}

type retryStepInput struct {
	StepUUID uuid.UUID `path:"step_uuid" format:"uuid"`
	Body     *RetryRequest
}

type resolveStepInput struct {
	StepUUID uuid.UUID `path:"step_uuid" format:"uuid"`
	Body     *ResolveRequest
}

type stepOutput struct {
	Body StepDetail
}

func (s *Server) registerSteps() {
	tags := []string{"steps"}
	huma.Register(s.api, huma.Operation{
		OperationID: "getStep",
		Method:      http.MethodGet,
		Path:        "/v1/steps/{step_uuid}",
		Summary:     "Get a step",
		Tags:        tags,
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.getStep)
	huma.Register(s.api, huma.Operation{
		OperationID: "retryStep",
		Method:      http.MethodPost,
		Path:        "/v1/steps/{step_uuid}/retry",
		Summary:     "Retry a failed step",
		Description: "Moves a step in state error back to enqueued, ready at once. Its attempts keep counting (the audit trail and " +
			"the Tasker-Attempt header stay truthful) and it gets at least additional_attempts more (default 1): max_attempts " +
			"becomes max(max_attempts, attempts + additional_attempts). Its task leaves blocked_by_failures when no other step " +
			"of it is in error. A step in any other state answers 409.",
		Tags:         tags,
		MaxBodyBytes: s.cfg.MaxRequestBytes,
		Errors:       []int{http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.retryStep)
	huma.Register(s.api, huma.Operation{
		OperationID: "resolveStep",
		Method:      http.MethodPost,
		Path:        "/v1/steps/{step_uuid}/resolve",
		Summary:     "Resolve a step by hand",
		Description: "Marks a step that has not finished resolved_manually with an optional result, and advances the workflow as " +
			"a completion would, in one transaction: children whose parents are all done become ready, the task counts the " +
			"step as done (completing when it was the last) and leaves blocked_by_failures when no other step is in error. A " +
			"runner still working on the step loses its lease and its result is discarded. Dynamic steps (decision and batch " +
			"outcomes in the result) are not created. A finished step, or a step of a finished task, answers 409.",
		Tags:         tags,
		MaxBodyBytes: s.cfg.MaxRequestBytes,
		Errors:       []int{http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.resolveStep)
}

func (s *Server) loadStep(ctx context.Context, id uuid.UUID, transitions bool) (*stepOutput, error) {
	st, err := s.cfg.Client.GetStep(ctx, id)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &stepOutput{Body: StepDetail{Step: stepFromRow(st)}}
	hideStepExcerpts(ctx, &out.Body.Step)
	if transitions {
		rows, err := s.cfg.Client.ListStepTransitions(ctx, id)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		out.Body.Transitions = transitionsFromRows(rows)
		hideTransitionExcerpts(ctx, out.Body.Transitions)
	}
	return out, nil
}

func (s *Server) getStep(ctx context.Context, in *getStepInput) (*stepOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	return s.loadStep(ctx, in.StepUUID, slices.Contains(in.Include, "transitions"))
}

func (s *Server) retryStep(ctx context.Context, in *retryStepInput) (*stepOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	req := runner.RedriveRequest{StepUUIDs: []uuid.UUID{in.StepUUID}, AdditionalAttempts: 1, Action: "retry", Manual: s.manual(ctx, "")}
	if in.Body != nil {
		req.Reason = in.Body.Reason
		req.AdditionalAttempts = max(in.Body.AdditionalAttempts, 1)
	}
	if _, err := s.cfg.Client.RedriveSteps(ctx, req); err != nil {
		return nil, s.fail(ctx, err)
	}
	return s.loadStep(ctx, in.StepUUID, false)
}

func (s *Server) resolveStep(ctx context.Context, in *resolveStepInput) (*stepOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	m := s.manual(ctx, "")
	res := contracts.StepResult{Success: true, Status: contracts.StatusCompleted}
	meta := map[string]any{"resolved_manually": true}
	if in.Body != nil {
		m.Reason = in.Body.Reason
		if len(in.Body.Result) > 0 && string(in.Body.Result) != "null" {
			res.Result = in.Body.Result
		}
		if in.Body.Reason != "" {
			meta["reason"] = in.Body.Reason
		}
	}
	var err error
	if res.Metadata, err = json.Marshal(meta); err != nil {
		return nil, s.fail(ctx, err)
	}
	doc, err := json.Marshal(res)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if _, err := s.cfg.Client.ResolveStep(ctx, in.StepUUID, doc, m); err != nil {
		return nil, s.fail(ctx, err)
	}
	return s.loadStep(ctx, in.StepUUID, false)
}
