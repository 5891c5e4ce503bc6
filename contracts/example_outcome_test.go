package contracts_test

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// A decision step chooses the branches to create from what an earlier step
// found, and says why next to the outcome.
func ExampleCreateSteps() {
	env := &contracts.StepEnvelope{DependencyResults: map[string]contracts.StepResult{
		"validate_order": {Success: true, Result: json.RawMessage(`{"amount": 12500, "country": "FR"}`)},
	}}
	amount, err := contracts.DependencyValue[int](env, "validate_order", "amount")
	if err != nil {
		fmt.Println(err)
		return
	}
	var res contracts.StepResult
	if amount > 10000 {
		res = contracts.CreateSteps("manual_review", "notify_customer").Result(map[string]any{"amount": amount})
	} else {
		res = contracts.NoBranches().Result(nil)
	}
	fmt.Println(string(res.Result))
	// Output: {"amount":12500,"decision_point_outcome":{"type":"create_steps","step_names":["manual_review","notify_customer"]}}
}

// A batchable step splits 1,000 rows among three workers of the template
// step process_batch.
func ExampleCreateBatches() {
	const rows = 1000
	outcome := contracts.CreateBatches("process_batch", contracts.EvenCursors(rows, 3), rows)
	if err := outcome.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	res := outcome.Result(nil)
	fmt.Println(string(res.Result))
	// Output: {"batch_processing_outcome":{"type":"create_batches","worker_template_name":"process_batch","worker_count":3,"cursor_configs":[{"batch_id":"001","start_cursor":0,"end_cursor":334,"batch_size":334},{"batch_id":"002","start_cursor":334,"end_cursor":667,"batch_size":333},{"batch_id":"003","start_cursor":667,"end_cursor":1000,"batch_size":333}],"total_items":1000}}
}

func ExampleEvenCursors() {
	for _, c := range contracts.EvenCursors(10, 4) {
		start, end, _ := c.IntRange()
		fmt.Printf("%s: [%d, %d) %d items\n", c.BatchID, start, end, c.BatchSize)
	}
	// Output:
	// 001: [0, 3) 3 items
	// 002: [3, 6) 3 items
	// 003: [6, 8) 2 items
	// 004: [8, 10) 2 items
}

func ExampleCursorsBySize() {
	for _, c := range contracts.CursorsBySize(2500, 1000) {
		fmt.Println(c.BatchID, string(c.StartCursor), string(c.EndCursor))
	}
	// Output:
	// 001 0 1000
	// 002 1000 2000
	// 003 2000 2500
}

// Cursors need not be integers: here one batch per day.
func ExampleNewCursorConfig() {
	day, _ := contracts.NewCursorConfig(1, "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z", 0)
	b, _ := json.Marshal(day)
	fmt.Println(string(b))
	// Output: {"batch_id":"001","start_cursor":"2026-03-01T00:00:00Z","end_cursor":"2026-03-02T00:00:00Z","batch_size":0}
}

// A batch worker processes its range 100 items per call, yielding a
// checkpoint between calls, and finishes with its total.
func ExampleStepEnvelope_BatchWorker() {
	work := func(env *contracts.StepEnvelope) contracts.StepResult {
		in, err := env.BatchWorker()
		if err != nil {
			return contracts.Failure("bad_inputs", err.Error(), false)
		}
		if in.IsNoOp {
			return contracts.StepResult{Success: true}
		}
		first, end, err := in.Cursor.IntRange()
		if err != nil {
			return contracts.Failure("bad_inputs", err.Error(), false)
		}
		pos, sum := first, int64(0)
		if cp, ok, err := env.ResumeFrom(); err != nil {
			return contracts.Failure("bad_checkpoint", err.Error(), false)
		} else if ok {
			if pos, err = cp.IntCursor(); err != nil {
				return contracts.Failure("bad_checkpoint", err.Error(), false)
			}
			_ = json.Unmarshal(cp.AccumulatedResults, &sum)
		}
		stop := min(pos+100, end)
		for i := pos; i < stop; i++ {
			sum += i // the real work
		}
		if stop < end {
			acc, _ := json.Marshal(sum)
			return contracts.Yield(contracts.Checkpoint{
				Cursor: json.RawMessage(fmt.Sprint(stop)), ItemsProcessed: stop - first, AccumulatedResults: acc,
			})
		}
		b, _ := json.Marshal(map[string]int64{"sum": sum})
		return contracts.StepResult{Success: true, Result: b}
	}

	// What the runner does: call, store the checkpoint, call again.
	inputs, _ := json.Marshal(contracts.BatchWorkerInputs{Cursor: contracts.EvenCursors(1000, 4)[1]})
	env := &contracts.StepEnvelope{Step: contracts.StepInfo{Name: "process_batch_002", Inputs: inputs}}
	for {
		res := work(env)
		if res.Status != contracts.StatusYielded {
			fmt.Println("done", res.Success, string(res.Result))
			break
		}
		fmt.Println("yielded", string(res.Checkpoint))
		env.Step.Checkpoint = res.Checkpoint
	}
	// Output:
	// yielded {"cursor":350,"items_processed":100,"accumulated_results":29950}
	// yielded {"cursor":450,"items_processed":200,"accumulated_results":69900}
	// done true {"sum":93625}
}

func ExampleStepEnvelope_DependencyField() {
	env := &contracts.StepEnvelope{DependencyResults: map[string]contracts.StepResult{
		"fetch_order": {Success: true, Result: json.RawMessage(`{"items": [{"sku": "A-1"}, {"sku": "B-2"}]}`)},
	}}
	sku, err := env.DependencyField("fetch_order", "items[1].sku")
	fmt.Println(string(sku), err)
	_, err = env.DependencyField("fetch_order", "items[2].sku")
	fmt.Println(err)
	fmt.Println(errors.Is(err, contracts.ErrFieldNotFound))
	// Output:
	// "B-2" <nil>
	// dependency "fetch_order": result.items[2]: not found: index 2 out of range (2 items)
	// true
}

// How the runner reads a result: outcomes, or an error naming the field.
func ExampleParseOutcomes() {
	for _, result := range []string{
		`{"charged": true}`,
		`{"decision_point_outcome": {"type": "create_steps", "step_names": ["manual_review"]}}`,
		`{"decision_point_outcome": {"type": "maybe"}}`,
		`{"batch_processing_outcome": {"type": "create_batches", "worker_template_name": "w",
		  "cursor_configs": [{"batch_id": "001", "start_cursor": 0, "end_cursor": 5}, {"batch_id": "001", "start_cursor": 5, "end_cursor": 9}]}}`,
	} {
		o, err := contracts.ParseOutcomes(json.RawMessage(result))
		switch {
		case err != nil:
			fmt.Println("error:", err)
		case o.DecisionPointOutcome != nil:
			fmt.Println(o.DecisionPointOutcome.Type, o.DecisionPointOutcome.StepNames)
		default:
			fmt.Println("no outcome")
		}
	}
	// Output:
	// no outcome
	// create_steps [manual_review]
	// error: decision_point_outcome.type: "maybe" is not create_steps or no_branches
	// error: batch_processing_outcome.cursor_configs[1].batch_id: "001" repeats cursor_configs[0] (worker step names must be unique)
}
