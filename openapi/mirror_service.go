package openapi

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tasker-runner/tasker-runner/contracts"
	adminv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/admin/v1"
)

// mirrorService implements AdminService with the REST handler functions of
// s. Each method checks its parameters as the REST operation's schema
// does, calls the REST handler and converts its answer.
type mirrorService struct{ s *Server }

// handlerNamespace is the namespace parameter pattern of the handler
// endpoint operations.
var handlerNamespace = regexp.MustCompile(`^(` + strings.TrimSuffix(strings.TrimPrefix(contracts.NamespacePattern.String(), "^"), "$") + `)?$`)

var (
	taskStates = stateNames(contracts.TaskStates())
	includes   = []string{"transitions"}
)

// stateNames returns states as the strings of an enum.
func stateNames[S ~string](states []S) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out
}

func checkHandlerKey(pattern, namespace string) error {
	if err := checkParams(
		param{location: "path.pattern", values: []string{pattern}, minLength: 1, maxLength: contracts.MaxPatternLen},
		param{location: "query.namespace", values: []string{namespace}, maxLength: contracts.MaxNamespaceLen},
	); err != nil {
		return err
	}
	if !handlerNamespace.MatchString(namespace) {
		return invalid("validation failed", fieldError("query.namespace", "expected string to match pattern "+handlerNamespace.String()))
	}
	return nil
}

// asTime is the time of ts, or the zero time (no filter) when it is unset.
func asTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

func (m *mirrorService) GetStatus(ctx context.Context, _ *connect.Request[adminv1.GetStatusRequest]) (*connect.Response[adminv1.GetStatusResponse], error) {
	out, err := m.s.getStatus(ctx, nil)
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.GetStatusResponse](m.s, ctx, out.Body)
}

func (m *mirrorService) ListHandlers(ctx context.Context, req *connect.Request[adminv1.ListHandlersRequest]) (*connect.Response[adminv1.ListHandlersResponse], error) {
	if err := checkParams(param{location: "query.namespace", values: []string{req.Msg.Namespace}, maxLength: contracts.MaxNamespaceLen}); err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.listHandlers(ctx, &listHandlersInput{Namespace: req.Msg.Namespace})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.ListHandlersResponse](m.s, ctx, out.Body)
}

func (m *mirrorService) GetHandler(ctx context.Context, req *connect.Request[adminv1.GetHandlerRequest]) (*connect.Response[adminv1.GetHandlerResponse], error) {
	if err := checkHandlerKey(req.Msg.Pattern, req.Msg.Namespace); err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.getHandler(ctx, &handlerKey{Pattern: req.Msg.Pattern, Namespace: req.Msg.Namespace})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.GetHandlerResponse](m.s, ctx, map[string]any{"handler": out.Body})
}

func (m *mirrorService) PutHandler(ctx context.Context, req *connect.Request[adminv1.PutHandlerRequest]) (*connect.Response[adminv1.PutHandlerResponse], error) {
	if err := m.s.limitBody(req.Msg); err != nil {
		return nil, connectError(err, "endpoint")
	}
	if err := checkHandlerKey(req.Msg.Pattern, req.Msg.Namespace); err != nil {
		return nil, connectError(err, "endpoint")
	}
	endpoint := req.Msg.Endpoint
	if endpoint == nil {
		endpoint = &adminv1.HandlerEndpointInput{}
	}
	body, err := fromProto[HandlerEndpointInput](m.s, endpoint)
	if err != nil {
		return nil, connectError(err, "endpoint")
	}
	out, err := m.s.putHandler(ctx, &putHandlerInput{Pattern: req.Msg.Pattern, Namespace: req.Msg.Namespace, Body: body})
	if err != nil {
		return nil, connectError(err, "endpoint")
	}
	return respond[adminv1.PutHandlerResponse](m.s, ctx, map[string]any{"handler": out.Body, "created": out.Status == 201})
}

