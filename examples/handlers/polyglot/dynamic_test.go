package polyglot

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/examples/handlers/go/handler"
)

// rowAmount is the batch ETL's generated row amount (examples/templates/batch_etl.yaml).
func rowAmount(id int64) int64 { return id * 7919 % 10007 }

// runDynamic posts env and returns the answer, which must be a 200.
func runDynamic(t *testing.T, client *http.Client, base string, env *contracts.StepEnvelope) contracts.StepResult {
	t.Helper()
	resp, body := post(t, client, base, mustJSON(t, env), nil)
	var res contracts.StepResult
	if err := json.Unmarshal(body, &res); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: answered %s %s (%v)", env.StepDefinition.Handler.Callable, resp.Status, body, err)
	}
	return res
}

// outcomes parses the outcomes of a result as the runner does.
func outcomes(t *testing.T, res contracts.StepResult) contracts.Outcomes {
	t.Helper()
	if !res.Success || res.Status != "completed" {
		t.Fatalf("not a completed result: %s", mustJSON(t, res))
	}
	o, err := contracts.ParseOutcomes(res.Result)
	if err != nil {
		t.Fatalf("the runner would reject %s: %v", res.Result, err)
	}
	return o
}

func field[T any](t *testing.T, raw json.RawMessage, name string) T {
	t.Helper()
	var m map[string]json.RawMessage
	var v T
	if err := json.Unmarshal(raw, &m); err != nil || json.Unmarshal(m[name], &v) != nil {
		t.Fatalf("no %s in %s", name, raw)
	}
	return v
}

// checkDynamic runs the approval and batch ETL steps (examples/templates)
// and checks every answer against what Go's contracts helpers give for the
// same input: the service's helpers agree with the runner.
func checkDynamic(t *testing.T, client *http.Client, base string) {
	t.Run("approval.route", func(t *testing.T) { dynamicApprovalRoute(t, client, base) })
	t.Run("approvals and finalize", func(t *testing.T) { dynamicApprovalsAndFinalize(t, client, base) })
	t.Run("etl", func(t *testing.T) { dynamicETL(t, client, base) })
}

// dynamicApprovalRoute checks approval.route's decision for amounts in
// each band, and its permanent failure without an amount.
func dynamicApprovalRoute(t *testing.T, client *http.Client, base string) {
	for amount, want := range map[float64]contracts.DecisionPointOutcome{
		0: contracts.NoBranches(), -3: contracts.NoBranches(), 500: contracts.CreateSteps("auto_approve"),
		2000: contracts.CreateSteps("manager_approval"), 7500: contracts.CreateSteps("manager_approval", "finance_review"),
	} {
		res := runDynamic(t, client, base, envelope("approval.route", 1, fmt.Sprintf(`{"request": {"id": "r", "amount": %v}}`, amount), nil))
		if got := outcomes(t, res).DecisionPointOutcome; got == nil || !reflect.DeepEqual(*got, want) {
			t.Errorf("amount %v: %s, want %s", amount, res.Result, mustJSON(t, want))
		}
		if got := field[float64](t, res.Result, "amount"); got != amount {
			t.Errorf("amount %v: result.amount %v", amount, got)
		}
	}
	if res := runDynamic(t, client, base, envelope("approval.route", 1, `{"request": {}}`, nil)); res.Success || res.Error.Retryable {
		t.Errorf("no amount: want a permanent failure, got %s", mustJSON(t, res))
	}
}

// dynamicApprovalsAndFinalize checks the three approvers and
// approval.finalize's decision after each set of approvals.
func dynamicApprovalsAndFinalize(t *testing.T, client *http.Client, base string) {
	route := map[string]string{"route_approval": `{"amount": 30000, "decision_point_outcome": {"type": "create_steps", "step_names": ["manager_approval", "finance_review"]}}`}
	for callable, approved := range map[string]bool{"approval.auto_approve": false, "approval.manager_approval": true, "approval.finance_review": false} {
		res := runDynamic(t, client, base, envelope(callable, 1, `{}`, route))
		if got := field[bool](t, res.Result, "approved"); !res.Success || got != approved || field[float64](t, res.Result, "amount") != 30000 {
			t.Errorf("%s of 30000: %s, want approved %v", callable, res.Result, approved)
		}
	}
	for _, c := range []struct {
		deps     map[string]string
		decision string
		taken    []string
	}{
		{map[string]string{"route_approval": `{"amount": 0}`}, "nothing_to_approve", []string{}},
		{map[string]string{"route_approval": `{"amount": 7500}`, "finance_review": `{"approved": true}`, "manager_approval": `{"approved": true}`}, "approved", []string{"manager_approval", "finance_review"}},
		{map[string]string{"route_approval": `{"amount": 30000}`, "finance_review": `{"approved": false}`, "manager_approval": `{"approved": true}`}, "rejected", []string{"manager_approval", "finance_review"}},
		{map[string]string{"route_approval": `{"amount": 10}`, "auto_approve": `{"approved": true}`}, "approved", []string{"auto_approve"}},
	} {
		res := runDynamic(t, client, base, envelope("approval.finalize", 1, `{}`, c.deps))
		if d, taken := field[string](t, res.Result, "decision"), field[[]string](t, res.Result, "approvals"); d != c.decision || !reflect.DeepEqual(taken, c.taken) {
			t.Errorf("finalize after %v: %s, want %s with %v", c.deps, res.Result, c.decision, c.taken)
		}
	}
}

