package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseSamples(t *testing.T) {
	tests := []struct {
		file      string
		name      string
		namespace string
		version   string
		steps     []string
	}{
		{"diamond.yaml", "diamond", "examples", "1.0.0", []string{"a", "b", "c", "d"}},
		{"diamond.json", "diamond", "examples", "1.0.0", []string{"a", "b", "c", "d"}},
		{"linear10.yaml", "linear_ten", "examples", "2", []string{"s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10"}},
		{"tasker_order.yaml", "order_fulfillment", "fulfillment", "1.2.0", []string{"receive_order", "charge_payment", "reserve_stock", "ship", "notify_customer"}},
		{"approval.yaml", "approval_routing", "approvals", "1.0.0", []string{"validate_request", "routing_decision", "finalize_approval", "auto_approve", "manager_approval", "finance_review", "archive", "audit_log"}},
		{"csv_batch.yaml", "csv_inventory", "csv_processing", "1.0.0", []string{"analyze_csv", "process_csv_batch", "aggregate_csv_results", "publish_report"}},
		{"decision_batch.yaml", "decision_batch", "combined", "1.0.0", []string{"start", "evens", "odds", "route", "even_analyzer", "even_worker", "even_total", "odd_analyzer", "odd_worker", "odd_total"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			tpl := mustParse(t, readTestdata(t, tt.file))
			if tpl.Name != tt.name || tpl.NamespaceName != tt.namespace || tpl.Version != tt.version {
				t.Errorf("got %s/%s@%s, want %s/%s@%s", tpl.NamespaceName, tpl.Name, tpl.Version, tt.namespace, tt.name, tt.version)
			}
			var names []string
			for _, s := range tpl.Steps {
				names = append(names, s.Name)
				if s.Type == "" {
					t.Errorf("step %s: Type not normalised", s.Name)
				}
			}
			if !slices.Equal(names, tt.steps) {
				t.Errorf("steps = %v, want %v", names, tt.steps)
			}
			if err := tpl.Validate(); err != nil {
				t.Errorf("Validate after Parse: %v", err)
			}
		})
	}
}

func TestParseTaskerTemplate(t *testing.T) {
	tpl := mustParse(t, readTestdata(t, "tasker_order.yaml"))

	// Top-level keys the runner does not use are preserved as JSON.
	for name, raw := range map[string]json.RawMessage{
		"metadata":            tpl.Metadata,
		"task_handler":        tpl.TaskHandler,
		"system_dependencies": tpl.SystemDependencies,
		"domain_events":       tpl.DomainEvents,
		"lifecycle":           tpl.Lifecycle,
		"environments":        tpl.Environments,
	} {
		if !json.Valid(raw) || len(raw) == 0 {
			t.Errorf("%s not preserved: %q", name, raw)
		}
	}
	if !bytes.Contains(tpl.Metadata, []byte(`"author":"Fulfillment team"`)) || !bytes.Contains(tpl.Metadata, []byte(`"documentation_url":null`)) {
		t.Errorf("metadata = %s", tpl.Metadata)
	}
	if !bytes.Contains(tpl.Environments, []byte(`"name":"ALL"`)) {
		t.Errorf("environments = %s", tpl.Environments)
	}

	receive, charge, reserve, ship, notify := tpl.Step("receive_order"), tpl.Step("charge_payment"), tpl.Step("reserve_stock"), tpl.Step("ship"), tpl.Step("notify_customer")
	if receive.SystemDependency != "" || string(receive.PublishesEvents) != "[]" || receive.Description == "" {
		t.Errorf("receive_order extras: %+v", receive)
	}
	if receive.Handler.Initialization["currency"] != "EUR" || receive.TimeoutSeconds != 15 {
		t.Errorf("receive_order handler/timeout: %+v", receive)
	}
	// retry: *std_retry (an alias) and a merge key overriding one field.
	if r := receive.Retry; r.MaxAttempts != 3 || r.BackoffBaseMs != 500 || r.MaxBackoffMs != 10000 || r.Strategy != BackoffExponential || r.Retryable == nil || !*r.Retryable {
		t.Errorf("receive_order retry = %+v", r)
	}
	if r := charge.Retry; r.MaxAttempts != 5 || r.BackoffBaseMs != 500 {
		t.Errorf("charge_payment retry (merge key) = %+v", r)
	}
	if charge.Handler.Method != "charge" || charge.Handler.Resolver != "explicit_mapping" || charge.SystemDependency != "payments_gateway" {
		t.Errorf("charge_payment handler = %+v", charge.Handler)
	}
	if !bytes.Contains(charge.PublishesEvents, []byte("payment.captured")) || !bytes.Contains(charge.ResultSchema, []byte("charge_id")) {
		t.Errorf("charge_payment extras not preserved")
	}
	if r := reserve.Retry; r.MaxAttempts != 1 || r.Retryable == nil || *r.Retryable {
		t.Errorf("reserve_stock retry (limit alias) = %+v", r)
	}
	if !bytes.Contains(ship.Lifecycle, []byte("max_steps_in_process_minutes")) {
		t.Errorf("ship lifecycle = %s", ship.Lifecycle)
	}
	if notify.Retry.Strategy != BackoffLinear {
		t.Errorf("notify retry = %+v", notify.Retry)
	}
	if tpl.Step("nope") != nil {
		t.Error("Step(nope) != nil")
	}
}

