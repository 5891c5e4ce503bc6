package openapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/openapi"
	"github.com/tasker-runner/tasker-runner/runner/workflow"

	"github.com/tasker-runner/tasker-runner/runner"
)

// allPairsTemplate is a template of n steps, each depending on every
// earlier one: n(n-1)/2 dependencies, each a row of every task.
func allPairsTemplate(name string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nnamespace_name: shop\nversion: 1.0.0\nsteps:\n", name)
	for i := range n {
		fmt.Fprintf(&b, "  - name: s%d\n    handler: {callable: c}\n    dependencies: [", i)
		for j := range i {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "s%d", j)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// Findings 2 and 9 (issue 14): integers are checked against their columns
// (a priority outside int32 was stored wrapped) and a huge timeout_ms is
// refused for its size, not as "negative".
func TestIntegerRanges(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{})
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": orderTemplate}, http.StatusCreated, nil)
	before := e.snapshot()
	for _, tc := range []struct{ method, path, body, location, message string }{
		{http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"order","context":{"order_id":1},"priority":-2147483649}`, "body.priority", "must be at least -2147483648"},
		{http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"order","context":{"order_id":1},"priority":1099511627776}`, "body.priority", "must be at most 2147483647"},
		{http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"order","context":{"order_id":1},"priority":1e30}`, "body.priority", "must be at most 2147483647"},
		{http.MethodPut, "/v1/handlers/pay", `{"url":"http://pay/","timeout_ms":9223372036854775807}`, "body.timeout_ms", "must be at most 2147483647"},
		{http.MethodPut, "/v1/handlers/pay", `{"url":"http://pay/","max_concurrency":2147483648}`, "body.max_concurrency", "must be at most 2147483647"},
		{http.MethodPut, "/v1/handlers/pay", `{"url":"http://pay/","batch_max":4294967297}`, "body.batch_max", "must be at most 2147483647"},
		{http.MethodPut, "/v1/handlers/pay", `{"url":"http://pay/","batch_window_ms":9223372036854775807}`, "body.batch_window_ms", "must be at most 2147483647"},
		{http.MethodPut, "/v1/handlers/pay", `{"url":"http://pay/","breaker":{"open_timeout_ms":9223372036854775807}}`, "body.breaker.open_timeout_ms", "must be at most 2147483647"},
		{http.MethodPut, "/v1/handlers/pay", `{"url":"http://pay/","breaker":{"consecutive_failures":4294967296}}`, "body.breaker.consecutive_failures", "must be at most 2147483647"},
		{http.MethodGet, "/v1/tasks?limit=9223372036854775808", "", "query.limit", ""},
		{http.MethodPost, "/v1/dead-letters/redrive", `{"filter":{},"limit":9223372036854775807}`, "body.limit", "must be at most 10000"},
	} {
		var body any
		if tc.body != "" {
			body = tc.body
		}
		p := e.problem(tc.method, tc.path, body, http.StatusUnprocessableEntity)
		i := slices.Index(p.locations(), tc.location)
		if i < 0 || !strings.Contains(p.Errors[i].Message, tc.message) || strings.Contains(p.Errors[i].Message, "negative") {
			t.Errorf("%s %s %s: problem %s, want %q at %s", tc.method, tc.path, tc.body, p, tc.message, tc.location)
		}
	}
	e.unchanged(before, "out-of-range integers")
	// The ends of the range are stored as sent.
	for _, prio := range []int64{contracts.MinInt32, contracts.MaxInt32} {
		var task struct {
			Priority int64 `json:"priority"`
		}
		e.do(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "shop", "name": "order", "context": map[string]any{"order_id": 1}, "priority": prio}, http.StatusCreated, &task)
		if task.Priority != prio {
			t.Errorf("priority %d stored as %d", prio, task.Priority)
		}
	}
	var h struct {
		TimeoutMs int64 `json:"timeout_ms"`
	}
	e.do(http.MethodPut, "/v1/handlers/pay", `{"url":"http://pay/","timeout_ms":2147483647}`, http.StatusCreated, &h)
	if h.TimeoutMs != contracts.MaxInt32 {
		t.Errorf("timeout_ms stored as %d", h.TimeoutMs)
	}
}

// Finding 4: NUL characters, invalid UTF-8 and unpaired surrogates in any
// string answer 422 at the string's location, not 500 from PostgreSQL.
func TestUnstorableStrings(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{})
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": orderTemplate}, http.StatusCreated, nil)
	before := e.snapshot()
	id := "0190a5a0-0000-7000-8000-000000000000"
	for _, tc := range []struct {
		method, path string
		body         string
		location     string
		headers      []string
	}{
		{http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"order","context":{"order_id":1,"note":"a\u0000b"}}`, "body.context.note", nil},
		{http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"order","context":{"order_id":1,"order":{"note":"\ud800"}}}`, "body.context.order.note", nil},
		{http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"order","context":{"order_id":1,"items":[{"n":"x"},{"n":"\udc00\ud800"}]}}`, "body.context.items[1].n", nil},
		{http.MethodPost, "/v1/tasks", "{\"namespace\":\"shop\",\"name\":\"order\",\"context\":{\"order_id\":1,\"note\":\"caf\xe9\"}}", "body.context.note", nil},
		{http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"order","context":{"order_id":1,"k\u0000":1}}`, "body.context", nil},
		{http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"order","context":{"order_id":1},"tags":["ok","\u0000"]}`, "body.tags[1]", nil},
		{http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"order","context":{"order_id":1},"initiator":"\u0000"}`, "body.initiator", nil},
		{http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"order","context":{"order_id":1},"idempotency_key":"k\u0000"}`, "body.idempotency_key", nil},
		{http.MethodPost, "/v1/tasks", `{"namespace":"sh\u0000op","name":"order"}`, "body.namespace", nil},
		{http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"order","context":{"order_id":1}}`, "header.Idempotency-Key", []string{"Idempotency-Key", "k\xff"}},
		{http.MethodGet, "/v1/tasks?namespace=%FF", "", "query.namespace", nil},
		{http.MethodGet, "/v1/tasks?template=a%00b", "", "query.template", nil},
		{http.MethodGet, "/v1/dead-letters?handler=%C0%80", "", "query.handler", nil},
		{http.MethodGet, "/v1/templates/sh%00op/order", "", "path.namespace", nil},
		{http.MethodGet, "/v1/templates/shop/ord%FFer", "", "path.name", nil},
		{http.MethodPut, "/v1/handlers/pay%00", `{"url":"http://pay/"}`, "path.pattern", nil},
		{http.MethodPut, "/v1/handlers/pay", `{"url":"http://pay/","headers":{"X-A":"\u0000"}}`, "body.headers.X-A", nil},
		{http.MethodPost, "/v1/steps/" + id + "/resolve", `{"result":{"a":["\u0000"]}}`, "body.result.a[0]", nil},
		{http.MethodPost, "/v1/tasks/" + id + "/cancel", `{"reason":"\ud800\u0041"}`, "body.reason", nil},
		{http.MethodPost, "/v1/templates", `{"template":"name: x\u0000"}`, "body.template", nil},
		{http.MethodPost, "/v1/templates", `{"template":"name: t\nnamespace_name: shop\nversion: 2.0.0\ndescription: \"a\\0b\"\nsteps:\n  - {name: a, handler: {callable: c}}\n"}`, "body.template.description", nil},
	} {
		var body any
		if tc.body != "" {
			body = tc.body
		}
		p := e.problem(tc.method, tc.path, body, http.StatusUnprocessableEntity, tc.headers...)
		if !slices.Contains(p.locations(), tc.location) {
			t.Errorf("%s %s %q: problem %s does not name %s", tc.method, tc.path, tc.body, p, tc.location)
		}
	}
	e.unchanged(before, "unstorable strings")
	// A valid surrogate pair and escaped backslashes are fine.
	e.do(http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"order","context":{"order_id":1,"emoji":"\ud83d\ude00","path":"C:\\u0000"}}`, http.StatusCreated, nil)
}

