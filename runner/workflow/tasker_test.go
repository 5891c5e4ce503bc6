package workflow

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The Tasker corpus (testdata/tasker) holds task templates in Tasker's
// format, written from tasker-core's types (TaskTemplate, StepDefinition
// and what they nest, in crates/tasker-shared/src/models/core/task_template,
// as of tasker-core c8733f95) and its documented format
// (schemas/task-template.json). Tasker reads templates with serde: unknown
// keys are ignored, `depends_on` is an alias of dependencies and
// `step_type` of type.

// taskerCorpusWarnings lists, per file of the corpus, the warnings it must
// load with: every file must load, and with exactly these.
var taskerCorpusWarnings = map[string][]string{
	"order_processing.yaml": {
		"loaded_from: " + warnLoadedFrom,
		"steps[0].handler.resolver: " + warnResolver,
		"steps[1].publishes_events: " + warnPublishes,
		"steps[4].publishes_events: " + warnPublishes,
		"environments: " + warnEnvironments,
		"lifecycle: " + warnLifecycle,
	},
	"dsl_aliases.yaml": nil,
	"retry_variants.yaml": {
		"steps[0].retry.initial_delay: " + warnRetryDelay,
		"steps[0].retry.max_delay: " + warnRetryDelay,
		"steps[1].retry.limit: ignored: max_attempts (4) applies, as in Tasker, which ignores limit",
		"steps[2].retry.limit: " + warnLimit,
		"steps[3].retry.max_attempts: " + warnZeroAttempts,
	},
	"batch_csv.yaml":           {"steps[1].lifecycle: " + warnStepLifecycle},
	"batch_worker_config.yaml": nil,
	"legacy_task_handler.yaml": {"task_handler: " + warnTaskHandler},
	"serialized.json":          nil,
}

func readTaskerCorpus(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "tasker", "*"))
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs[filepath.Base(f)] = b
	}
	if got, want := slices.Sorted(maps.Keys(docs)), slices.Sorted(maps.Keys(taskerCorpusWarnings)); !slices.Equal(got, want) {
		t.Fatalf("testdata/tasker holds %q; taskerCorpusWarnings lists %q", got, want)
	}
	return docs
}

func TestTaskerCorpusLoads(t *testing.T) {
	for name, doc := range readTaskerCorpus(t) {
		t.Run(name, func(t *testing.T) {
			tpl := mustParse(t, doc)
			if got, want := warningsOf(tpl), taskerCorpusWarnings[name]; !slices.Equal(got, want) {
				t.Errorf("warnings:\n got  %q\n want %q", got, want)
			}
			for _, w := range tpl.Warnings() {
				if w.Line == 0 && !strings.HasSuffix(name, ".json") {
					t.Errorf("warning %s has no line", w)
				}
			}
			// It is stored as JSON and read back by runners: same template,
			// and the plan is computed.
			b, err := json.Marshal(tpl)
			if err != nil {
				t.Fatal(err)
			}
			back := mustParse(t, b)
			if b2, _ := json.Marshal(back); !bytes.Equal(b, b2) {
				t.Errorf("round trip changed the template:\n%s\n%s", b, b2)
			}
			if _, err := back.Plan(RetryDefaults{}); err != nil {
				t.Errorf("Plan: %v", err)
			}
			if bytes.Contains(b, []byte("loaded_from")) || bytes.Contains(b, []byte("initial_delay")) {
				t.Errorf("keys Tasker ignores are stored: %s", b)
			}
		})
	}
}

// Each file means to Tasker what it means here.
func TestTaskerCorpusMeaning(t *testing.T) {
	docs := readTaskerCorpus(t)
	parse := func(name string) *Template { t.Helper(); return mustParse(t, docs[name]) }

	t.Run("order_processing", func(t *testing.T) { corpusOrderProcessing(t, parse) })
	t.Run("dsl_aliases", func(t *testing.T) { corpusDSLAliases(t, parse) })
	t.Run("retry_variants", func(t *testing.T) { corpusRetryVariants(t, parse) })
	t.Run("batches", func(t *testing.T) { corpusBatches(t, parse) })
	t.Run("legacy", func(t *testing.T) { corpusLegacy(t, parse) })
	t.Run("serialized", func(t *testing.T) { corpusSerialized(t, parse) })
}

