package workflow

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// header is prepended to the steps of the table-driven validation cases.
const header = "name: t\nnamespace_name: ns\nversion: 1.0.0\n"

// problemsOf parses doc and returns its problems as "path: message".
func problemsOf(t *testing.T, doc string) []string {
	t.Helper()
	_, err := Parse([]byte(doc))
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v (%T), want *ValidationError", err, err)
	}
	out := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		out[i] = p.Path + ": " + p.Message
	}
	return out
}

func TestValidationProblems(t *testing.T) {
	tests := []struct {
		name string
		doc  string // header is prepended unless bare or the document starts with "name"
		bare bool
		want []string
	}{
		{
			name: "unknown dependency",
			doc: `steps:
  - {name: a, handler: {callable: c}}
  - {name: b, handler: {callable: c}}
  - {name: c, handler: {callable: c}, dependencies: [x]}`,
			want: []string{`steps[2].dependencies[0]: unknown step "x"`},
		},
		{
			name: "duplicate step name",
			doc: `steps:
  - {name: charge, handler: {callable: c}}
  - {name: charge, handler: {callable: c}}`,
			want: []string{`steps[1].name: duplicate step name "charge" (first at steps[0])`},
		},
		{
			name: "two-step cycle",
			doc: `steps:
  - {name: charge, handler: {callable: c}, dependencies: [ship]}
  - {name: ship, handler: {callable: c}, dependencies: [charge]}`,
			want: []string{`steps: cycle charge -> ship -> charge`},
		},
		{
			name: "cycle behind a root, and a second cycle",
			doc: `steps:
  - {name: root, handler: {callable: c}}
  - {name: a, handler: {callable: c}, dependencies: [root, c]}
  - {name: b, handler: {callable: c}, dependencies: [a]}
  - {name: c, handler: {callable: c}, dependencies: [b]}
  - {name: x, handler: {callable: c}, dependencies: [y]}
  - {name: y, handler: {callable: c}, dependencies: [x]}`,
			want: []string{`steps: cycle a -> b -> c -> a`, `steps: cycle x -> y -> x`},
		},
		{
			name: "self dependency",
			doc: `steps:
  - {name: a, handler: {callable: c}, dependencies: [a]}`,
			want: []string{`steps[0].dependencies[0]: step "a" depends on itself`},
		},
		{
			name: "duplicate and empty dependency",
			doc: `steps:
  - {name: a, handler: {callable: c}}
  - {name: b, handler: {callable: c}, dependencies: [a, a, ""]}`,
			want: []string{`steps[1].dependencies[1]: duplicate dependency "a"`, `steps[1].dependencies[2]: must not be empty`},
		},
		{
			name: "retry limit zero",
			doc: `steps:
  - {name: a, handler: {callable: c}, retry: {limit: 0}}`,
			want: []string{`steps[0].retry.limit: must be >= 1`},
		},
		{
			name: "retry limit negative and too large keeps the key as written",
			doc: `steps:
  - {name: a, handler: {callable: c}, retry: {limit: -1}}
  - {name: b, handler: {callable: c}, retry: {max_attempts: 2000000}}`,
			want: []string{`steps[0].retry.limit: must be >= 1`, `steps[1].retry.max_attempts: must be <= 1000000`},
		},
		{
			name: "backoff values",
			doc: `steps:
  - {name: a, handler: {callable: c}, retry: {backoff: sometimes, backoff_base_ms: 5000, max_backoff_ms: 1000}}
  - {name: b, handler: {callable: c}, retry: {backoff_base_ms: 0, max_backoff_ms: 99999999}}`,
			want: []string{
				`steps[0].retry.max_backoff_ms: must be >= backoff_base_ms (5000)`,
				`steps[0].retry.backoff: unknown backoff "sometimes"; allowed: exponential, linear, fixed, fibonacci, none`,
				`steps[1].retry.backoff_base_ms: must be >= 1`,
				`steps[1].retry.max_backoff_ms: must be <= 3600000`,
			},
		},
		{
			name: "handler callable required",
			doc: `steps:
  - {name: a, handler: {callable: c}}
  - {name: b, handler: {callable: c}}
  - {name: c, handler: {callable: c}}
  - {name: d, handler: {method: run}}`,
			want: []string{`steps[3].handler.callable: required`},
		},
		{
			name: "handler missing entirely and bad callable",
			doc: `steps:
  - {name: a}
  - {name: b, handler: {callable: "has space"}}`,
			want: []string{`steps[0].handler.callable: required`, `steps[1].handler.callable: "has space" must not contain spaces or control characters`},
		},
		{
			name: "wrong node kinds are reported once",
			doc: `steps:
  - {name: a, handler: just.a.string}
  - {name: b, handler: {callable: [x]}, dependencies: a, timeout_seconds: "10", retry: {retryable: "yes"}}
  - just a string`,
			want: []string{
				`steps[0].handler: must be a mapping, got a string`,
				`steps[1].handler.callable: must be a string, got a list`,
				`steps[1].dependencies: must be a list, got a string`,
				`steps[1].timeout_seconds: must be an integer, got a string`,
				`steps[1].retry.retryable: must be a boolean, got a string`,
				`steps[2]: must be a mapping, got a string`,
			},
		},
		{
			name: "template names required",
			doc:  "description: nothing\nsteps:\n  - {name: a, handler: {callable: c}}",
			bare: true,
			want: []string{`name: required`, `namespace_name: required`, `version: required`},
		},
		{
			name: "names must match the pattern",
			doc: `name: "bad name"
namespace_name: ns/1
version: "-1"
steps:
  - {name: "a b", handler: {callable: c}}
  - {name: ` + strings.Repeat("x", 129) + `, handler: {callable: c}}`,
			want: []string{
				`name: invalid name "bad name": must match ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`,
				`namespace_name: invalid namespace "ns/1": must match ^[a-z0-9_][a-z0-9_.-]{0,55}$ (lowercase letters, digits, '_', '.' and '-')`,
				`version: invalid name "-1": must match ^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$`,
				`steps[0].name: invalid name "a b": must match ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`,
				`steps[1].name: invalid name "` + strings.Repeat("x", 129) + `": must match ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`,
			},
		},
		{
			name: "no steps",
			doc:  "steps: []",
			want: []string{`steps: at least one step is required`},
		},
		{
			name: "missing steps",
			doc:  "description: d",
			want: []string{`steps: at least one step is required`},
		},
		{
			name: "bad step type",
			doc: `steps:
  - {name: a, type: teleport, handler: {callable: c}}`,
			want: []string{`steps[0].type: unknown step type "teleport"; allowed: standard, decision, deferred_convergence, batchable, batch_worker`},
		},
		{
			name: "type and step_type disagree",
			doc: `steps:
  - {name: a, type: standard, step_type: decision, handler: {callable: c}}`,
			want: []string{`steps[0].step_type: conflicts with type "standard"`},
		},
		{
			name: "bad type given as step_type is reported at step_type",
			doc: `steps:
  - {name: a, step_type: teleport, handler: {callable: c}}`,
			want: []string{`steps[0].step_type: unknown step type "teleport"; allowed: standard, decision, deferred_convergence, batchable, batch_worker`},
		},
		{
			name: "unknown keys at every level",
			doc: `stpes_extra: 1
steps:
  - name: a
    dependancies: [b]
    handler: {callabel: c, callable: c}
    retry: {max_attempt: 3}
    batch_config: {worker_templat: w}
    zzz: 1`,
			want: []string{
				`stpes_extra: unknown field; allowed: name, namespace_name, version, description, input_schema, steps, metadata, task_handler, system_dependencies, domain_events, lifecycle, environments, loaded_from`,
				`steps[0].dependancies: unknown field; did you mean "dependencies"?`,
				`steps[0].handler.callabel: unknown field; did you mean "callable"?`,
				`steps[0].retry.max_attempt: unknown field; did you mean "max_attempts"?`,
				`steps[0].batch_config.worker_templat: unknown field; did you mean "worker_template"?`,
				`steps[0].zzz: unknown field; allowed: name, description, type, step_type, handler, dependencies, depends_on, retry, timeout_seconds, batch_config, system_dependency, publishes_events, result_schema, lifecycle, composition`,
				`steps[0].batch_config: only allowed on batchable and batch_worker steps, not on standard`,
				`steps[0].batch_config.worker_template: required`,
			},
		},
		{
			name: "timeouts",
			doc: `steps:
  - {name: a, handler: {callable: c}, timeout_seconds: 0}
  - {name: b, handler: {callable: c}, timeout_seconds: 99999999}
  - {name: c, handler: {callable: c}, timeout_seconds: 2.5}`,
			want: []string{
				`steps[0].timeout_seconds: must be >= 1`,
				`steps[1].timeout_seconds: must be <= 604800`,
				`steps[2].timeout_seconds: must be an integer, got a number`,
			},
		},
		{
			name: "batch_config on a standard step",
			doc: `steps:
  - {name: a, handler: {callable: c}, batch_config: {worker_template: a}}`,
			want: []string{
				`steps[0].batch_config: only allowed on batchable and batch_worker steps, not on standard`,
				`steps[0].batch_config.worker_template: step "a" is of type standard; must be batch_worker`,
			},
		},
		{
			name: "batchable without batch_config or worker",
			doc: `steps:
  - {name: collect, type: batchable, handler: {callable: c}}`,
			want: []string{`steps[0].batch_config: required for batchable steps (or declare a batch_worker step that depends on "collect")`},
		},
		{
			name: "worker_template must name a batch_worker depending on the batchable",
			doc: `steps:
  - {name: b1, type: batchable, handler: {callable: c}, batch_config: {worker_template: nope}}
  - {name: b2, type: batchable, handler: {callable: c}, batch_config: {worker_template: plain}}
  - {name: b3, type: batchable, handler: {callable: c}, batch_config: {worker_template: w}}
  - {name: plain, handler: {callable: c}}
  - {name: w, type: batch_worker, dependencies: [b1], handler: {callable: c}}`,
			want: []string{
				`steps[0].batch_config.worker_template: unknown step "nope"`,
				`steps[1].batch_config.worker_template: step "plain" is of type standard; must be batch_worker`,
				`steps[2].batch_config.worker_template: batch_worker step "w" must depend on "b3"`,
			},
		},
		{
			name: "batch_config values",
			doc: `steps:
  - {name: b, type: batchable, handler: {callable: c}, batch_config: {worker_template: w, batch_size: 0, parallelism: 5000, failure_strategy: shrug}}
  - {name: w, type: batch_worker, dependencies: [b], handler: {callable: c}}`,
			want: []string{
				`steps[0].batch_config.batch_size: must be between 1 and 100000`,
				`steps[0].batch_config.parallelism: must be between 1 and 1000`,
				`steps[0].batch_config.failure_strategy: unknown failure strategy "shrug"; allowed: continue_on_failure, fail_fast, isolate`,
			},
		},
		{
			name: "batch_worker must depend on exactly one batchable",
			doc: `steps:
  - {name: a, handler: {callable: c}}
  - {name: w, type: batch_worker, dependencies: [a], handler: {callable: c}}`,
			want: []string{`steps[1].dependencies: a batch_worker step must depend on exactly one batchable step (the one that creates it)`},
		},
		{
			name: "only deferred_convergence may depend on a batch_worker",
			doc: `steps:
  - {name: b, type: batchable, handler: {callable: c}}
  - {name: w, type: batch_worker, dependencies: [b], handler: {callable: c}}
  - {name: total, type: deferred_convergence, dependencies: [w], handler: {callable: c}}
  - {name: peek, dependencies: [b, w], handler: {callable: c}}`,
			want: []string{`steps[3].dependencies[1]: only deferred_convergence steps may depend on batch_worker step "w"`},
		},
		{
			name: "invalid input schema",
			doc: `input_schema: {type: object, properties: {amount: {type: money}}, required: name}
steps:
  - {name: a, handler: {callable: c}}`,
			want: []string{
				`input_schema.properties.amount.type: invalid JSON Schema: value must be one of 'array', 'boolean', 'integer', 'null', 'number', 'object', 'string'`,
				`input_schema.properties.amount.type: invalid JSON Schema: must be array, got string`,
				`input_schema.required: invalid JSON Schema: must be array, got string`,
			},
		},
		{
			name: "input schema must be an object",
			doc: `input_schema: [1]
steps:
  - {name: a, handler: {callable: c}}`,
			want: []string{`input_schema: invalid JSON Schema: must be an object or a boolean`},
		},
		{
			name: "input schema may not load external references",
			doc: `input_schema: {$ref: "https://example.com/schema.json"}
steps:
  - {name: a, handler: {callable: c}}`,
			want: []string{`input_schema: invalid JSON Schema: failing loading "https://example.com/schema.json": external reference "https://example.com/schema.json" not allowed: input_schema must be self-contained`},
		},
		{
			name: "values not representable in JSON",
			doc: `steps:
  - {name: a, handler: {callable: c, initialization: {x: .inf, t: !custom 1}}}`,
			want: []string{
				`steps[0].handler.initialization.t: unsupported value "1" (tag !custom)`,
				`steps[0].handler.initialization.x: .inf cannot be represented in JSON`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := tt.doc
			if !tt.bare && !strings.HasPrefix(doc, "name") {
				doc = header + doc
			}
			got := problemsOf(t, doc)
			if !slices.Equal(sorted(got), sorted(tt.want)) {
				t.Errorf("problems:\n got  %q\n want %q", got, tt.want)
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestValidationReportsEveryProblemAtOnce(t *testing.T) {
	_, err := Parse(readTestdata(t, "many_problems.yaml"))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	want := []Problem{
		{Path: "name", Message: "required", Line: 1},
		{Path: "namespace_name", Message: `invalid namespace "bad namespace": must match ^[a-z0-9_][a-z0-9_.-]{0,55}$ (lowercase letters, digits, '_', '.' and '-')`, Line: 2},
		{Path: "input_schema.type", Message: "invalid JSON Schema: value must be one of 'array', 'boolean', 'integer', 'null', 'number', 'object', 'string'", Line: 4},
		{Path: "input_schema.type", Message: "invalid JSON Schema: must be array, got string", Line: 4},
		{Path: "steps[0].dependancies", Message: `unknown field; did you mean "dependencies"?`, Line: 9},
		{Path: "steps[0].retry.limit", Message: "must be >= 1", Line: 10},
		{Path: "steps[0].retry.backoff", Message: `unknown backoff "sometimes"; allowed: exponential, linear, fixed, fibonacci, none`, Line: 10},
		{Path: "steps[1].name", Message: `duplicate step name "charge" (first at steps[0])`, Line: 11},
		{Path: "steps[1].handler.callable", Message: "required", Line: 12},
		{Path: "steps[1].dependencies[1]", Message: `unknown step "ghost"`, Line: 13},
		{Path: "steps[2].type", Message: `unknown step type "teleport"; allowed: standard, decision, deferred_convergence, batchable, batch_worker`, Line: 15},
		{Path: "steps[2].dependencies[1]", Message: `step "ship" depends on itself`, Line: 16},
		{Path: "steps[3].batch_config", Message: `required for batchable steps (or declare a batch_worker step that depends on "collect")`, Line: 18},
	}
	if !slices.Equal(ve.Problems, want) {
		t.Errorf("problems:\n got  %+v\n want %+v", ve.Problems, want)
	}
	msg := err.Error()
	for _, p := range want {
		if !strings.Contains(msg, p.String()) {
			t.Errorf("Error() lacks %q", p.String())
		}
	}
	if !strings.HasPrefix(msg, "workflow: invalid template: name: required (line 1); namespace_name: ") {
		t.Errorf("Error() = %q", msg)
	}
}

func TestValidateTemplateBuiltInGo(t *testing.T) {
	tpl := &Template{
		Name: "built", NamespaceName: "ns", Version: "1",
		Steps: []Step{
			{Name: "a", Handler: Handler{Callable: "c"}},
			{Name: "b", Handler: Handler{Callable: "c"}, Dependencies: []string{"a"}, Retry: Retry{MaxAttempts: -2}},
			{Name: "c", Type: "bogus", Dependencies: []string{"b", "c"}},
		},
	}
	err := tpl.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	got := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		got[i] = p.String()
	}
	want := []string{
		`steps[1].retry.max_attempts: must be >= 1`,
		`steps[2].type: unknown step type "bogus"; allowed: standard, decision, deferred_convergence, batchable, batch_worker`,
		`steps[2].handler.callable: required`,
		`steps[2].dependencies[1]: step "c" depends on itself`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n got  %q\n want %q", got, want)
	}
	if _, err := tpl.Plan(RetryDefaults{}); !errors.As(err, &ve) {
		t.Errorf("Plan of an invalid template: err = %v", err)
	}
	if err := tpl.ValidateContext(nil); !errors.As(err, &ve) {
		t.Errorf("ValidateContext of an invalid template: err = %v", err)
	}

	// Fixed, it validates and plans without Parse; zero Type means standard.
	tpl.Steps[1].Retry.MaxAttempts = 2
	tpl.Steps[2] = Step{Name: "c", Handler: Handler{Callable: "c"}, Dependencies: []string{"b"}}
	if err := tpl.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := tpl.Plan(RetryDefaults{})
	if err != nil || len(p.Steps) != 3 || p.Steps[2].Type != StepStandard || p.Steps[1].MaxAttempts != 2 {
		t.Fatalf("plan = %+v, %v", p, err)
	}
	// And it serialises to something Parse accepts.
	b, err := json.Marshal(tpl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err != nil {
		t.Fatalf("Parse(json.Marshal(built)): %v\n%s", err, b)
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{Path: "steps[0].name", Message: "required"}, "steps[0].name: required"},
		{Problem{Path: "steps[0].name", Message: "required", Line: 7}, "steps[0].name: required (line 7)"},
		{Problem{Message: "invalid YAML: oops", Line: 3}, "line 3: invalid YAML: oops"},
		{Problem{Message: "empty document"}, "empty document"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
	e := &ValidationError{Problems: []Problem{{Path: "a", Message: "b"}, {Path: "c", Message: "d"}}}
	if got := e.Error(); got != "workflow: invalid input: a: b; c: d" {
		t.Errorf("Error() = %q", got)
	}
}

// Tasker always runs a step's first attempt and retries while attempts <
// max_attempts, so its templates say `max_attempts: 0` (often with
// `retryable: false`) for "run once": that loads as one attempt, with a
// warning unless retryable is false. limit, the runner's own alias, is
// refused at 0 unless retryable is false.
func TestZeroAttempts(t *testing.T) {
	tpl := mustParse(t, []byte(header+`steps:
  - {name: a, handler: {callable: x}, retry: {retryable: false, max_attempts: 0, backoff: exponential}}
  - {name: b, handler: {callable: x}, retry: {retryable: false, limit: 0}}
  - {name: c, handler: {callable: x}, retry: {retryable: true, max_attempts: 0}}
  - {name: d, handler: {callable: x}, retry: {max_attempts: 0}}`))
	for _, s := range tpl.Steps {
		if s.Retry.MaxAttempts != 1 {
			t.Errorf("%s: MaxAttempts = %d, want 1", s.Name, s.Retry.MaxAttempts)
		}
	}
	if got, want := warningsOf(tpl), []string{"steps[2].retry.max_attempts: " + warnZeroAttempts, "steps[3].retry.max_attempts: " + warnZeroAttempts}; !slices.Equal(got, want) {
		t.Errorf("warnings:\n got  %q\n want %q", got, want)
	}
	got := problemsOf(t, header+`steps:
  - {name: a, handler: {callable: x}, retry: {retryable: true, limit: 0}}
  - {name: b, handler: {callable: x}, retry: {limit: 0, max_attempts: 0}}`)
	want := []string{`steps[0].retry.limit: must be >= 1`, `steps[1].retry.limit: must be >= 1`}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n got  %q\n want %q", got, want)
	}
}

// warningsOf returns a parsed template's warnings as "path: message".
func warningsOf(tpl *Template) []string {
	var out []string
	for _, w := range tpl.Warnings() {
		out = append(out, w.Path+": "+w.Message)
	}
	return out
}