// Finding 5: a namespace the database refuses is refused by template
// validation, at its path.
func TestTemplateNamespaceLimits(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{})
	before := e.snapshot()
	for _, ns := range []string{strings.Repeat("n", contracts.MaxNamespaceLen+1), strings.Repeat("n", 128), "Shop"} {
		doc := "name: t\nnamespace_name: " + ns + "\nversion: 1\nsteps:\n  - {name: a, handler: {callable: c}}\n"
		p := e.problem(http.MethodPost, "/v1/templates", map[string]string{"template": doc}, http.StatusUnprocessableEntity)
		if !slices.Contains(p.locations(), "body.template.namespace_name") {
			t.Errorf("namespace %q: problem %s does not name body.template.namespace_name", ns, p)
		}
		var v openapi.TemplateValidation
		e.do(http.MethodPost, "/v1/templates/validate", map[string]string{"template": doc}, http.StatusOK, &v)
		if v.Valid || len(v.Problems) != 1 || v.Problems[0].Path != "namespace_name" {
			t.Errorf("validate namespace %q: %+v", ns, v)
		}
	}
	e.unchanged(before, "bad namespaces")
	doc := "name: t\nnamespace_name: " + strings.Repeat("n", contracts.MaxNamespaceLen) + "\nversion: 1\nsteps:\n  - {name: a, handler: {callable: c}}\n"
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": doc}, http.StatusCreated, nil)
}