func (m *mirrorService) DeleteHandler(ctx context.Context, req *connect.Request[adminv1.DeleteHandlerRequest]) (*connect.Response[adminv1.DeleteHandlerResponse], error) {
	if err := checkHandlerKey(req.Msg.Pattern, req.Msg.Namespace); err != nil {
		return nil, connectError(err, "")
	}
	if _, err := m.s.deleteHandler(ctx, &handlerKey{Pattern: req.Msg.Pattern, Namespace: req.Msg.Namespace}); err != nil {
		return nil, connectError(err, "")
	}
	return connect.NewResponse(&adminv1.DeleteHandlerResponse{}), nil
}

func (m *mirrorService) ListTemplates(ctx context.Context, req *connect.Request[adminv1.ListTemplatesRequest]) (*connect.Response[adminv1.ListTemplatesResponse], error) {
	r := req.Msg
	limit, err := pageLimit(r.Limit)
	if err == nil {
		err = checkParams(
			param{location: "query.namespace", values: []string{r.Namespace}, maxLength: contracts.MaxNamespaceLen},
			param{location: "query.name", values: []string{r.Name}, maxLength: contracts.MaxTemplateNameLen},
			param{location: "query.cursor", values: []string{r.Cursor}, maxLength: 64},
		)
	}
	if err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.listTemplates(ctx, &listTemplatesInput{Namespace: r.Namespace, Name: r.Name, Cursor: r.Cursor, Limit: limit})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.ListTemplatesResponse](m.s, ctx, out.Body)
}

func (m *mirrorService) GetTemplate(ctx context.Context, req *connect.Request[adminv1.GetTemplateRequest]) (*connect.Response[adminv1.GetTemplateResponse], error) {
	r := req.Msg
	if err := checkParams(
		param{location: "path.namespace", values: []string{r.Namespace}, minLength: 1, maxLength: contracts.MaxNamespaceLen},
		param{location: "path.name", values: []string{r.Name}, minLength: 1, maxLength: contracts.MaxTemplateNameLen},
		param{location: "query.version", values: []string{r.Version}, maxLength: contracts.MaxVersionLen},
	); err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.getTemplate(ctx, &getTemplateInput{Namespace: r.Namespace, Name: r.Name, Version: r.Version})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.GetTemplateResponse](m.s, ctx, map[string]any{"template": out.Body})
}

func (m *mirrorService) DeleteTemplate(ctx context.Context, req *connect.Request[adminv1.DeleteTemplateRequest]) (*connect.Response[adminv1.DeleteTemplateResponse], error) {
	r := req.Msg
	if err := checkParams(
		param{location: "path.namespace", values: []string{r.Namespace}, minLength: 1, maxLength: contracts.MaxNamespaceLen},
		param{location: "path.name", values: []string{r.Name}, minLength: 1, maxLength: contracts.MaxTemplateNameLen},
		param{location: "path.version", values: []string{r.Version}, minLength: 1, maxLength: contracts.MaxVersionLen},
	); err != nil {
		return nil, connectError(err, "")
	}
	if _, err := m.s.deleteTemplate(ctx, &deleteTemplateInput{Namespace: r.Namespace, Name: r.Name, Version: r.Version}); err != nil {
		return nil, connectError(err, "")
	}
	return connect.NewResponse(&adminv1.DeleteTemplateResponse{}), nil
}

func (m *mirrorService) RegisterTemplate(ctx context.Context, req *connect.Request[adminv1.RegisterTemplateRequest]) (*connect.Response[adminv1.RegisterTemplateResponse], error) {
	body, err := fromProto[TemplateDocument](m.s, req.Msg)
	if err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.registerTemplate(ctx, &templateBodyInput{Body: body})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.RegisterTemplateResponse](m.s, ctx, map[string]any{"template": out.Body.Template, "created": out.Status == 201, "warnings": out.Body.Warnings})
}

func (m *mirrorService) ValidateTemplate(ctx context.Context, req *connect.Request[adminv1.ValidateTemplateRequest]) (*connect.Response[adminv1.ValidateTemplateResponse], error) {
	body, err := fromProto[TemplateDocument](m.s, req.Msg)
	if err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.validateTemplate(ctx, &templateBodyInput{Body: body})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.ValidateTemplateResponse](m.s, ctx, out.Body)
}

