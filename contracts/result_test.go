package contracts_test

import (
	"encoding/json"
	"testing"

	"go.uber.org/goleak"

	"github.com/tasker-runner/tasker-runner/contracts"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A Tasker-shaped result decodes with every field in place.
func TestStepResultJSON(t *testing.T) {
	t.Parallel()
	in := `{"step_uuid":"0190","success":false,"status":"failed","result":{"a":1},
		"error":{"message":"rate limited","error_type":"handler_error","retryable":true,"status_code":429},
		"orchestration_metadata":{"backoff_hint":{"delay_seconds":2.5,"backoff_type":"server_requested"}}}`
	var r contracts.StepResult
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	if r.StepUUID != "0190" || r.Success || r.Error.StatusCode != 429 || !r.Error.Retryable ||
		r.OrchestrationMetadata.BackoffHint.DelaySeconds != 2.5 || string(r.Result) != `{"a":1}` {
		t.Fatalf("decoded %+v", r)
	}
	f := contracts.Failure(contracts.ErrorTypeNotFound, "no handler", true)
	b, _ := json.Marshal(f)
	if string(b) != `{"success":false,"status":"failed","error":{"message":"no handler","error_type":"handler_not_found","retryable":true}}` {
		t.Fatalf("Failure encodes as %s", b)
	}
}