// Findings 3 and 7: a template whose tasks would expand to more edges than
// the limit, or whose stored definition runners could not load back, is
// refused at registration with 422 naming the limit and the size.
func TestTemplateSizeLimits(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{})
	before := e.snapshot()
	p := e.problem(http.MethodPost, "/v1/templates", map[string]string{"template": allPairsTemplate("pairs", 300)}, http.StatusUnprocessableEntity)
	if i := slices.Index(p.locations(), "body.template.steps"); i < 0 || !strings.Contains(p.Errors[i].Message, "44850 dependencies") ||
		!strings.Contains(p.Errors[i].Message, fmt.Sprint(workflow.MaxEdges)) {
		t.Errorf("all-pairs template: %s", p)
	}
	// Under MaxTemplateBytes as sent, over it once stored: every newline
	// of a block scalar is two bytes in JSON.
	doc := "name: big\nnamespace_name: shop\nversion: 1\ndescription: |\n  x\n" + strings.Repeat("\n", workflow.MaxTemplateBytes*6/10) + "  y\nsteps:\n  - {name: a, handler: {callable: c}}\n"
	if len(doc) > workflow.MaxTemplateBytes {
		t.Fatalf("the document is %d bytes", len(doc))
	}
	p = e.problem(http.MethodPost, "/v1/templates", map[string]string{"template": doc}, http.StatusUnprocessableEntity)
	if i := slices.Index(p.locations(), "body.template"); i < 0 || !strings.Contains(p.Detail, fmt.Sprint(workflow.MaxDefinitionBytes)) ||
		!strings.Contains(p.Errors[i].Message, "bytes") {
		t.Errorf("oversized definition: %s", p)
	}
	e.unchanged(before, "oversized templates")
	// Just under the edge limit is fine.
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": allPairsTemplate("pairs", 141)}, http.StatusCreated, nil)
}