func (m *mirrorService) SubmitTask(ctx context.Context, req *connect.Request[adminv1.SubmitTaskRequest]) (*connect.Response[adminv1.SubmitTaskResponse], error) {
	if err := m.s.limitBody(req.Msg); err != nil {
		return nil, connectError(err, "")
	}
	body, err := fromProto[SubmitTaskRequest](m.s, req.Msg)
	if err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.submitTask(ctx, &submitTaskInput{Body: body})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.SubmitTaskResponse](m.s, ctx, map[string]any{"task": out.Body, "created": out.Status == 201})
}

func (m *mirrorService) ListTasks(ctx context.Context, req *connect.Request[adminv1.ListTasksRequest]) (*connect.Response[adminv1.ListTasksResponse], error) {
	r := req.Msg
	var correlationID uuid.UUID
	limit, err := pageLimit(r.Limit)
	if err == nil && r.CorrelationId != "" {
		correlationID, err = parseUUID("query.correlation_id", r.CorrelationId)
	}
	if err == nil {
		err = checkParams(
			param{location: "query.state", values: r.State, enum: taskStates},
			param{location: "query.namespace", values: []string{r.Namespace}, maxLength: contracts.MaxNamespaceLen},
			param{location: "query.template", values: []string{r.Template}, maxLength: contracts.MaxTemplateNameLen},
			param{location: "query.cursor", values: []string{r.Cursor}, maxLength: 64},
		)
	}
	if err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.listTasks(ctx, &listTasksInput{
		State: r.State, Namespace: r.Namespace, Template: r.Template, CorrelationID: correlationID,
		CreatedAfter: asTime(r.CreatedAfter), CreatedBefore: asTime(r.CreatedBefore),
		Cursor: r.Cursor, Limit: limit,
	})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.ListTasksResponse](m.s, ctx, out.Body)
}

func (m *mirrorService) GetTask(ctx context.Context, req *connect.Request[adminv1.GetTaskRequest]) (*connect.Response[adminv1.GetTaskResponse], error) {
	id, err := parseUUID("path.task_uuid", req.Msg.TaskUuid)
	if err == nil {
		err = checkParams(param{location: "query.include", values: req.Msg.Include, enum: includes})
	}
	if err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.getTask(ctx, &getTaskInput{TaskUUID: id, Include: req.Msg.Include})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.GetTaskResponse](m.s, ctx, map[string]any{"task": out.Body})
}

// actionBody builds and validates the body of a manual change.
func actionBody[T any](s *Server, body any) (*T, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("openapi: mirror: %w", err)
	}
	out, err := bodyFromJSON[T](s, b)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func (m *mirrorService) CancelTask(ctx context.Context, req *connect.Request[adminv1.CancelTaskRequest]) (*connect.Response[adminv1.CancelTaskResponse], error) {
	if err := m.s.limitBody(req.Msg); err != nil {
		return nil, connectError(err, "")
	}
	id, err := parseUUID("path.task_uuid", req.Msg.TaskUuid)
	if err != nil {
		return nil, connectError(err, "")
	}
	body, err := actionBody[ActionRequest](m.s, ActionRequest{Reason: req.Msg.Reason})
	if err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.cancelTask(ctx, &cancelTaskInput{TaskUUID: id, Body: body})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.CancelTaskResponse](m.s, ctx, map[string]any{"task": out.Body})
}

func (m *mirrorService) GetStep(ctx context.Context, req *connect.Request[adminv1.GetStepRequest]) (*connect.Response[adminv1.GetStepResponse], error) {
	id, err := parseUUID("path.step_uuid", req.Msg.StepUuid)
	if err == nil {
		err = checkParams(param{location: "query.include", values: req.Msg.Include, enum: includes})
	}
	if err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.getStep(ctx, &getStepInput{StepUUID: id, Include: req.Msg.Include})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.GetStepResponse](m.s, ctx, map[string]any{"step": out.Body})
}