// corpusOrderProcessing checks what the corpus's order_processing.yaml means.
func corpusOrderProcessing(t *testing.T, parse func(string) *Template) {
	tpl := parse("order_processing.yaml")
	if tpl.Version != "2.1.0" || tpl.NamespaceName != "ecommerce" || len(tpl.InputSchema) == 0 {
		t.Errorf("template = %s/%s@%s", tpl.NamespaceName, tpl.Name, tpl.Version)
	}
	v := tpl.Step("validate_cart")
	if h := v.Handler; h.Callable != "Ecommerce::StepHandlers::ValidateCartHandler" || h.Method != "validate" || h.Resolver != "explicit_mapping" ||
		h.Initialization["tax_rate"] != 0.08 || h.Initialization["max_items"] != 50 {
		t.Errorf("validate_cart handler = %+v", h)
	}
	if r := v.Retry; r.MaxAttempts != 3 || r.Strategy != BackoffExponential || r.BackoffBaseMs != 1000 || r.MaxBackoffMs != 30000 || v.TimeoutSeconds != 30 {
		t.Errorf("validate_cart retry = %+v, timeout %d", r, v.TimeoutSeconds)
	}
	if p := tpl.Step("process_payment"); p.Retry.Strategy != BackoffFibonacci || p.Retry.MaxAttempts != 5 || !bytes.Contains(p.PublishesEvents, []byte(`"publisher":"PaymentEventPublisher"`)) {
		t.Errorf("process_payment = %+v", p)
	}
	if s := tpl.Step("ship_order"); !slices.Equal(s.Dependencies, []string{"process_payment", "update_inventory"}) || s.Retry.Retryable == nil || *s.Retry.Retryable || s.Retry.Strategy != BackoffNone {
		t.Errorf("ship_order = %+v", s)
	}
	// Kept as written although they have no effect.
	for key, raw := range map[string]json.RawMessage{"environments": tpl.Environments, "lifecycle": tpl.Lifecycle, "metadata": tpl.Metadata, "domain_events": tpl.DomainEvents, "system_dependencies": tpl.SystemDependencies} {
		if len(raw) == 0 || !json.Valid(raw) {
			t.Errorf("%s not kept: %q", key, raw)
		}
	}
	if !bytes.Contains(tpl.Environments, []byte(`"gateway":"stripe_test"`)) || !bytes.Contains(tpl.Lifecycle, []byte(`"auto_dlq_on_timeout":false`)) {
		t.Errorf("environments = %s, lifecycle = %s", tpl.Environments, tpl.Lifecycle)
	}
	// The overrides are not applied.
	if p := tpl.Step("process_payment"); p.TimeoutSeconds != 45 || p.Handler.Initialization["gateway"] != "stripe" {
		t.Errorf("process_payment has an environment's override: %+v", p)
	}
}

// corpusDSLAliases checks what the corpus's dsl_aliases.yaml means.
func corpusDSLAliases(t *testing.T, parse func(string) *Template) {
	tpl := parse("dsl_aliases.yaml")
	for name, want := range map[string][]string{
		"fetch_article":      {},
		"render_html":        {"fetch_article"},
		"render_amp":         {"fetch_article"},
		"choose_channels":    {"render_html", "render_amp"},
		"record_publication": {"publish_web", "publish_newsletter"},
	} {
		if got := tpl.Step(name).Dependencies; !slices.Equal(got, want) {
			t.Errorf("%s depends on %q, want %q", name, got, want)
		}
	}
	if tpl.Step("choose_channels").Type != StepDecision || tpl.Step("record_publication").Type != StepDeferredConvergence || tpl.Step("render_amp").Type != StepStandard {
		t.Errorf("step_type not read as type: %+v", tpl.Steps)
	}
	// A step without retry takes the package defaults.
	p, err := tpl.Plan(RetryDefaults{})
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Steps[0]; s.MaxAttempts != 3 || s.Retry.BackoffBaseMs != 1000 || s.Retry.MaxBackoffMs != MaxBackoffMsDefault || s.Retry.Strategy != BackoffExponential || !*s.Retry.Retryable {
		t.Errorf("defaults = %+v", s)
	}
	if !slices.Equal(p.Deferred, []string{"publish_web", "publish_newsletter", "record_publication"}) {
		t.Errorf("deferred = %q", p.Deferred)
	}
}

