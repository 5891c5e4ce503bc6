package handler_test

import (
	"encoding/json"
	"testing"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// TestDynamicAnswers: the outcomes and checkpoints the approval and batch
// ETL steps answer with are sent as contracts builds them, and match the
// contract's schema. (examples/handlers/polyglot runs the workflows' steps
// against every example service, this one included.)
func TestDynamicAnswers(t *testing.T) {
	base := start(t)
	route := envelope("approval.route", 1, `{"request": {"id": "r", "amount": 7500}}`, nil)
	worker := envelope("etl.transform", 1, `{"etl": {"id": "e", "rows": 10, "checkpoint_every": 2}}`, nil)
	worker.Step.Inputs = mustJSON(t, contracts.BatchWorkerInputs{Cursor: contracts.EvenCursors(10, 4)[0]})
	for _, tt := range []struct {
		name string
		env  *contracts.StepEnvelope
		want contracts.StepResult
	}{
		{"decision", route, contracts.CreateSteps("manager_approval", "finance_review").Result(map[string]any{"amount": 7500})},
		{"batches", envelope("etl.analyze", 1, `{"etl": {"id": "e", "rows": 10}}`, nil),
			contracts.CreateBatches("transform_rows", contracts.EvenCursors(10, 4), 10).Result(map[string]any{"rows": 10})},
		{"no batches", envelope("etl.analyze", 1, `{"etl": {"id": "e", "rows": 0}}`, nil), contracts.NoBatches().Result(map[string]any{"rows": 0})},
		{"checkpoint", worker, contracts.Yield(contracts.Checkpoint{Cursor: json.RawMessage(`2`), ItemsProcessed: 2, AccumulatedResults: json.RawMessage(`{"rows":2,"amount_cents":7919,"calls":1}`)})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, base, mustJSON(t, tt.env), nil)
			checkSchema(t, "step-result.schema.json", body)
			var got contracts.StepResult
			if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 {
				t.Fatalf("answered %s %s (%v)", resp.Status, body, err)
			}
			if got.StepUUID != tt.env.Step.StepUUID || len(got.Metadata) == 0 {
				t.Errorf("step_uuid %q, metadata %s", got.StepUUID, got.Metadata)
			}
			got.StepUUID, got.Metadata = "", nil
			if g, w := string(mustJSON(t, got)), string(mustJSON(t, tt.want)); g != w {
				t.Errorf("answered %s, want %s", g, w)
			}
		})
	}
}