// Finding 3: a template version can be deleted, with its finished tasks;
// not while it has unfinished ones.
func TestDeleteTemplate(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{})
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": orderTemplate}, http.StatusCreated, nil)
	submit := func(e *apiEnv, srv string) apiTask {
		var task apiTask
		code, _, b := e.callURL(srv, http.MethodPost, "/v1/tasks", map[string]any{"namespace": "shop", "name": "order", "version": "1.0.0", "context": map[string]any{"order_id": 1}})
		if code != http.StatusCreated {
			t.Fatalf("submit = %d: %s", code, b)
		}
		mustUnmarshal(t, b, &task)
		return task
	}
	task := submit(e, e.srv.URL)
	p := e.problem(http.MethodDelete, "/v1/templates/shop/order/1.0.0", nil, http.StatusConflict)
	if !strings.Contains(p.Detail, "1 unfinished task") {
		t.Errorf("delete with a live task: %s", p)
	}
	e.do(http.MethodPost, "/v1/tasks/"+task.TaskUUID+"/cancel", nil, http.StatusOK, nil)
	code, _, b := e.call(http.MethodDelete, "/v1/templates/shop/order/1.0.0", nil)
	if code != http.StatusNoContent || len(b) != 0 {
		t.Fatalf("delete = %d: %s", code, b)
	}
	e.problem(http.MethodGet, "/v1/templates/shop/order", nil, http.StatusNotFound)
	e.problem(http.MethodGet, "/v1/tasks/"+task.TaskUUID, nil, http.StatusNotFound)
	e.problem(http.MethodDelete, "/v1/templates/shop/order/1.0.0", nil, http.StatusNotFound)
	p = e.problem(http.MethodDelete, "/v1/templates/sh%00op/order/1.0.0", nil, http.StatusUnprocessableEntity)
	if !slices.Contains(p.locations(), "path.namespace") {
		t.Errorf("bad namespace: %s", p)
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), `
		SELECT (SELECT count(*) FROM tasker.steps) + (SELECT count(*) FROM tasker.step_history) + (SELECT count(*) FROM tasker.task_history)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("left behind: %d rows (%v)", n, err)
	}

	// Another server on the same database cached the template's id; after
	// it is deleted and registered again, its submits use the new one.
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	other := httptest.NewServer(openapi.New(openapi.Config{Client: runner.NewClient(e.pool, runner.ClientConfig{}), Logger: log, HeartbeatInterval: time.Second}).Handler())
	t.Cleanup(other.Close)
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": orderTemplate}, http.StatusCreated, nil)
	done := submit(e, other.URL)
	e.do(http.MethodPost, "/v1/tasks/"+done.TaskUUID+"/cancel", nil, http.StatusOK, nil)
	e.call(http.MethodDelete, "/v1/templates/shop/order/1.0.0", nil)
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": orderTemplate}, http.StatusCreated, nil)
	again := submit(e, other.URL)
	if again.StepsTotal != 3 {
		t.Errorf("submit after re-registration: %+v", again)
	}
}

// Finding 9: what matches no operation is a problem document too.
func TestUnmatchedRoutes(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{})
	for _, path := range []string{"/v1/tasks/", "/v1/nope", "/v1/templates/shop", "/nope"} {
		p := e.problem(http.MethodGet, path, nil, http.StatusNotFound)
		if !strings.Contains(p.Detail, path) {
			t.Errorf("GET %s: detail %q", path, p.Detail)
		}
	}
	p := e.problem(http.MethodDelete, "/v1/status", nil, http.StatusMethodNotAllowed)
	if !strings.Contains(p.Detail, "GET") {
		t.Errorf("DELETE /v1/status: %s", p)
	}
	code, h, _ := e.call(http.MethodPatch, "/v1/tasks", nil)
	if code != http.StatusMethodNotAllowed || !strings.Contains(h.Get("Allow"), "POST") || h.Get("Content-Type") != "application/problem+json" {
		t.Errorf("PATCH /v1/tasks = %d, Allow %q, Content-Type %q", code, h.Get("Allow"), h.Get("Content-Type"))
	}
}

// The schema's length limits and ranges are the shared ones of contracts.
func TestSchemaUsesSharedLimits(t *testing.T) {
	t.Parallel()
	lengths := map[string]int{
		"namespace": contracts.MaxNamespaceLen, "template": contracts.MaxTemplateNameLen, "version": contracts.MaxVersionLen,
		"pattern": contracts.MaxPatternLen, "handler": contracts.MaxPatternLen, "url": contracts.MaxURLLen,
		"idempotency_key": contracts.MaxIdempotencyKeyLen, "Idempotency-Key": contracts.MaxIdempotencyKeyLen,
		"initiator": contracts.MaxInitiatorLen, "source_system": contracts.MaxInitiatorLen, "reason": contracts.MaxReasonLen,
	}
	api := openapi.New(openapi.Config{}).API().OpenAPI()
	check := func(where, name string, s *huma.Schema) {
		if s == nil || s.MaxLength == nil {
			return
		}
		if want, ok := lengths[name]; ok && *s.MaxLength != want {
			t.Errorf("%s %s: maxLength %d, want %d", where, name, *s.MaxLength, want)
		}
	}
	for path, item := range api.Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete} {
			if op == nil {
				continue
			}
			for _, p := range op.Parameters {
				check(path, p.Name, p.Schema)
				if p.Name == "name" && p.Schema.MaxLength != nil && *p.Schema.MaxLength != contracts.MaxTemplateNameLen {
					t.Errorf("%s name: maxLength %d", path, *p.Schema.MaxLength)
				}
			}
		}
	}
	for name, s := range api.Components.Schemas.Map() {
		for prop, ps := range s.Properties {
			check(name, prop, ps)
		}
	}
	prio := api.Components.Schemas.Map()["SubmitTaskRequest"].Properties["priority"]
	if prio.Minimum == nil || *prio.Minimum != contracts.MinInt32 || prio.Maximum == nil || *prio.Maximum != contracts.MaxInt32 {
		t.Errorf("priority range %v..%v", prio.Minimum, prio.Maximum)
	}
}

// Each tag is bounded, not only their number: a tag over the limit is
// refused at its index, and one at the limit is stored.
func TestTagLength(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{})
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": orderTemplate}, http.StatusCreated, nil)
	before := e.snapshot()
	long := strings.Repeat("é", contracts.MaxTagLen+1)
	p := e.problem(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "shop", "name": "order", "context": map[string]any{"order_id": 1},
		"tags": []string{"ok", long}}, http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || p.Errors[0].Location != "body.tags[1]" || !strings.Contains(p.Errors[0].Message, "at most 255") {
		t.Fatalf("problem %s, want one at body.tags[1]", p)
	}
	e.unchanged(before, "an over-long tag")
	atLimit := strings.Repeat("é", contracts.MaxTagLen)
	var task struct {
		Tags []string `json:"tags"`
	}
	e.do(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "shop", "name": "order", "context": map[string]any{"order_id": 1},
		"tags": []string{atLimit}}, http.StatusCreated, &task)
	if len(task.Tags) != 1 || task.Tags[0] != atLimit {
		t.Fatalf("tags stored as %q", task.Tags)
	}
}
