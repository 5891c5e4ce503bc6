package openapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/openapi"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// taskerTemplate is a template as Tasker writes it: loaded_from, depends_on
// and retry.initial_delay, which Tasker's loader reads (or ignores).
const taskerTemplate = `name: tasker_order
namespace_name: shop
version: 1.0.0
loaded_from: config/tasks/shop/tasker_order.yaml
steps:
  - name: validate
    handler: {callable: shop.validate}
  - name: charge
    depends_on: [validate]
    handler: {callable: shop.charge}
    retry: {retryable: true, max_attempts: 3, initial_delay: 500}
`

// templateWarnings is the warnings of taskerTemplate.
var templateWarnings = []string{"loaded_from (line 4)", "steps[1].retry.initial_delay (line 11)"}

type templateProblem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
	Line    int    `json:"line"`
}

func problemKeys(ps []templateProblem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s (line %d)", p.Path, p.Line))
	}
	return out
}

type validation struct {
	Valid      bool              `json:"valid"`
	Problems   []templateProblem `json:"problems"`
	Warnings   []templateProblem `json:"warnings"`
	Registered string            `json:"registered"`
}

type registration struct {
	Name       string            `json:"name"`
	Steps      int               `json:"steps"`
	Definition json.RawMessage   `json:"definition"`
	Warnings   []templateProblem `json:"warnings"`
}

