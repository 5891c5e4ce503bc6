package contracts_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// schemaBase is the base of the schemas' $id: each schema's $id is
// schemaBase + its file name, so relative $refs between them resolve.
const schemaBase = "https://raw.githubusercontent.com/tasker-runner/tasker-runner/main/contracts/schema/"

var schemaFiles = []string{
	"step-envelope.schema.json",
	"step-result.schema.json",
	"batch-request.schema.json",
	"batch-response.schema.json",
}

// loadSchemaDocs reads every schema file, decoded as jsonschema expects.
func loadSchemaDocs(t *testing.T) map[string]any {
	t.Helper()
	docs := map[string]any{}
	entries, err := os.ReadDir("schema")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".schema.json") {
			continue
		}
		if !slices.Contains(schemaFiles, e.Name()) {
			t.Errorf("schema/%s is not covered by the tests: add it to schemaFiles", e.Name())
		}
		raw, err := os.ReadFile(filepath.Join("schema", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("schema/%s: %v", e.Name(), err)
		}
		obj, _ := doc.(map[string]any)
		if obj["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("schema/%s: $schema is %v, want draft 2020-12", e.Name(), obj["$schema"])
		}
		if obj["$id"] != schemaBase+e.Name() {
			t.Errorf("schema/%s: $id is %v, want %s", e.Name(), obj["$id"], schemaBase+e.Name())
		}
		docs[e.Name()] = doc
	}
	return docs
}