// corpusRetryVariants checks what the corpus's retry_variants.yaml means.
func corpusRetryVariants(t *testing.T, parse func(string) *Template) {
	tpl := parse("retry_variants.yaml")
	for name, want := range map[string]int{"legacy_delays": 3, "limit_disagrees": 4, "limit_only": 5, "zero_attempts": 1, "run_once": 1, "fibonacci": 6} {
		if got := tpl.Step(name).Retry.MaxAttempts; got != want {
			t.Errorf("%s: max_attempts %d, want %d", name, got, want)
		}
	}
	if r := tpl.Step("legacy_delays").Retry; r.BackoffBaseMs != 1000 || r.MaxBackoffMs != 30000 {
		t.Errorf("legacy_delays = %+v", r)
	}
}

// corpusBatches checks what the corpus's batch_csv.yaml and
// batch_worker_config.yaml mean.
func corpusBatches(t *testing.T, parse func(string) *Template) {
	tpl := parse("batch_csv.yaml")
	b := tpl.Step("analyze_csv").BatchConfig
	if b == nil || *b != (BatchConfig{BatchSize: 200, Parallelism: 5, CursorField: "row_number", WorkerTemplate: "process_csv_batch", FailureStrategy: FailFast}) {
		t.Errorf("batch_config = %+v", b)
	}
	created := map[string]bool{"analyze_csv": true}
	exp, err := tpl.ExpandBatch("analyze_csv", "process_csv_batch", func(n string) bool { return created[n] })
	if err != nil || len(exp) != 2 || exp[0].Name != "process_csv_batch" || exp[1].Name != "aggregate_results" {
		t.Errorf("ExpandBatch = %+v, %v", exp, err)
	}
	tpl = parse("batch_worker_config.yaml")
	if b := tpl.Step("reconcile_shelf").BatchConfig; b == nil || b.FailureStrategy != Isolate || b.CursorField != "shelf_id" {
		t.Errorf("reconcile_shelf batch_config = %+v", b)
	}
	if b := tpl.Step("plan_bins").BatchConfig; b == nil || b.FailureStrategy != ContinueOnFailure || b.WorkerTemplate != "reconcile_bin" {
		t.Errorf("plan_bins batch_config = %+v", b)
	}
}

// corpusLegacy checks what the corpus's legacy_task_handler.yaml means.
func corpusLegacy(t *testing.T, parse func(string) *Template) {
	tpl := parse("legacy_task_handler.yaml")
	if !bytes.Contains(tpl.TaskHandler, []byte("CreditCardPaymentHandler")) || !bytes.Contains(tpl.Metadata, []byte(`"notes":"Migrated from the Rails engine"`)) {
		t.Errorf("task_handler = %s, metadata = %s", tpl.TaskHandler, tpl.Metadata)
	}
	v := tpl.Step("validate_payment")
	if v.BatchConfig != nil || v.TimeoutSeconds != 0 || v.Description != "" || v.Retry.BackoffBaseMs != 0 || len(v.Handler.Initialization) != 0 {
		t.Errorf("nulls did not load as unset: %+v", v)
	}
}

// corpusSerialized checks what the corpus's serialized.json means.
func corpusSerialized(t *testing.T, parse func(string) *Template) {
	tpl := parse("serialized.json")
	s1, s2 := tpl.Step("linear_step_1"), tpl.Step("linear_step_2")
	if s1.Handler.Initialization["operation"] != "square" || s1.TimeoutSeconds != 10 || s1.BatchConfig != nil || s2.Handler.Method != "call" ||
		!slices.Equal(s2.Dependencies, []string{"linear_step_1"}) || len(s2.ResultSchema) == 0 {
		t.Errorf("steps = %+v", tpl.Steps)
	}
}