// Templates are sent as YAML (the document itself is the body) or as the
// JSON-wrapped text; both give the same answers, warnings included, and
// problems are located in the body as sent.
func TestTemplateYAMLBody(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{})
	yaml := func(ct string) []string { return []string{"Content-Type", ct} }

	for _, ct := range []string{"application/yaml", "application/x-yaml", "text/yaml", "application/yaml; charset=utf-8", "Text/YAML; charset=UTF-8"} {
		var v validation
		e.do(http.MethodPost, "/v1/templates/validate", taskerTemplate, http.StatusOK, &v, yaml(ct)...)
		if !v.Valid || len(v.Problems) != 0 || !slices.Equal(problemKeys(v.Warnings), templateWarnings) || v.Registered != "new" {
			t.Errorf("validate as %s = %+v", ct, v)
		}
	}
	var v validation
	e.do(http.MethodPost, "/v1/templates/validate", map[string]string{"template": taskerTemplate}, http.StatusOK, &v)
	if !v.Valid || !slices.Equal(problemKeys(v.Warnings), templateWarnings) {
		t.Errorf("validate as JSON = %+v", v)
	}
	if !strings.Contains(v.Warnings[0].Message, "Tasker ignores it") {
		t.Errorf("warning = %+v", v.Warnings[0])
	}

	// Register as YAML: 201 with the warnings; again: 200, same warnings;
	// the JSON-wrapped text is the same template.
	var reg registration
	e.do(http.MethodPost, "/v1/templates", taskerTemplate, http.StatusCreated, &reg, yaml("application/yaml")...)
	if reg.Name != "tasker_order" || reg.Steps != 2 || !slices.Equal(problemKeys(reg.Warnings), templateWarnings) ||
		!strings.Contains(string(reg.Definition), `"dependencies":["validate"]`) || strings.Contains(string(reg.Definition), "loaded_from") {
		t.Errorf("register = %+v %s", reg, reg.Definition)
	}
	e.do(http.MethodPost, "/v1/templates", taskerTemplate, http.StatusOK, &reg, yaml("text/yaml")...)
	if !slices.Equal(problemKeys(reg.Warnings), templateWarnings) {
		t.Errorf("register again: warnings %+v", reg.Warnings)
	}
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": taskerTemplate}, http.StatusOK, &reg)
	e.do(http.MethodPost, "/v1/templates/validate", taskerTemplate, http.StatusOK, &v, yaml("application/yaml")...)
	if v.Registered != "identical" {
		t.Errorf("validate after register: registered %q", v.Registered)
	}
	// No warnings: an empty list, not null.
	code, _, body := e.call(http.MethodPost, "/v1/templates", orderTemplate, yaml("application/yaml")...)
	if code != http.StatusCreated || !strings.Contains(string(body), `"warnings":[]`) {
		t.Errorf("register without warnings = %d %s", code, body)
	}

	// Problems: at body.<path> for a YAML body, body.template.<path> for
	// the JSON-wrapped text; validate lists them with the warnings.
	broken := strings.Replace(taskerTemplate, "depends_on: [validate]", "depends_on: [valdate]", 1)
	before := e.snapshot()
	p := e.problem(http.MethodPost, "/v1/templates", broken, http.StatusUnprocessableEntity, yaml("application/yaml")...)
	if !slices.Equal(p.locations(), []string{"body.steps[1].depends_on[0]"}) || !strings.Contains(p.Errors[0].Message, `unknown step "valdate" (line 9)`) {
		t.Errorf("YAML problem = %s", p)
	}
	p = e.problem(http.MethodPost, "/v1/templates", map[string]string{"template": broken}, http.StatusUnprocessableEntity)
	if !slices.Equal(p.locations(), []string{"body.template.steps[1].depends_on[0]"}) {
		t.Errorf("JSON problem = %s", p)
	}
	e.do(http.MethodPost, "/v1/templates/validate", broken, http.StatusOK, &v, yaml("application/yaml")...)
	if v.Valid || len(v.Problems) != 1 || v.Problems[0].Path != "steps[1].depends_on[0]" || !slices.Equal(problemKeys(v.Warnings), templateWarnings) {
		t.Errorf("validate broken = %+v", v)
	}
	// A string the database cannot store, inside the YAML: at its path.
	p = e.problem(http.MethodPost, "/v1/templates", strings.Replace(taskerTemplate, "name: validate", `name: "val\0idate"`, 1), http.StatusUnprocessableEntity, yaml("application/yaml")...)
	if i := slices.Index(p.locations(), "body.steps[0].name"); i < 0 || !strings.Contains(p.Errors[i].Message, "NUL") {
		t.Errorf("NUL in YAML = %s", p)
	}
	// JSON escapes in a YAML body are YAML's, not a JSON body's.
	e.do(http.MethodPost, "/v1/templates/validate", strings.Replace(taskerTemplate, "version: 1.0.0", "version: 1.0.0\ndescription: \"caf\\u00e9 \\\\u0000\"", 1), http.StatusOK, &v, yaml("application/yaml")...)
	if !v.Valid {
		t.Errorf("YAML with \\u escapes: %+v", v)
	}

	// The body itself: empty, not UTF-8, control characters, another
	// charset, another content type.
	for _, tc := range []struct {
		name, body, ct string
		status         int
		location, msg  string
	}{
		{"empty", "", "application/yaml", http.StatusUnprocessableEntity, "body", "empty"},
		{"blank", " \n\n", "application/yaml", http.StatusUnprocessableEntity, "body", "empty"},
		{"not UTF-8", "name: caf\xe9\n", "application/yaml", http.StatusUnprocessableEntity, "body", "UTF-8"},
		{"control character", "name: a\nversion: 1\x01\n", "application/yaml", http.StatusUnprocessableEntity, "body", "U+0001 is not allowed in a template (line 2)"},
		{"latin-1", taskerTemplate, "application/yaml; charset=iso-8859-1", http.StatusUnsupportedMediaType, "", ""},
		{"text/plain", taskerTemplate, "text/plain", http.StatusUnsupportedMediaType, "", ""},
	} {
		p := e.problem(http.MethodPost, "/v1/templates/validate", tc.body, tc.status, yaml(tc.ct)...)
		if tc.location != "" && (!slices.Equal(p.locations(), []string{tc.location}) || !strings.Contains(p.Errors[0].Message, tc.msg)) {
			t.Errorf("%s: problem %s, want %q at %s", tc.name, p, tc.msg, tc.location)
		}
	}
	e.unchanged(before, "refused templates")
}

