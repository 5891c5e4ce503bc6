package openapi_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/tasker-runner/tasker-runner/openapi"
)

// The exported spec is a valid OpenAPI 3.1 document, checked against the
// OpenAPI Initiative's own schema for 3.1 documents.
func TestSpecValidatesAsOpenAPI31(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/oas-3.1-schema.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var schemaDoc any
	if err := yaml.Unmarshal(raw, &schemaDoc); err != nil {
		t.Fatal(err)
	}
	// Round-trip through JSON so the compiler sees JSON types only.
	b, err := json.Marshal(schemaDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("oas-3.1.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("oas-3.1.json")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := openapi.Spec("json")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(spec))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Fatalf("the exported spec is not a valid OpenAPI 3.1 document:\n%v", err)
	}
	// And a broken document is refused, so the check can fail.
	var m map[string]any
	_ = json.Unmarshal(spec, &m)
	m["paths"].(map[string]any)["/v1/status"].(map[string]any)["get"].(map[string]any)["responses"] = map[string]any{"200": map[string]any{}}
	broken, _ := json.Marshal(m)
	inst, _ = jsonschema.UnmarshalJSON(bytes.NewReader(broken))
	if err := sch.Validate(inst); err == nil {
		t.Fatal("a response without a description passed validation")
	}
}