// The fields of tasker-core's template types (and their serde aliases, and
// the value of each enum the runner acts on), as "Type.field" or
// "Enum=value". TestTaskerCorpusCoversTaskerTypes checks that the corpus
// uses each one, so that a field Tasker accepts cannot go untested.
var taskerFields = []string{
	"TaskTemplate.name", "TaskTemplate.namespace_name", "TaskTemplate.version", "TaskTemplate.description",
	"TaskTemplate.metadata", "TaskTemplate.system_dependencies", "TaskTemplate.domain_events",
	"TaskTemplate.input_schema", "TaskTemplate.steps", "TaskTemplate.environments", "TaskTemplate.lifecycle",
	"TaskTemplate.loaded_from", // in Tasker's JSON Schema and its templates, not in the Rust type
	"TemplateMetadata.author", "TemplateMetadata.tags", "TemplateMetadata.documentation_url",
	"TemplateMetadata.created_at", "TemplateMetadata.updated_at",
	"SystemDependencies.primary", "SystemDependencies.secondary",
	"DomainEventDefinition.name", "DomainEventDefinition.description", "DomainEventDefinition.schema",
	"LifecycleConfig.max_duration_minutes", "LifecycleConfig.max_waiting_for_dependencies_minutes",
	"LifecycleConfig.max_waiting_for_retry_minutes", "LifecycleConfig.max_steps_in_process_minutes",
	"LifecycleConfig.staleness_action", "LifecycleConfig.auto_fail_on_timeout", "LifecycleConfig.auto_dlq_on_timeout",
	"EnvironmentOverride.steps",
	"StepOverride.name", "StepOverride.handler", "StepOverride.timeout_seconds", "StepOverride.retry",
	"HandlerOverride.initialization",
	"StepDefinition.name", "StepDefinition.description", "StepDefinition.handler",
	"StepDefinition.type", "StepDefinition.step_type", "StepDefinition.system_dependency",
	"StepDefinition.dependencies", "StepDefinition.depends_on", "StepDefinition.retry",
	"StepDefinition.timeout_seconds", "StepDefinition.publishes_events", "StepDefinition.batch_config",
	"StepDefinition.result_schema",
	// StepDefinition.composition is refused: see TestTaskerRefused.
	"StepType=standard", "StepType=decision", "StepType=deferred_convergence", "StepType=batchable", "StepType=batch_worker",
	"HandlerDefinition.callable", "HandlerDefinition.method", "HandlerDefinition.resolver", "HandlerDefinition.initialization",
	"RetryConfiguration.retryable", "RetryConfiguration.max_attempts", "RetryConfiguration.backoff",
	"RetryConfiguration.backoff_base_ms", "RetryConfiguration.max_backoff_ms",
	"BackoffStrategy=none", "BackoffStrategy=linear", "BackoffStrategy=exponential", "BackoffStrategy=fibonacci",
	"EventDeclaration.name", "EventDeclaration.description", "EventDeclaration.condition", "EventDeclaration.schema",
	"EventDeclaration.delivery_mode", "EventDeclaration.publisher",
	"BatchConfiguration.batch_size", "BatchConfiguration.parallelism", "BatchConfiguration.cursor_field",
	"BatchConfiguration.worker_template", "BatchConfiguration.failure_strategy",
	"FailureStrategy=continue_on_failure", "FailureStrategy=fail_fast", "FailureStrategy=isolate",
}

func TestTaskerCorpusCoversTaskerTypes(t *testing.T) {
	seen := map[string]bool{}
	mark := func(typ string, v any) {
		if m, ok := v.(map[string]any); ok {
			for k := range m {
				seen[typ+"."+k] = true
			}
		}
	}
	each := func(v any, fn func(any)) {
		if l, ok := v.([]any); ok {
			for _, x := range l {
				fn(x)
			}
		}
	}
	field := func(v any, key string) any {
		m, _ := v.(map[string]any)
		return m[key]
	}
	enum := func(typ string, v any) {
		if s, ok := v.(string); ok {
			seen[typ+"="+s] = true
		}
	}
	for name, doc := range readTaskerCorpus(t) {
		var tpl any
		if err := yaml.Unmarshal(doc, &tpl); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		mark("TaskTemplate", tpl)
		mark("TemplateMetadata", field(tpl, "metadata"))
		mark("SystemDependencies", field(tpl, "system_dependencies"))
		each(field(tpl, "domain_events"), func(e any) { mark("DomainEventDefinition", e) })
		mark("LifecycleConfig", field(tpl, "lifecycle"))
		if envs, ok := field(tpl, "environments").(map[string]any); ok {
			for _, env := range envs {
				mark("EnvironmentOverride", env)
				each(field(env, "steps"), func(o any) {
					mark("StepOverride", o)
					mark("HandlerOverride", field(o, "handler"))
				})
			}
		}
		each(field(tpl, "steps"), func(s any) {
			mark("StepDefinition", s)
			enum("StepType", field(s, "type"))
			enum("StepType", field(s, "step_type"))
			mark("HandlerDefinition", field(s, "handler"))
			mark("RetryConfiguration", field(s, "retry"))
			enum("BackoffStrategy", field(field(s, "retry"), "backoff"))
			each(field(s, "publishes_events"), func(e any) { mark("EventDeclaration", e) })
			mark("BatchConfiguration", field(s, "batch_config"))
			enum("FailureStrategy", field(field(s, "batch_config"), "failure_strategy"))
		})
	}
	for _, f := range taskerFields {
		if !seen[f] {
			t.Errorf("no template of testdata/tasker uses %s", f)
		}
	}
}