// A YAML body is a template document of at most workflow.MaxTemplateBytes:
// one byte more answers 413, whether the length is announced or not.
func TestTemplateYAMLBodyLimit(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{})
	pad := func(n int) string {
		doc := orderTemplate + "# "
		return doc + strings.Repeat("x", n-len(doc)-1) + "\n"
	}
	exact := pad(workflow.MaxTemplateBytes)
	if len(exact) != workflow.MaxTemplateBytes {
		t.Fatalf("document of %d bytes", len(exact))
	}
	var v validation
	e.do(http.MethodPost, "/v1/templates/validate", exact, http.StatusOK, &v, "Content-Type", "application/yaml")
	if !v.Valid {
		t.Errorf("a document of the limit: %+v", v)
	}
	over := pad(workflow.MaxTemplateBytes + 1)
	for _, chunked := range []bool{false, true} {
		req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/templates", strings.NewReader(over))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/yaml")
		if chunked {
			req.Body = io.NopCloser(strings.NewReader(over)) // no length: sent chunked
			req.ContentLength = 0
		}
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), fmt.Sprintf("larger than %d bytes", workflow.MaxTemplateBytes)) {
			t.Errorf("chunked %v: %d %s", chunked, res.StatusCode, b)
		}
	}
	// The JSON-wrapped form has the same limit on the document.
	p := e.problem(http.MethodPost, "/v1/templates", map[string]string{"template": over}, http.StatusRequestEntityTooLarge)
	if !strings.Contains(p.Detail, fmt.Sprintf("larger than %d bytes", workflow.MaxTemplateBytes)) {
		t.Errorf("JSON-wrapped: %s", p)
	}
}

// The spec documents both ways of sending a template.
func TestTemplateSpecMediaTypes(t *testing.T) {
	t.Parallel()
	b, err := openapi.Spec("json")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Paths map[string]map[string]struct {
			RequestBody struct {
				Content map[string]struct {
					Schema map[string]any `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/templates", "/v1/templates/validate"} {
		content := spec.Paths[path]["post"].RequestBody.Content
		for _, ct := range []string{"application/json", "application/yaml", "application/x-yaml", "text/yaml"} {
			if _, ok := content[ct]; !ok {
				t.Errorf("POST %s: no %s request body", path, ct)
			}
		}
		if content["application/yaml"].Schema["type"] != "string" {
			t.Errorf("POST %s: YAML schema %v", path, content["application/yaml"].Schema)
		}
	}
}

// An operation may run longer than huma's body read timeout (5 s) without
// being cancelled: here registering a template waits for a lock held past
// that deadline, as it may on a busy database.
func TestSlowRegistrationIsNotCancelled(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{})
	op := openapi.New(openapi.Config{}).API().OpenAPI().Paths["/v1/templates"].Post
	if op.BodyReadTimeout <= 0 {
		t.Fatalf("registerTemplate's body read timeout is %v", op.BodyReadTimeout)
	}
	ctx := t.Context()
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK TABLE tasker.templates IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		status int
		body   string
		err    error
	}
	done := make(chan answer, 1)
	sent := time.Now()
	go func() {
		res, err := e.srv.Client().Post(e.srv.URL+"/v1/templates", "application/yaml", strings.NewReader(orderTemplate))
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		done <- answer{res.StatusCode, string(b), err}
	}()
	// The registration waits for the lock...
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for waiting := 0; waiting == 0; {
		select {
		case a := <-done:
			t.Fatalf("answered while the table is locked: %+v", a)
		case <-tick.C:
		}
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	// ... until well past the deadline huma set when it read the body.
	select {
	case a := <-done:
		t.Fatalf("answered while the table is locked: %+v", a)
	case <-time.After(time.Until(sent.Add(op.BodyReadTimeout + time.Second))):
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if a := <-done; a.err != nil || a.status != http.StatusCreated {
		t.Fatalf("registration = %+v, want 201", a)
	}
}