func TestParseYAMLAndJSONAgree(t *testing.T) {
	y := mustParse(t, readTestdata(t, "diamond.yaml"))
	j := mustParse(t, readTestdata(t, "diamond.json"))
	yb, _ := json.Marshal(y)
	jb, _ := json.Marshal(j)
	if !bytes.Equal(yb, jb) {
		t.Errorf("YAML and JSON differ:\n%s\n%s", yb, jb)
	}
	// JSON that yaml.v3 alone would reject (the \/ escape), on one line.
	doc := `{"name":"esc","namespace_name":"ns","version":"1","steps":[{"name":"a","handler":{"callable":"x\/y","initialization":{"n":1,"f":1.5,"big":1e300,"s":"\u00e9"}}}]}`
	tpl := mustParse(t, []byte(doc))
	h := tpl.Steps[0].Handler
	if h.Callable != "x/y" || h.Initialization["n"] != 1 || h.Initialization["f"] != 1.5 || h.Initialization["s"] != "é" {
		t.Errorf("handler = %+v", h)
	}
	// A YAML flow mapping that is not JSON still parses as YAML.
	tpl = mustParse(t, []byte(`{name: flow, namespace_name: ns, version: 1, steps: [{name: a, handler: {callable: c}}]}`))
	if tpl.Name != "flow" || tpl.Version != "1" {
		t.Errorf("flow YAML: %+v", tpl)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, file := range []string{"diamond.yaml", "linear10.yaml", "tasker_order.yaml", "approval.yaml", "csv_batch.yaml", "decision_batch.yaml"} {
		t.Run(file, func(t *testing.T) {
			orig := mustParse(t, readTestdata(t, file))
			b1, err := json.Marshal(orig)
			if err != nil {
				t.Fatal(err)
			}
			var back Template
			if err := json.Unmarshal(b1, &back); err != nil {
				t.Fatalf("Unmarshal: %v\n%s", err, b1)
			}
			b2, _ := json.Marshal(&back)
			if !bytes.Equal(b1, b2) {
				t.Errorf("round trip changed the template:\n%s\n%s", b1, b2)
			}
			p1, _ := orig.Plan(RetryDefaults{})
			p2, err := back.Plan(RetryDefaults{})
			if err != nil {
				t.Fatal(err)
			}
			j1, _ := json.Marshal(p1)
			j2, _ := json.Marshal(p2)
			if !bytes.Equal(j1, j2) {
				t.Errorf("plans differ after round trip")
			}
			// Numbers keep their Go types (int stays int).
			for i := range orig.Steps {
				for k, v := range orig.Steps[i].Handler.Initialization {
					if w := back.Steps[i].Handler.Initialization[k]; fmt.Sprintf("%T %v", v, v) != fmt.Sprintf("%T %v", w, w) {
						t.Errorf("initialization %s: %T %v became %T %v", k, v, v, w, w)
					}
				}
			}
		})
	}
}

func TestJSONUnmarshalValidates(t *testing.T) {
	var tpl Template
	err := json.Unmarshal([]byte(`{"name":"x","namespace_name":"ns","version":"1","steps":[{"name":"a","handler":{"callable":"c"},"dependencies":["zz"]}]}`), &tpl)
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].Path != "steps[0].dependencies[0]" {
		t.Fatalf("err = %v", err)
	}
	// Within a larger document too.
	var wrapper struct {
		Definition *Template `json:"definition"`
	}
	if err := json.Unmarshal([]byte(`{"definition":{"name":"x","namespace_name":"ns","version":"1","steps":[{"name":"a","handler":{"callable":"c"}}]}}`), &wrapper); err != nil {
		t.Fatal(err)
	}
	if p, err := wrapper.Definition.Plan(RetryDefaults{}); err != nil || len(p.Steps) != 1 {
		t.Fatalf("plan = %+v, %v", p, err)
	}
}

