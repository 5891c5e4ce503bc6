package openapi_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/openapi"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

const orderTemplate = `
name: order
namespace_name: shop
version: 1.0.0
description: validate, charge and ship an order
input_schema:
  type: object
  required: [order_id]
  properties:
    order_id: {type: integer}
    customer:
      type: object
      properties:
        email: {type: string, minLength: 3}
steps:
  - name: validate
    handler: {callable: echo}
  - name: charge
    dependencies: [validate]
    handler: {callable: flaky}
  - name: ship
    dependencies: [charge]
    handler: {callable: remote.ship}
`

// A template with several problems, each at its own path.
const brokenTemplate = `
name: broken
namespace_name: shop
version: 1.0.0
steps:
  - name: a
    handler: {callable: x}
    dependencies: [ghost]
  - name: a
    handler: {callable: y}
  - name: c
    handler: {callable: z}
    retry: {max_attempts: -1}
    dependencies: [d]
  - name: d
    handler: {callable: z}
    dependencies: [c]
`

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Bad requests get problem details naming what is wrong, and write nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{maxRequestBytes: 8 << 10})
	var tpl struct {
		TemplateID int64  `json:"template_id"`
		Name       string `json:"name"`
		Steps      int    `json:"steps"`
	}
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": orderTemplate}, http.StatusCreated, &tpl)
	if tpl.Name != "order" || tpl.Steps != 3 {
		t.Fatalf("registered %+v", tpl)
	}
	before := e.snapshot()

	t.Run("malformed JSON", func(t *testing.T) { badInputMalformedJSON(t, e, before) })

	t.Run("unknown fields", func(t *testing.T) { badInputUnknownFields(t, e, before) })

	t.Run("oversized bodies", func(t *testing.T) { badInputOversizedBodies(t, e, before) })

	t.Run("invalid template", func(t *testing.T) { badInputInvalidTemplate(t, e, before) })

	t.Run("invalid context", func(t *testing.T) { badInputInvalidContext(t, e, before) })

	t.Run("invalid handler endpoints", func(t *testing.T) { badInputInvalidHandlerEndpoints(t, e, before) })

	t.Run("unknown ids", func(t *testing.T) { badInputUnknownIds(t, e, before) })

	t.Run("illegal transitions", func(t *testing.T) { badInputIllegalTransitions(t, e, before) })
}

func badInputMalformedJSON(t *testing.T, e *apiEnv, before string) {
	p := e.problem(http.MethodPost, "/v1/tasks", `{"namespace": "shop", "name": `, http.StatusBadRequest)
	if !slices.Contains(p.locations(), "body") || p.Detail != "the request body is not valid JSON" {
		t.Errorf("problem %s does not point at the body", p)
	}
	// Echoed values are cut short.
	p = e.problem(http.MethodPost, "/v1/tasks", `{"namespace": "`+strings.Repeat("n", 1000), http.StatusBadRequest)
	if v, _ := p.Errors[0].Value.(string); len(v) > 300 {
		t.Errorf("the problem echoes %d bytes of the body", len(v))
	}
	e.problem(http.MethodPost, "/v1/templates", `{"template": "name: x"`, http.StatusBadRequest)
	e.problem(http.MethodPut, "/v1/handlers/pay", `[`, http.StatusBadRequest)
	e.unchanged(before, "malformed JSON")
}