// dynamicETL checks etl.analyze's batches, each etl.transform worker
// driven through its checkpoints, and etl.aggregate with a failed worker.
func dynamicETL(t *testing.T, client *http.Client, base string) {
	const rows, workers, every = 10_000, 4, 1000
	ctx := fmt.Sprintf(`{"etl": {"id": "e", "rows": %d, "workers": %d, "checkpoint_every": %d}}`, rows, workers, every)
	res := runDynamic(t, client, base, envelope("etl.analyze", 1, ctx, nil))
	want := contracts.CreateBatches("transform_rows", contracts.EvenCursors(rows, workers), rows)
	if got := outcomes(t, res).BatchProcessingOutcome; got == nil || !reflect.DeepEqual(mustJSON(t, got), mustJSON(t, want)) {
		t.Fatalf("analyze: %s, want %s", res.Result, mustJSON(t, want))
	}
	res = runDynamic(t, client, base, envelope("etl.analyze", 1, `{"etl": {"id": "e", "rows": 0}}`, nil))
	if got := outcomes(t, res).BatchProcessingOutcome; got == nil || got.Type != contracts.OutcomeNoBatches {
		t.Errorf("analyze of 0 rows: %s, want no_batches", res.Result)
	}

	// Each worker as the runner drives it: yielded answers re-sent with
	// the checkpoint, until it completes.
	deps := map[string]string{"analyze_rows": `{"rows": 10000}`, "transform_rows_005": `{"no_op": true}`}
	var total int64
	for _, c := range want.CursorConfigs {
		env := envelope("etl.transform", 1, ctx, nil)
		env.Step.Inputs = mustJSON(t, contracts.BatchWorkerInputs{Cursor: c, BatchMetadata: contracts.BatchMetadata{CursorField: "row_id", FailureStrategy: "continue_on_failure"}})
		yields := 0
		for {
			res = runDynamic(t, client, base, env)
			if res.Status != contracts.StatusYielded {
				break
			}
			yields++
			env.Step.Checkpoint = res.Checkpoint
			cp, _, err := env.ResumeFrom()
			if n, _ := cp.IntCursor(); err != nil || cp.ItemsProcessed != int64(yields*every) || n != mustInt(t, c.StartCursor)+int64(yields*every) {
				t.Fatalf("batch %s: checkpoint %d: %s", c.BatchID, yields, res.Checkpoint)
			}
		}
		start, end, _ := c.IntRange()
		var sum int64
		for id := start; id < end; id++ {
			sum += rowAmount(id)
		}
		total += sum
		if got := field[int64](t, res.Result, "amount_cents"); !res.Success || got != sum || field[int64](t, res.Result, "rows") != end-start || yields != 2 {
			t.Errorf("batch %s: %s after %d checkpoints, want %d rows, amount_cents %d after 2", c.BatchID, res.Result, yields, end-start, sum)
		}
		deps["transform_rows_"+c.BatchID] = string(res.Result)
	}
	env := envelope("etl.aggregate", 1, ctx, deps)
	env.DependencyResults["transform_rows_006"] = contracts.Failure("bad_row", "row 7 is broken", false)
	res = runDynamic(t, client, base, env)
	var agg struct{ Workers, FailedWorkers, Rows, RowsExpected, AmountCents int64 }
	if err := json.Unmarshal(res.Result, &struct {
		W *int64 `json:"workers"`
		F *int64 `json:"failed_workers"`
		R *int64 `json:"rows"`
		E *int64 `json:"rows_expected"`
		A *int64 `json:"amount_cents"`
	}{&agg.Workers, &agg.FailedWorkers, &agg.Rows, &agg.RowsExpected, &agg.AmountCents}); err != nil {
		t.Fatal(err)
	}
	if agg.Workers != workers || agg.FailedWorkers != 1 || agg.Rows != rows || agg.RowsExpected != rows || agg.AmountCents != total {
		t.Errorf("aggregate: %s, want 4 workers, 1 failed, %d rows, amount_cents %d", res.Result, rows, total)
	}
}

func mustInt(t *testing.T, raw json.RawMessage) int64 {
	t.Helper()
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestGoDynamic runs the same checks against the Go example service, in
// process: all four languages answer alike.
func TestGoDynamic(t *testing.T) {
	h, err := handler.New(handler.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	checkDynamic(t, srv.Client(), srv.URL)
}