func TestParseSyntaxErrors(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		wantLine int
		want     string
	}{
		// yaml.v3 reports the line where the enclosing block starts.
		{"yaml indentation", "name: x\nsteps:\n  - name: a\n   handler: b\n", 2, "invalid YAML: did not find expected '-' indicator"},
		{"yaml unclosed flow", "name: x\nsteps: [a, b\nversion: 1\n", -1, "invalid YAML"},
		{"yaml tab", "name: x\n\tversion: 1\n", 2, "invalid YAML"},
		{"duplicate key", "name: x\nversion: 1\nname: y\n", 3, "duplicate key"},
		{"json syntax", "{\n  \"name\": \"x\",\n  \"steps\": [,]\n}\n", 3, "invalid JSON"},
		{"json trailing data", "{\"name\": \"x\"}\n{}\n", 2, "unexpected data"},
		{"json truncated", "{\"name\": \"x\",\n", -1, "invalid JSON"},
		{"json duplicate key", "{\"name\": \"x\",\n\"name\": \"y\"}\n", 2, "duplicate key"},
		{"empty", "", 0, "empty document"},
		{"comments only", "# nothing\n", 0, "empty document"},
		{"two documents", "name: a\n---\nname: b\n", 2, "more than one document"},
		{"not a mapping", "- a\n- b\n", 1, "must be a mapping, got a list"},
		{"scalar", "hello\n", 0, "must be a mapping, got a string"},
		{"custom tag", "!foo 1\n", 0, `must be a mapping, got a value tagged "!foo"`},
		{"custom tag not UTF-8", "!%C0%80 1\n", 0, `must be a mapping, got a value tagged "!\xc0\x80"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want *ValidationError", err)
			}
			p := ve.Problems[0]
			if !strings.Contains(p.Message, tt.want) {
				t.Errorf("problem = %+v, want %q", p, tt.want)
			}
			switch {
			case tt.wantLine > 0 && p.Line != tt.wantLine:
				t.Errorf("problem = %+v, want line %d", p, tt.wantLine)
			case tt.wantLine < 0 && p.Line < 1:
				t.Errorf("problem = %+v, want a line", p)
			}
			if p.Line > 0 && !strings.Contains(err.Error(), fmt.Sprintf("line %d", p.Line)) {
				t.Errorf("Error() = %q does not name line %d", err, p.Line)
			}
		})
	}
}

func TestParseSizeLimits(t *testing.T) {
	t.Run("bytes", func(t *testing.T) {
		doc := append([]byte("name: big\ndescription: "), bytes.Repeat([]byte("x"), MaxTemplateBytes)...)
		_, err := Parse(doc)
		if !errors.Is(err, ErrTemplateTooLarge) {
			t.Fatalf("err = %v, want ErrTemplateTooLarge", err)
		}
	})
	linear := func(n int) []byte {
		var b strings.Builder
		b.WriteString("name: long\nnamespace_name: ns\nversion: 1\nsteps:\n")
		for i := range n {
			fmt.Fprintf(&b, "  - {name: s%d, handler: {callable: c}", i)
			if i > 0 {
				fmt.Fprintf(&b, ", dependencies: [s%d]", i-1)
			}
			b.WriteString("}\n")
		}
		return []byte(b.String())
	}
	t.Run("max steps", func(t *testing.T) {
		tpl := mustParse(t, linear(MaxSteps))
		p, err := tpl.Plan(RetryDefaults{})
		if err != nil {
			t.Fatal(err)
		}
		last := p.Steps[MaxSteps-1]
		if len(last.Ancestors) != MaxSteps-1 || last.Ancestors[0] != 0 || last.Ancestors[MaxSteps-2] != MaxSteps-2 {
			t.Errorf("last step has %d ancestors", len(last.Ancestors))
		}
	})
	t.Run("too many steps", func(t *testing.T) {
		_, err := Parse(linear(MaxSteps + 1))
		var ve *ValidationError
		if !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].Path != "steps" ||
			ve.Problems[0].Message != fmt.Sprintf("%d steps; at most %d are allowed", MaxSteps+1, MaxSteps) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("alias bomb", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
		for i := 1; i <= 9; i++ {
			fmt.Fprintf(&b, "x-a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
		}
		b.WriteString("name: bomb\nnamespace_name: ns\nversion: 1\nsteps:\n  - name: a\n    handler: {callable: c, initialization: {boom: *a9}}\n")
		start := time.Now()
		_, err := Parse([]byte(b.String()))
		if err == nil || !strings.Contains(err.Error(), "document too complex") {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("deep nesting", func(t *testing.T) {
		doc := "name: deep\nnamespace_name: ns\nversion: 1\nsteps:\n  - name: a\n    handler: {callable: c, initialization: {x: " +
			strings.Repeat("[", 500) + strings.Repeat("]", 500) + "}}\n"
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), "nested too deeply") {
			t.Fatalf("err = %v", err)
		}
		jdoc := `{"name":"deep","namespace_name":"ns","version":"1","steps":[{"name":"a","handler":{"callable":"c","initialization":{"x":` +
			strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}}}]}`
		if _, err := Parse([]byte(jdoc)); err == nil || !strings.Contains(err.Error(), "nested too deeply") {
			t.Fatalf("json err = %v", err)
		}
	})
}

func TestParseAliasesAndNormalisation(t *testing.T) {
	doc := `
name: aliases
namespace_name: ns
version: 1.10
x-anchors:
  handler: &h {callable: shared.handler}
steps:
  - name: a
    step_type: decision
    handler: *h
  - name: b
    type: deferred
    dependencies: [a]
    handler: *h
  - name: c
    type: standard
    step_type: standard
    dependencies: [a]
    handler: *h
    retry: {limit: 4, max_attempts: 4}
`
	tpl := mustParse(t, []byte(doc))
	if tpl.Version != "1.10" {
		t.Errorf("version = %q, want the text as written", tpl.Version)
	}
	if tpl.Steps[0].Type != StepDecision || tpl.Steps[1].Type != StepDeferredConvergence || tpl.Steps[2].Type != StepStandard {
		t.Errorf("types = %s %s %s", tpl.Steps[0].Type, tpl.Steps[1].Type, tpl.Steps[2].Type)
	}
	if tpl.Steps[1].Handler.Callable != "shared.handler" || tpl.Steps[2].Retry.MaxAttempts != 4 {
		t.Errorf("steps = %+v", tpl.Steps)
	}
}