func badInputUnknownFields(t *testing.T, e *apiEnv, before string) {
	p := e.problem(http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"order","context":{"order_id":1},"priorty":3}`, http.StatusUnprocessableEntity)
	if !slices.Contains(p.locations(), "body.priorty") {
		t.Errorf("problem %s does not name body.priorty", p)
	}
	p = e.problem(http.MethodPut, "/v1/handlers/pay", `{"url":"http://pay/","breaker":{"consecutive_failure":3}}`, http.StatusUnprocessableEntity)
	if !slices.Contains(p.locations(), "body.breaker.consecutive_failure") {
		t.Errorf("problem %s does not name body.breaker.consecutive_failure", p)
	}
	p = e.problem(http.MethodGet, "/v1/tasks?stat=complete", nil, http.StatusUnprocessableEntity)
	if !slices.Contains(p.locations(), "query.stat") {
		t.Errorf("problem %s does not name query.stat", p)
	}
	e.unchanged(before, "unknown fields")
}

func badInputOversizedBodies(t *testing.T, e *apiEnv, before string) {
	big := `{"namespace":"shop","name":"order","context":{"order_id":1,"pad":"` + strings.Repeat("x", 9<<10) + `"}}`
	p := e.problem(http.MethodPost, "/v1/tasks", big, http.StatusRequestEntityTooLarge)
	if !strings.Contains(p.Detail, "too large") {
		t.Errorf("413 detail = %q", p.Detail)
	}
	e.problem(http.MethodPost, "/v1/dead-letters/redrive", `{"step_uuids":["`+strings.Repeat("0", 9<<10)+`"]}`, http.StatusRequestEntityTooLarge)
	// Templates may be larger than other bodies, up to their own limit.
	huge := "name: x\nnamespace_name: shop\nversion: 1\ndescription: " + strings.Repeat("y", workflow.MaxTemplateBytes) + "\nsteps: []\n"
	p = e.problem(http.MethodPost, "/v1/templates", map[string]string{"template": huge}, http.StatusRequestEntityTooLarge)
	if !slices.Contains(p.locations(), "body.template") {
		t.Errorf("problem %s does not name body.template", p)
	}
	e.problem(http.MethodPost, "/v1/templates/validate", `{"template":"`+strings.Repeat("z", openapi.TemplateRequestBytes)+`"}`, http.StatusRequestEntityTooLarge)
	e.unchanged(before, "oversized bodies")
}

func badInputInvalidTemplate(t *testing.T, e *apiEnv, before string) {
	_, err := workflow.Parse([]byte(brokenTemplate))
	var ve *workflow.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) < 4 {
		t.Fatalf("the broken template should have several problems: %v", err)
	}
	p := e.problem(http.MethodPost, "/v1/templates", map[string]string{"template": brokenTemplate}, http.StatusUnprocessableEntity)
	if len(p.Errors) != len(ve.Problems) {
		t.Fatalf("%d problems reported, want all %d: %s", len(p.Errors), len(ve.Problems), p)
	}
	for i, want := range ve.Problems {
		loc := "body.template." + want.Path
		if want.Path == "" {
			loc = "body.template"
		}
		if got := p.Errors[i]; got.Location != loc || !strings.HasPrefix(got.Message, want.Message) {
			t.Errorf("problem %d = %s: %s, want %s: %s", i, got.Location, got.Message, loc, want.Message)
		}
	}
	if !slices.Contains(p.locations(), "body.template.steps[0].dependencies[0]") {
		t.Errorf("the unknown dependency is not reported at its path: %v", p.locations())
	}
	// The dry run lists the same problems without an error status.
	var v openapi.TemplateValidation
	e.do(http.MethodPost, "/v1/templates/validate", map[string]string{"template": brokenTemplate}, http.StatusOK, &v)
	if v.Valid || len(v.Problems) != len(ve.Problems) || v.Problems[0].Path != ve.Problems[0].Path {
		t.Errorf("validate = %+v", v)
	}
	// A syntax error has a line.
	p = e.problem(http.MethodPost, "/v1/templates", map[string]string{"template": "name: x\nsteps: [\n"}, http.StatusUnprocessableEntity)
	if len(p.Errors) == 0 || !strings.Contains(p.Errors[0].Message, "line") {
		t.Errorf("syntax error problem = %s", p)
	}
	// Versions are immutable: a different definition is a conflict.
	changed := strings.Replace(orderTemplate, "description: validate, charge and ship an order", "description: changed", 1)
	p = e.problem(http.MethodPost, "/v1/templates", map[string]string{"template": changed}, http.StatusConflict)
	if !strings.Contains(p.Detail, "new version") {
		t.Errorf("conflict detail = %q", p.Detail)
	}
	e.do(http.MethodPost, "/v1/templates/validate", map[string]string{"template": changed}, http.StatusOK, &v)
	if !v.Valid || v.Registered != "conflict" {
		t.Errorf("validate of a conflicting version = %+v", v)
	}
	e.unchanged(before, "invalid templates")
}

func badInputInvalidContext(t *testing.T, e *apiEnv, before string) {
	p := e.problem(http.MethodPost, "/v1/tasks", map[string]any{
		"namespace": "shop", "name": "order", "context": map[string]any{"order_id": "abc", "customer": map[string]any{"email": "x"}},
	}, http.StatusUnprocessableEntity)
	locs := p.locations()
	if !slices.Contains(locs, "body.context.order_id") || !slices.Contains(locs, "body.context.customer.email") {
		t.Errorf("context problems at %v, want body.context.order_id and body.context.customer.email: %s", locs, p)
	}
	p = e.problem(http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"order","context":{}}`, http.StatusUnprocessableEntity)
	if !slices.Contains(p.locations(), "body.context.order_id") {
		t.Errorf("missing order_id problem = %s", p)
	}
	p = e.problem(http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"order","context":[1]}`, http.StatusUnprocessableEntity)
	if !slices.Contains(p.locations(), "body.context") {
		t.Errorf("non-object context problem = %s", p)
	}
	p = e.problem(http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"nope"}`, http.StatusUnprocessableEntity)
	if !slices.Contains(p.locations(), "body.name") {
		t.Errorf("unknown template problem = %s", p)
	}
	p = e.problem(http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"order","context":{"order_id":1},"idempotency_key":"a"}`,
		http.StatusUnprocessableEntity, "Idempotency-Key", "b")
	if !slices.Contains(p.locations(), "header.Idempotency-Key") {
		t.Errorf("two idempotency keys problem = %s", p)
	}
	e.unchanged(before, "invalid contexts")
}

func badInputInvalidHandlerEndpoints(t *testing.T, e *apiEnv, before string) {
	for _, tc := range []struct{ body, location string }{
		{`{"url":"http://pay:8080/{name}"}`, "body.url"},
		{`{"url":"http://pay:8080/","secret_ref":"env:MISSING_SECRET"}`, "body.secret_ref"},
		{`{"url":"http://pay:8080/","secret_ref":"vault:x"}`, "body.secret_ref"},
		{`{"url":"http://pay:8080/","timeout_ms":-5}`, "body.timeout_ms"},
		{`{"url":"http://pay:8080/","breaker":{"open_timeout_ms":-1}}`, "body.breaker.open_timeout_ms"},
		{`{"url":"http://pay:8080/","protocol":"smtp"}`, "body.protocol"},
		{`{"url":"http://pay:8080/{callable}","protocol":"grpc"}`, "body.url"},
		{`{"protocol":"http"}`, "body.url"},
	} {
		p := e.problem(http.MethodPut, "/v1/handlers/pay", tc.body, http.StatusUnprocessableEntity)
		if !slices.Contains(p.locations(), tc.location) {
			t.Errorf("PUT %s: problem %s does not name %s", tc.body, p, tc.location)
		}
	}
	p := e.problem(http.MethodPut, "/v1/handlers/pay?namespace=Not-Valid", `{"url":"http://pay/"}`, http.StatusUnprocessableEntity)
	if !slices.Contains(p.locations(), "query.namespace") {
		t.Errorf("bad namespace problem = %s", p)
	}
	e.unchanged(before, "invalid handler endpoints")
}

func badInputUnknownIds(t *testing.T, e *apiEnv, before string) {
	id := uuid.Must(uuid.NewV7()).String()
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/v1/tasks/" + id, ""},
		{http.MethodPost, "/v1/tasks/" + id + "/cancel", ""},
		{http.MethodGet, "/v1/steps/" + id, ""},
		{http.MethodPost, "/v1/steps/" + id + "/retry", ""},
		{http.MethodPost, "/v1/steps/" + id + "/resolve", `{"result":{"ok":true}}`},
		{http.MethodPost, "/v1/dead-letters/redrive", `{"step_uuids":["` + id + `"]}`},
		{http.MethodGet, "/v1/handlers/nothing.here", ""},
		{http.MethodDelete, "/v1/handlers/nothing.here?namespace=shop", ""},
		{http.MethodGet, "/v1/templates/shop/nope", ""},
		{http.MethodGet, "/v1/templates/shop/order?version=9.9.9", ""},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		p := e.problem(c.method, c.path, body, http.StatusNotFound)
		if strings.Contains(c.path, id) && !strings.Contains(p.Detail, id) {
			t.Errorf("%s %s: detail %q does not name the id", c.method, c.path, p.Detail)
		}
	}
	p := e.problem(http.MethodGet, "/v1/tasks/not-a-uuid", nil, http.StatusUnprocessableEntity)
	if !slices.Contains(p.locations(), "path.task_uuid") {
		t.Errorf("bad uuid problem = %s", p)
	}
	p = e.problem(http.MethodGet, "/v1/tasks?cursor=bm9wZQ", nil, http.StatusUnprocessableEntity)
	if !slices.Contains(p.locations(), "query.cursor") {
		t.Errorf("bad cursor problem = %s", p)
	}
	p = e.problem(http.MethodGet, "/v1/dead-letters?limit=501", nil, http.StatusUnprocessableEntity)
	if !slices.Contains(p.locations(), "query.limit") {
		t.Errorf("limit above 500 problem = %s", p)
	}
	e.problem(http.MethodPost, "/v1/dead-letters/redrive", `{}`, http.StatusUnprocessableEntity)
	e.problem(http.MethodPost, "/v1/dead-letters/redrive", `{"step_uuids":["`+id+`"],"filter":{}}`, http.StatusUnprocessableEntity)
	e.unchanged(before, "unknown ids")
}

func badInputIllegalTransitions(t *testing.T, e *apiEnv, before string) {
	var task apiTask
	e.do(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "shop", "name": "order", "context": map[string]any{"order_id": 7}}, http.StatusCreated, &task)
	e.do(http.MethodPost, "/v1/tasks/"+task.TaskUUID+"/cancel", `{"reason":"test"}`, http.StatusOK, &task)
	if task.State != "cancelled" || task.step("validate").State != "cancelled" {
		t.Fatalf("cancelled task = %+v", task)
	}
	settled := e.snapshot()
	p := e.problem(http.MethodPost, "/v1/tasks/"+task.TaskUUID+"/cancel", nil, http.StatusConflict)
	if !strings.Contains(p.Detail, "(cancelled)") || !strings.Contains(p.Detail, task.TaskUUID) {
		t.Errorf("cancel of a cancelled task: detail %q should name the task and its state", p.Detail)
	}
	step := task.step("charge").StepUUID
	p = e.problem(http.MethodPost, "/v1/steps/"+step+"/retry", nil, http.StatusConflict)
	if !strings.Contains(p.Detail, "only a step in state error") {
		t.Errorf("retry of a cancelled step: detail %q", p.Detail)
	}
	e.problem(http.MethodPost, "/v1/steps/"+step+"/resolve", nil, http.StatusConflict)
	e.problem(http.MethodPost, "/v1/dead-letters/redrive", map[string]any{"step_uuids": []string{step}}, http.StatusConflict)
	e.unchanged(settled, "refused state changes")
}