func (m *mirrorService) RetryStep(ctx context.Context, req *connect.Request[adminv1.RetryStepRequest]) (*connect.Response[adminv1.RetryStepResponse], error) {
	if err := m.s.limitBody(req.Msg); err != nil {
		return nil, connectError(err, "")
	}
	id, err := parseUUID("path.step_uuid", req.Msg.StepUuid)
	if err != nil {
		return nil, connectError(err, "")
	}
	body, err := actionBody[RetryRequest](m.s, RetryRequest{Reason: req.Msg.Reason, AdditionalAttempts: int(req.Msg.AdditionalAttempts)})
	if err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.retryStep(ctx, &retryStepInput{StepUUID: id, Body: body})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.RetryStepResponse](m.s, ctx, map[string]any{"step": out.Body})
}

func (m *mirrorService) ResolveStep(ctx context.Context, req *connect.Request[adminv1.ResolveStepRequest]) (*connect.Response[adminv1.ResolveStepResponse], error) {
	if err := m.s.limitBody(req.Msg); err != nil {
		return nil, connectError(err, "")
	}
	id, err := parseUUID("path.step_uuid", req.Msg.StepUuid)
	if err != nil {
		return nil, connectError(err, "")
	}
	rr := ResolveRequest{Reason: req.Msg.Reason}
	if req.Msg.Result != nil {
		if rr.Result, err = protojson.Marshal(req.Msg.Result); err != nil {
			return nil, connectError(invalid("validation failed", fieldError("body.result", err.Error())), "")
		}
	}
	body, err := actionBody[ResolveRequest](m.s, rr)
	if err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.resolveStep(ctx, &resolveStepInput{StepUUID: id, Body: body})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.ResolveStepResponse](m.s, ctx, map[string]any{"step": out.Body})
}

func (m *mirrorService) ListDeadLetters(ctx context.Context, req *connect.Request[adminv1.ListDeadLettersRequest]) (*connect.Response[adminv1.ListDeadLettersResponse], error) {
	r := req.Msg
	in := &listDeadLettersInput{
		Namespace: r.Namespace, Handler: r.Handler, Template: r.Template, Cursor: r.Cursor,
		FailedAfter: asTime(r.FailedAfter), FailedBefore: asTime(r.FailedBefore),
	}
	var err error
	if r.TaskUuid != "" {
		in.TaskUUID, err = parseUUID("query.task_uuid", r.TaskUuid)
	}
	if err == nil {
		in.Limit, err = pageLimit(r.Limit)
	}
	if err == nil {
		err = checkParams(
			param{location: "query.namespace", values: []string{r.Namespace}, maxLength: contracts.MaxNamespaceLen},
			param{location: "query.handler", values: []string{r.Handler}, maxLength: contracts.MaxPatternLen},
			param{location: "query.template", values: []string{r.Template}, maxLength: contracts.MaxTemplateNameLen},
			param{location: "query.cursor", values: []string{r.Cursor}, maxLength: 64},
		)
	}
	if err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.listDeadLetters(ctx, in)
	if err != nil {
		return nil, connectError(err, "")
	}
	items := make([]map[string]any, 0, len(out.Body.Items))
	for _, d := range out.Body.Items {
		items = append(items, map[string]any{"step": d.Step, "template_name": d.TemplateName, "template_version": d.TemplateVersion})
	}
	body := map[string]any{"items": items}
	if out.Body.NextCursor != "" {
		body["next_cursor"] = out.Body.NextCursor
	}
	return respond[adminv1.ListDeadLettersResponse](m.s, ctx, body)
}

func (m *mirrorService) RedriveDeadLetters(ctx context.Context, req *connect.Request[adminv1.RedriveDeadLettersRequest]) (*connect.Response[adminv1.RedriveDeadLettersResponse], error) {
	if err := m.s.limitBody(req.Msg); err != nil {
		return nil, connectError(err, "")
	}
	body, err := fromProto[RedriveRequest](m.s, req.Msg)
	if err != nil {
		return nil, connectError(err, "")
	}
	if body.Limit == 0 {
		body.Limit = redriveLimitDefault
	}
	out, err := m.s.redriveDeadLetters(ctx, &redriveInput{Body: body})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.RedriveDeadLettersResponse](m.s, ctx, out.Body)
}

// redriveLimitDefault is the default of RedriveRequest.limit (its default
// tag, applied by huma over REST).
const redriveLimitDefault = 1000