// What Tasker accepts but the runner cannot honour is refused, naming the
// path; misspellings of the keys above are refused with a hint; problems
// under an alias are reported at the key as written.
func TestTaskerRefused(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{
			name: "composition",
			doc: `steps:
  - name: a
    handler: {callable: __composition__}
    composition: {outcome: {description: x}, invocations: []}`,
			want: []string{"steps[0].composition: " + errComposition},
		},
		{
			name: "depends_on conflicts with dependencies",
			doc: `steps:
  - {name: a, handler: {callable: c}}
  - {name: b, handler: {callable: c}}
  - {name: d, handler: {callable: c}, dependencies: [a], depends_on: [b]}`,
			want: []string{"steps[2].depends_on: conflicts with dependencies; depends_on is an alias of dependencies"},
		},
		{
			name: "problems under depends_on",
			doc: `steps:
  - {name: a, handler: {callable: c}}
  - {name: b, handler: {callable: c}, depends_on: [a, nope, a]}`,
			want: []string{`steps[1].depends_on[1]: unknown step "nope"`, `steps[1].depends_on[2]: duplicate dependency "a"`},
		},
		{
			name: "misspellings",
			doc: `loaded_form: x.yaml
steps:
  - name: a
    depend_on: []
    step_typ: standard
    handler: {callable: c, resolvr: r}
    retry: {intial_delay: 1, max_dely: 2, limt: 1}`,
			want: []string{
				`loaded_form: unknown field; did you mean "loaded_from"?`,
				`steps[0].depend_on: unknown field; did you mean "depends_on"?`,
				`steps[0].step_typ: unknown field; did you mean "step_type"?`,
				`steps[0].handler.resolvr: unknown field; did you mean "resolver"?`,
				`steps[0].retry.intial_delay: unknown field; did you mean "initial_delay"?`,
				`steps[0].retry.max_dely: unknown field; did you mean "max_delay"?`,
				`steps[0].retry.limt: unknown field; did you mean "limit"?`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := problemsOf(t, header+tc.doc)
			if !slices.Equal(sorted(got), sorted(tc.want)) {
				t.Errorf("problems:\n got  %q\n want %q", got, tc.want)
			}
		})
	}
	// A null composition is no composition.
	mustParse(t, []byte(header+"steps:\n  - {name: a, handler: {callable: c}, composition: null}\n"))
}

// Keys without effect that are null or empty get no warning: Tasker's
// serializer writes them so.
func TestNoWarningsForEmptyKeys(t *testing.T) {
	tpl := mustParse(t, []byte(header+`loaded_from: null
task_handler: {}
lifecycle: {}
environments: {}
domain_events: []
steps:
  - name: a
    handler: {callable: c, resolver: null}
    lifecycle: null
    publishes_events: []
    composition: null
    retry: {initial_delay: null, max_delay: ~}
`))
	if w := tpl.Warnings(); len(w) != 0 {
		t.Errorf("warnings: %v", w)
	}
}

// An invalid template's warnings come with its problems.
func TestWarningsOfInvalidTemplate(t *testing.T) {
	_, err := Parse([]byte(header + "loaded_from: x\nsteps:\n  - {name: a, handler: {}}\n"))
	ve, ok := err.(*ValidationError)
	if !ok || len(ve.Problems) != 1 || len(ve.Warnings) != 1 || ve.Warnings[0].Path != "loaded_from" || ve.Warnings[0].Line != 4 {
		t.Fatalf("err = %#v", err)
	}
	// Warnings do not make the error message.
	if strings.Contains(err.Error(), "loaded_from") {
		t.Errorf("Error() = %q", err)
	}
}
