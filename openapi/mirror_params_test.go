package openapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	adminv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/admin/v1"
	"github.com/tasker-runner/tasker-runner/contracts/gen/tasker/admin/v1/adminv1connect"
)

// The mirror checks path and query parameters by the REST operations' own
// schemas: a bad parameter is refused with the same message, at the same
// field (without REST's "path."/"query." prefix).
func TestMirrorParamsFollowREST(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{})
	base, _ := serveMirror(t, e.pool, nil)
	client := adminv1connect.NewAdminServiceClient(h2cClient(t), base)
	ctx := context.Background()
	long := strings.Repeat("n", 57)
	for _, tc := range []struct {
		name, rest string
		mirror     func() error
	}{
		{"unknown state", "/v1/tasks?state=bogus", func() error {
			_, err := client.ListTasks(ctx, connect.NewRequest(&adminv1.ListTasksRequest{State: []string{"bogus"}}))
			return err
		}},
		{"limit too large", "/v1/tasks?limit=501", func() error {
			_, err := client.ListTasks(ctx, connect.NewRequest(&adminv1.ListTasksRequest{Limit: 501}))
			return err
		}},
		{"bad correlation id", "/v1/tasks?correlation_id=nope", func() error {
			_, err := client.ListTasks(ctx, connect.NewRequest(&adminv1.ListTasksRequest{CorrelationId: "nope"}))
			return err
		}},
		{"bad task uuid", "/v1/tasks/nope", func() error {
			_, err := client.GetTask(ctx, connect.NewRequest(&adminv1.GetTaskRequest{TaskUuid: "nope"}))
			return err
		}},
		{"unknown include", "/v1/steps/0190a5a0-0000-7000-8000-000000000000?include=everything", func() error {
			_, err := client.GetStep(ctx, connect.NewRequest(&adminv1.GetStepRequest{StepUuid: "0190a5a0-0000-7000-8000-000000000000", Include: []string{"everything"}}))
			return err
		}},
		{"namespace too long", "/v1/templates?namespace=" + long, func() error {
			_, err := client.ListTemplates(ctx, connect.NewRequest(&adminv1.ListTemplatesRequest{Namespace: long}))
			return err
		}},
		{"handler namespace pattern", "/v1/handlers/pay?namespace=Bad!", func() error {
			_, err := client.GetHandler(ctx, connect.NewRequest(&adminv1.GetHandlerRequest{Pattern: "pay", Namespace: "Bad!"}))
			return err
		}},
	} {
		code, _, body := e.call(http.MethodGet, tc.rest, nil)
		var problem struct {
			Errors []struct{ Location, Message string }
		}
		if err := json.Unmarshal(body, &problem); err != nil || code != http.StatusUnprocessableEntity || len(problem.Errors) != 1 {
			t.Errorf("%s: REST %s = %d %s", tc.name, tc.rest, code, body)
			continue
		}
		want := problem.Errors[0]
		field, msg := violation(tc.mirror())
		wantField := want.Location[strings.Index(want.Location, ".")+1:]
		if field != wantField || msg != want.Message {
			t.Errorf("%s: mirror %s: %q, REST %s: %q", tc.name, field, msg, want.Location, want.Message)
		}
	}
}

// violation returns the first field violation of a Connect error.
func violation(err error) (field, description string) {
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument {
		return "", "not InvalidArgument: " + connect.CodeOf(err).String()
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if br, ok := v.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
				f := br.GetFieldViolations()[0]
				return f.GetField(), f.GetDescription()
			}
		}
	}
	return "", "no field violation"
}