// compileSchemas compiles every schema from docs, offline (the $ids are
// registered as resources; nothing is fetched).
func compileSchemas(t *testing.T, docs map[string]any) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	for name, doc := range docs {
		if err := c.AddResource(schemaBase+name, doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, name := range schemaFiles {
		s, err := c.Compile(schemaBase + name)
		if err != nil {
			t.Fatalf("compiling %s: %v", name, err)
		}
		out[name] = s
	}
	return out
}

// strictCopy returns a deep copy of doc in which every object schema that
// declares properties and says nothing about others gets
// "additionalProperties": false. The published schemas let handlers and the
// runner ignore unknown fields; the strict copy catches a field the Go types
// send that the schemas do not describe.
func strictCopy(doc any) any {
	switch v := doc.(type) {
	case map[string]any:
		out := make(map[string]any, len(v)+1)
		for k, x := range v {
			if k == "if" { // conditions only select; tightening them changes meaning
				out[k] = x
				continue
			}
			out[k] = strictCopy(x)
		}
		_, hasProps := v["properties"]
		_, hasAdditional := v["additionalProperties"]
		if hasProps && !hasAdditional && v["type"] == "object" {
			out["additionalProperties"] = false
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = strictCopy(x)
		}
		return out
	default:
		return doc
	}
}

type schemaSet struct {
	docs   map[string]any
	lax    map[string]*jsonschema.Schema
	strict map[string]*jsonschema.Schema
}

func loadSchemas(t *testing.T) schemaSet {
	t.Helper()
	docs := loadSchemaDocs(t)
	strictDocs := map[string]any{}
	for k, d := range docs {
		strictDocs[k] = strictCopy(d)
	}
	return schemaSet{docs: docs, lax: compileSchemas(t, docs), strict: compileSchemas(t, strictDocs)}
}

func instance(t *testing.T, v any) any {
	t.Helper()
	var raw []byte
	switch x := v.(type) {
	case string:
		raw = []byte(x)
	case []byte:
		raw = x
	default:
		var err error
		if raw, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return inst
}

// Every schema compiles, and every property of every schema is described.
func TestSchemasCompileAndDescribeEveryProperty(t *testing.T) {
	t.Parallel()
	s := loadSchemas(t)
	for name, doc := range s.docs {
		var walk func(node any, at string)
		walk = func(node any, at string) {
			switch v := node.(type) {
			case map[string]any:
				if props, ok := v["properties"].(map[string]any); ok {
					for p, sub := range props {
						if m, _ := sub.(map[string]any); m == nil || m["description"] == nil {
							t.Errorf("%s: %s/properties/%s has no description", name, at, p)
						}
					}
				}
				for k, x := range v {
					if k == "if" { // a condition, not a description of data
						continue
					}
					walk(x, at+"/"+k)
				}
			case []any:
				for _, x := range v {
					walk(x, at)
				}
			}
		}
		walk(doc, "#")
	}
}

// An envelope built by the runner's Go types, with every field set, is valid
// against the schema, strictly (the schema describes every field the Go type
// sends), and every property the schema declares is one the Go type sends.
func TestEnvelopeSchemaMatchesGoType(t *testing.T) {
	t.Parallel()
	s := loadSchemas(t)
	env := fullEnvelope()
	for _, sch := range []*jsonschema.Schema{s.lax["step-envelope.schema.json"], s.strict["step-envelope.schema.json"]} {
		if err := sch.Validate(instance(t, env)); err != nil {
			t.Fatalf("a marshalled contracts.StepEnvelope is invalid: %v", err)
		}
	}
	checkCoverage(t, s.docs, "step-envelope.schema.json", instance(t, env))

	// The minimal envelope the runner sends for a root step without
	// optional fields (as runner/dispatch.go builds it).
	minimal := contracts.StepEnvelope{
		EventID: "e1",
		Task: contracts.TaskInfo{TaskUUID: "t1", Namespace: "default", Name: "n", Version: "1", Context: json.RawMessage(`{}`),
			CorrelationID: "c1", Tags: []string{}},
		Step: contracts.StepInfo{StepUUID: "s1", Name: "a", TemplateStepName: "a", Attempts: 1, MaxAttempts: 1,
			Inputs: json.RawMessage(`{}`)},
		StepDefinition:    contracts.StepDefinition{Handler: contracts.HandlerDefinition{Callable: "x.y"}, Dependencies: []string{}},
		DependencyResults: map[string]contracts.StepResult{},
	}
	if err := s.strict["step-envelope.schema.json"].Validate(instance(t, minimal)); err != nil {
		t.Fatalf("a minimal contracts.StepEnvelope is invalid: %v", err)
	}
	batch := map[string]any{"steps": []contracts.StepEnvelope{env, minimal}}
	if err := s.strict["batch-request.schema.json"].Validate(instance(t, batch)); err != nil {
		t.Fatalf("a batch of envelopes is invalid: %v", err)
	}
}

// A full result built by the Go types is valid strictly, and the schema
// declares nothing the Go type lacks.
func TestResultSchemaMatchesGoType(t *testing.T) {
	t.Parallel()
	s := loadSchemas(t)
	full := fullResult()
	if err := s.strict["step-result.schema.json"].Validate(instance(t, full)); err != nil {
		t.Fatalf("a marshalled contracts.StepResult is invalid: %v", err)
	}
	checkCoverage(t, s.docs, "step-result.schema.json", instance(t, full))
}

func TestSchemasAcceptValidDocuments(t *testing.T) {
	t.Parallel()
	s := loadSchemas(t)
	backoff := 30.0
	cases := []struct {
		name   string
		schema string
		doc    any
	}{
		{"minimal success", "step-result", `{"success":true}`},
		{"success with null result", "step-result", `{"success":true,"result":null}`},
		{"success with scalar result", "step-result", `{"success":true,"status":"completed","result":"done"}`},
		{"Go success", "step-result", contracts.StepResult{Success: true, Status: contracts.StatusCompleted,
			Result: json.RawMessage(`{"charged":true,"amount":12.5}`), Metadata: json.RawMessage(`{"execution_time_ms":3}`)}},
		{"Go failure", "step-result", contracts.Failure(contracts.ErrorTypeNotFound, "no handler for x.y", false)},
		{"Go failure with backoff hint", "step-result", contracts.StepResult{Success: false, Status: contracts.StatusFailed,
			Error: &contracts.StepError{Message: "busy", ErrorType: contracts.ErrorTypeHandler, Retryable: true, StatusCode: 503},
			OrchestrationMetadata: &contracts.OrchestrationMetadata{
				BackoffHint: &contracts.BackoffHint{DelaySeconds: 5, BackoffType: "server_requested"}}}},
		{"Go failure with backoff request", "step-result", contracts.StepResult{Success: false,
			Error:                 &contracts.StepError{Message: "later", Retryable: true},
			OrchestrationMetadata: &contracts.OrchestrationMetadata{BackoffRequestSeconds: &backoff}}},
		{"yielded with checkpoint", "step-result", contracts.StepResult{Success: false, Status: contracts.StatusYielded,
			Checkpoint: json.RawMessage(`{"cursor":1000,"items_processed":1000,"accumulated_results":{"total":99.5}}`)}},
		{"decision create_steps", "step-result",
			`{"success":true,"result":{"decision_point_outcome":{"type":"create_steps","step_names":["manual_review","notify"]}}}`},
		{"decision no_branches", "step-result", `{"success":true,"result":{"decision_point_outcome":{"type":"no_branches"}}}`},
		{"batch create_batches", "step-result", `{"success":true,"result":{"batch_processing_outcome":{
			"type":"create_batches","worker_template_name":"process_batch","worker_count":2,
			"cursor_configs":[{"batch_id":"001","start_cursor":0,"end_cursor":500,"batch_size":500},
			                  {"batch_id":"002","start_cursor":500,"end_cursor":1000,"batch_size":500}],
			"total_items":1000}}}`},
		{"batch no_batches", "step-result", `{"success":true,"result":{"batch_processing_outcome":{"type":"no_batches"}}}`},
		{"unknown fields are ignored", "step-result", `{"success":true,"future_field":{"x":1}}`},
		{"batch response", "batch-response", map[string]any{"results": []contracts.StepResult{
			{StepUUID: "s1", Success: true, Result: json.RawMessage(`{"ok":1}`)},
			{StepUUID: "s2", Success: false, Error: &contracts.StepError{Message: "boom", Retryable: true}},
		}}},
		{"empty batch response", "batch-response", `{"results":[]}`},
	}
	for _, c := range cases {
		if err := s.lax[c.schema+".schema.json"].Validate(instance(t, c.doc)); err != nil {
			t.Errorf("%s: rejected: %v", c.name, err)
		}
	}
}

func TestSchemasRejectBrokenDocuments(t *testing.T) {
	t.Parallel()
	s := loadSchemas(t)
	env, err := json.Marshal(fullEnvelope())
	if err != nil {
		t.Fatal(err)
	}
	// breakEnvelope returns the full envelope with one change applied.
	breakEnvelope := func(change func(m map[string]any)) any {
		var m map[string]any
		if err := json.Unmarshal(env, &m); err != nil {
			t.Fatal(err)
		}
		change(m)
		return m
	}
	sub := func(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }
	cases := []struct {
		name   string
		schema string
		doc    any
	}{
		{"result: missing success", "step-result", `{"status":"completed","result":{}}`},
		{"result: success is a string", "step-result", `{"success":"true"}`},
		{"result: not an object", "step-result", `[{"success":true}]`},
		{"result: status is a number", "step-result", `{"success":true,"status":1}`},
		{"result: metadata is a string", "step-result", `{"success":true,"metadata":"x"}`},
		{"result: error without message", "step-result", `{"success":false,"error":{"retryable":true}}`},
		{"result: retryable is a string", "step-result", `{"success":false,"error":{"message":"m","retryable":"yes"}}`},
		{"result: status_code is a string", "step-result", `{"success":false,"error":{"message":"m","status_code":"500"}}`},
		{"result: delay_seconds is a string", "step-result",
			`{"success":false,"orchestration_metadata":{"backoff_hint":{"delay_seconds":"5"}}}`},
		{"result: negative backoff request", "step-result",
			`{"success":false,"orchestration_metadata":{"backoff_request_seconds":-1}}`},
		{"result: yielded without checkpoint", "step-result", `{"success":false,"status":"yielded"}`},
		{"result: checkpoint items_processed is a string", "step-result",
			`{"success":false,"status":"yielded","checkpoint":{"cursor":1,"items_processed":"1"}}`},
		{"decision: unknown type", "step-result", `{"success":true,"result":{"decision_point_outcome":{"type":"maybe"}}}`},
		{"decision: create_steps without step_names", "step-result",
			`{"success":true,"result":{"decision_point_outcome":{"type":"create_steps"}}}`},
		{"batch: create_batches without cursor_configs", "step-result",
			`{"success":true,"result":{"batch_processing_outcome":{"type":"create_batches","worker_template_name":"w"}}}`},
		{"batch: cursor config without batch_id", "step-result",
			`{"success":true,"result":{"batch_processing_outcome":{"type":"create_batches","worker_template_name":"w",
				"cursor_configs":[{"start_cursor":0,"end_cursor":1}]}}}`},
		{"batch response: item without step_uuid", "batch-response", `{"results":[{"success":true}]}`},
		{"batch response: item with empty step_uuid", "batch-response", `{"results":[{"step_uuid":"","success":true}]}`},
		{"batch response: item without success", "batch-response", `{"results":[{"step_uuid":"s1"}]}`},
		{"batch response: results missing", "batch-response", `{"result":[]}`},
		{"batch request: no steps", "batch-request", `{"steps":[]}`},
		{"batch request: a broken envelope", "batch-request", `{"steps":[{"event_id":"e"}]}`},
		{"envelope: missing step_uuid", "step-envelope",
			breakEnvelope(func(m map[string]any) { delete(sub(m, "step"), "step_uuid") })},
		{"envelope: attempts is a string", "step-envelope",
			breakEnvelope(func(m map[string]any) { sub(m, "step")["attempts"] = "2" })},
		{"envelope: attempts is 0", "step-envelope",
			breakEnvelope(func(m map[string]any) { sub(m, "step")["attempts"] = 0 })},
		{"envelope: context is an array", "step-envelope",
			breakEnvelope(func(m map[string]any) { sub(m, "task")["context"] = []any{1} })},
		{"envelope: tags are numbers", "step-envelope",
			breakEnvelope(func(m map[string]any) { sub(m, "task")["tags"] = []any{1, 2} })},
		{"envelope: missing callable", "step-envelope",
			breakEnvelope(func(m map[string]any) { delete(sub(sub(m, "step_definition"), "handler"), "callable") })},
		{"envelope: dependency result without success", "step-envelope",
			breakEnvelope(func(m map[string]any) { m["dependency_results"] = map[string]any{"a": map[string]any{"result": 1}} })},
		{"envelope: missing dependency_results", "step-envelope",
			breakEnvelope(func(m map[string]any) { delete(m, "dependency_results") })},
	}
	for _, c := range cases {
		if err := s.lax[c.schema+".schema.json"].Validate(instance(t, c.doc)); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// checkCoverage walks the instance along the schema (following $refs) and
// fails for every property a schema declares that the instance lacks, except
// in schemas open to any property ("additionalProperties": true, such as a
// result's value). With a fully populated Go value, a miss means the schema
// describes a field the Go type does not have.
func checkCoverage(t *testing.T, docs map[string]any, file string, inst any) {
	t.Helper()
	var walk func(file string, node any, inst any, at string)
	resolve := func(file, ref string) (string, any) {
		target, frag, _ := strings.Cut(ref, "#")
		if target != "" {
			file = path.Base(target)
		}
		node := docs[file]
		for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
			if tok == "" {
				continue
			}
			node = node.(map[string]any)[tok]
		}
		if node == nil {
			t.Fatalf("unresolvable $ref %s in %s", ref, file)
		}
		return file, node
	}
	walk = func(file string, node any, inst any, at string) {
		sch, ok := node.(map[string]any)
		if !ok {
			return
		}
		if ref, ok := sch["$ref"].(string); ok {
			f, target := resolve(file, ref)
			walk(f, target, inst, at)
		}
		switch v := inst.(type) {
		case map[string]any:
			props, _ := sch["properties"].(map[string]any)
			open := sch["additionalProperties"] == true
			for name, p := range props {
				if x, ok := v[name]; ok {
					walk(file, p, x, at+"."+name)
				} else if !open {
					t.Errorf("%s declares %s.%s but the Go type did not send it", file, at, name)
				}
			}
			if extra, ok := sch["additionalProperties"].(map[string]any); ok {
				for name, x := range v {
					if _, declared := props[name]; !declared {
						walk(file, extra, x, at+"."+name)
					}
				}
			}
		case []any:
			for i, x := range v {
				walk(file, sch["items"], x, at+"["+strconv.Itoa(i)+"]")
			}
		}
	}
	walk(file, docs[file], inst, "$")
}

// readmeExample marks a JSON example in README.md to validate:
// "<!-- validate: step-result.schema.json -->" then a ```json block.
var readmeExample = regexp.MustCompile("(?s)<!-- validate: ([a-z-]+\\.schema\\.json) -->\\s*```json\\n(.*?)\\n```")

// Every JSON example in README.md marked for validation is valid.
func TestReadmeExamplesAreValid(t *testing.T) {
	t.Parallel()
	s := loadSchemas(t)
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	found := readmeExample.FindAllSubmatch(readme, -1)
	if len(found) < 8 {
		t.Fatalf("found %d marked examples in README.md, expected at least 8: is the marker format intact?", len(found))
	}
	for i, m := range found {
		sch := s.lax[string(m[1])]
		if sch == nil {
			t.Errorf("example %d names unknown schema %s", i+1, m[1])
			continue
		}
		if err := sch.Validate(instance(t, m[2])); err != nil {
			t.Errorf("README example %d (%s) is invalid: %v\n%s", i+1, m[1], err, m[2])
		}
	}
}
