package workflow

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestValidateContext(t *testing.T) {
	tpl := mustParse(t, readTestdata(t, "tasker_order.yaml"))
	tests := []struct {
		name string
		ctx  string
		want []string // "path: message"; nil means valid
	}{
		{"valid", `{"order":{"id":"o-1","lines":[{"sku":"a","quantity":2}]},"express":true}`, nil},
		{"extra properties allowed", `{"order":{"id":"o-1","lines":[{"sku":"a","quantity":2}]},"note":"hi"}`, nil},
		{"missing required", `{}`, []string{"context.order: required"}},
		{"empty means {}", ``, []string{"context.order: required"}},
		{"null means {}", `null`, []string{"context.order: required"}},
		{"nested missing", `{"order":{"lines":[{"sku":"a","quantity":1}]}}`, []string{"context.order.id: required"}},
		{"wrong type", `{"order":{"id":7,"lines":[{"sku":"a","quantity":1}]}}`, []string{"context.order.id: must be string, got number"}},
		{"array items", `{"order":{"id":"x","lines":[{"sku":"a","quantity":1},{"sku":"b","quantity":"two"},{"quantity":0}]}}`, []string{
			"context.order.lines[1].quantity: must be integer, got string",
			"context.order.lines[2].sku: required",
			"context.order.lines[2].quantity: minimum: got 0, want 1",
		}},
		{"several problems", `{"order":{"id":"","lines":[]},"express":"yes"}`, []string{
			"context.order.id: minLength: got 0, want 1",
			"context.order.lines: minItems: got 0, want 1",
			"context.express: must be boolean, got string",
		}},
		{"not an object", `[1,2]`, []string{"context: must be a JSON object"}},
		{"not JSON", `{"order":`, []string{"context: invalid JSON: unexpected EOF"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tpl.ValidateContext([]byte(tt.ctx))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want *ValidationError", err)
			}
			var got []string
			for _, p := range ve.Problems {
				got = append(got, p.Path+": "+p.Message)
			}
			if !slices.Equal(sorted(got), sorted(tt.want)) {
				t.Errorf("problems:\n got  %q\n want %q", got, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "workflow: invalid context: ") {
				t.Errorf("Error() = %q", err)
			}
		})
	}
}

func TestValidateContextPaths(t *testing.T) {
	tpl := mustParse(t, []byte(header+`input_schema:
  type: object
  additionalProperties: false
  properties:
    "odd key": {type: object, required: ["a.b"]}
    list: {type: array, items: {type: array, items: {type: integer}}}
steps:
  - {name: a, handler: {callable: x}}`))
	err := tpl.ValidateContext([]byte(`{"odd key":{},"list":[[1],[2,"x"]],"extra":1}`))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.Path+": "+p.Message)
	}
	want := []string{
		`context["odd key"]["a.b"]: required`,
		`context.list[1][1]: must be integer, got string`,
		`context.extra: not allowed (additional property)`,
	}
	if !slices.Equal(sorted(got), sorted(want)) {
		t.Errorf("problems:\n got  %q\n want %q", got, want)
	}
}

func TestValidateContextWithoutSchema(t *testing.T) {
	tpl := mustParse(t, readTestdata(t, "diamond.yaml"))
	for _, ctx := range []string{``, `{}`, `{"anything":[1,2,3]}`} {
		if err := tpl.ValidateContext([]byte(ctx)); err != nil {
			t.Errorf("ValidateContext(%s) = %v", ctx, err)
		}
	}
	if err := tpl.ValidateContext([]byte(`"str"`)); err == nil {
		t.Error("a string context was accepted")
	}
}

func TestInputSchemaCompiledOnce(t *testing.T) {
	tpl := mustParse(t, readTestdata(t, "tasker_order.yaml"))
	if tpl.c == nil || tpl.c.schema == nil {
		t.Fatal("parsed template has no cached schema")
	}
	sch := tpl.c.schema
	_ = tpl.ValidateContext([]byte(`{}`))
	if tpl.c.schema != sch {
		t.Error("schema recompiled")
	}
	// Local references within the schema work; $schema selects a draft.
	tpl = mustParse(t, []byte(header+`input_schema:
  $schema: "http://json-schema.org/draft-07/schema#"
  definitions: {id: {type: string, pattern: "^o-"}}
  type: object
  properties: {order_id: {$ref: "#/definitions/id"}}
steps:
  - {name: a, handler: {callable: x}}`))
	if err := tpl.ValidateContext([]byte(`{"order_id":"o-1"}`)); err != nil {
		t.Error(err)
	}
	if err := tpl.ValidateContext([]byte(`{"order_id":"x"}`)); err == nil || !strings.Contains(err.Error(), "context.order_id: ") {
		t.Errorf("err = %v", err)
	}
}
