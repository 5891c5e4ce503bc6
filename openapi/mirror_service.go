package openapi

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/admin/v1"
)

// mirrorService implements AdminService with the REST handler functions of
// s. Each method checks its parameters by the REST operation's schemas
// ([Server.checkParams]), calls the REST handler and converts its answer.
type mirrorService struct{ s *Server }

// pageSizeDefault is the default of the limit query parameters.
const pageSizeDefault = 50

// pageSize is a page size already checked by [Server.checkParams]: 0 (proto3's
// unset) is the default.
func pageSize(limit int32) int {
	if limit == 0 {
		return pageSizeDefault
	}
	return int(limit)
}

// parsedUUID is a uuid parameter already checked by [Server.checkParams];
// "" is uuid.Nil.
func parsedUUID(v string) uuid.UUID {
	id, _ := uuid.Parse(v)
	return id
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
	if err := m.s.checkParams("listHandlers", rawParams{"query.namespace": opt(req.Msg.Namespace)}); err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.listHandlers(ctx, &listHandlersInput{Namespace: req.Msg.Namespace})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.ListHandlersResponse](m.s, ctx, out.Body)
}

func (m *mirrorService) GetHandler(ctx context.Context, req *connect.Request[adminv1.GetHandlerRequest]) (*connect.Response[adminv1.GetHandlerResponse], error) {
	if err := m.s.checkParams("getHandler", handlerParams(req.Msg.Pattern, req.Msg.Namespace)); err != nil {
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
	if err := m.s.checkParams("putHandler", handlerParams(req.Msg.Pattern, req.Msg.Namespace)); err != nil {
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

// handlerParams are the parameters of a handler endpoint's operations.
func handlerParams(pattern, namespace string) rawParams {
	return rawParams{"path.pattern": one(pattern), "query.namespace": opt(namespace)}
}

func (m *mirrorService) DeleteHandler(ctx context.Context, req *connect.Request[adminv1.DeleteHandlerRequest]) (*connect.Response[adminv1.DeleteHandlerResponse], error) {
	if err := m.s.checkParams("deleteHandler", handlerParams(req.Msg.Pattern, req.Msg.Namespace)); err != nil {
		return nil, connectError(err, "")
	}
	if _, err := m.s.deleteHandler(ctx, &handlerKey{Pattern: req.Msg.Pattern, Namespace: req.Msg.Namespace}); err != nil {
		return nil, connectError(err, "")
	}
	return connect.NewResponse(&adminv1.DeleteHandlerResponse{}), nil
}

func (m *mirrorService) ListTemplates(ctx context.Context, req *connect.Request[adminv1.ListTemplatesRequest]) (*connect.Response[adminv1.ListTemplatesResponse], error) {
	r := req.Msg
	if err := m.s.checkParams("listTemplates", rawParams{
		"query.namespace": opt(r.Namespace), "query.name": opt(r.Name), "query.cursor": opt(r.Cursor), "query.limit": optInt(r.Limit),
	}); err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.listTemplates(ctx, &listTemplatesInput{Namespace: r.Namespace, Name: r.Name, Cursor: r.Cursor, Limit: pageSize(r.Limit)})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.ListTemplatesResponse](m.s, ctx, out.Body)
}

func (m *mirrorService) GetTemplate(ctx context.Context, req *connect.Request[adminv1.GetTemplateRequest]) (*connect.Response[adminv1.GetTemplateResponse], error) {
	r := req.Msg
	if err := m.s.checkParams("getTemplate", rawParams{
		"path.namespace": one(r.Namespace), "path.name": one(r.Name), "query.version": opt(r.Version),
	}); err != nil {
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
	if err := m.s.checkParams("deleteTemplate", rawParams{
		"path.namespace": one(r.Namespace), "path.name": one(r.Name), "path.version": one(r.Version),
	}); err != nil {
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
	if err := m.s.checkParams("listTasks", rawParams{
		"query.state": r.State, "query.namespace": opt(r.Namespace), "query.template": opt(r.Template),
		"query.correlation_id": opt(r.CorrelationId), "query.cursor": opt(r.Cursor), "query.limit": optInt(r.Limit),
	}); err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.listTasks(ctx, &listTasksInput{
		State: r.State, Namespace: r.Namespace, Template: r.Template, CorrelationID: parsedUUID(r.CorrelationId),
		CreatedAfter: asTime(r.CreatedAfter), CreatedBefore: asTime(r.CreatedBefore),
		Cursor: r.Cursor, Limit: pageSize(r.Limit),
	})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.ListTasksResponse](m.s, ctx, out.Body)
}

func (m *mirrorService) GetTask(ctx context.Context, req *connect.Request[adminv1.GetTaskRequest]) (*connect.Response[adminv1.GetTaskResponse], error) {
	if err := m.s.checkParams("getTask", rawParams{"path.task_uuid": one(req.Msg.TaskUuid), "query.include": req.Msg.Include}); err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.getTask(ctx, &getTaskInput{TaskUUID: parsedUUID(req.Msg.TaskUuid), Include: req.Msg.Include})
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
	if err := m.s.checkParams("cancelTask", rawParams{"path.task_uuid": one(req.Msg.TaskUuid)}); err != nil {
		return nil, connectError(err, "")
	}
	id := parsedUUID(req.Msg.TaskUuid)
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
	if err := m.s.checkParams("getStep", rawParams{"path.step_uuid": one(req.Msg.StepUuid), "query.include": req.Msg.Include}); err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.getStep(ctx, &getStepInput{StepUUID: parsedUUID(req.Msg.StepUuid), Include: req.Msg.Include})
	if err != nil {
		return nil, connectError(err, "")
	}
	return respond[adminv1.GetStepResponse](m.s, ctx, map[string]any{"step": out.Body})
}

func (m *mirrorService) RetryStep(ctx context.Context, req *connect.Request[adminv1.RetryStepRequest]) (*connect.Response[adminv1.RetryStepResponse], error) {
	if err := m.s.limitBody(req.Msg); err != nil {
		return nil, connectError(err, "")
	}
	if err := m.s.checkParams("retryStep", rawParams{"path.step_uuid": one(req.Msg.StepUuid)}); err != nil {
		return nil, connectError(err, "")
	}
	id := parsedUUID(req.Msg.StepUuid)
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
	if err := m.s.checkParams("resolveStep", rawParams{"path.step_uuid": one(req.Msg.StepUuid)}); err != nil {
		return nil, connectError(err, "")
	}
	id := parsedUUID(req.Msg.StepUuid)
	rr := ResolveRequest{Reason: req.Msg.Reason}
	if req.Msg.Result != nil {
		var err error
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
	if err := m.s.checkParams("listDeadLetters", rawParams{
		"query.namespace": opt(r.Namespace), "query.handler": opt(r.Handler), "query.template": opt(r.Template),
		"query.task_uuid": opt(r.TaskUuid), "query.cursor": opt(r.Cursor), "query.limit": optInt(r.Limit),
	}); err != nil {
		return nil, connectError(err, "")
	}
	out, err := m.s.listDeadLetters(ctx, &listDeadLettersInput{
		Namespace: r.Namespace, Handler: r.Handler, Template: r.Template, Cursor: r.Cursor, TaskUUID: parsedUUID(r.TaskUuid),
		FailedAfter: asTime(r.FailedAfter), FailedBefore: asTime(r.FailedBefore), Limit: pageSize(r.Limit),
	})
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
