package openapi_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/tasker-runner/tasker-runner/openapi"
)

// The spec builds without a database, in both formats, with every
// operation under its readable id.
func TestSpec(t *testing.T) {
	t.Parallel()
	js, err := openapi.Spec("json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q", doc.OpenAPI)
	}
	var ids []string
	for path, item := range doc.Paths {
		for method, op := range item {
			id, _ := op["operationId"].(string)
			ids = append(ids, id)
			if strings.HasPrefix(path, "/v1/") && method != "get" && method != "delete" {
				if _, ok := op["requestBody"]; !ok && path != "/v1/status" {
					t.Errorf("%s %s has no request body", method, path)
				}
			}
		}
	}
	slices.Sort(ids)
	want := []string{
		"cancelTask", "deleteHandler", "getHandler", "getHealth", "getHealthLive", "getHealthReady", "getStatus",
		"getStep", "getTask", "getTemplate", "listDeadLetters", "listHandlers", "listTasks", "listTemplates",
		"putHandler", "redriveDeadLetters", "registerTemplate", "resolveStep", "retryStep", "submitTask", "validateTemplate",
	}
	for _, id := range want {
		if !slices.Contains(ids, id) {
			t.Errorf("operation %s missing; have %v", id, ids)
		}
	}
	y, err := openapi.Spec("yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(y), "components:") && !strings.Contains(string(y), "openapi: 3.1.0") {
		t.Errorf("yaml spec does not look like one:\n%.300s", y)
	}
	again, _ := openapi.Spec("yaml")
	if string(again) != string(y) {
		t.Error("the spec is not deterministic")
	}
	if _, err := openapi.Spec("xml"); err == nil {
		t.Error("Spec(xml) succeeded")
	}
}
