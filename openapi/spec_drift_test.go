package openapi_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/tasker-runner/tasker-runner/openapi"
)

// The committed openapi.yaml (and the clients generated from it) must match
// what the code serves.
func TestCommittedSpecIsCurrent(t *testing.T) {
	t.Parallel()
	want, err := openapi.Spec("yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("openapi/openapi.yaml is stale: run `make generate` and commit the result")
	}
}
