package contracts_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// Results without an outcome: ordinary steps return any JSON.
func TestParseOutcomesNone(t *testing.T) {
	t.Parallel()
	for _, in := range []string{``, `null`, ` null `, `"done"`, `42`, `true`, `[{"decision_point_outcome":{"type":"maybe"}}]`,
		`{}`, `{"charged":true}`, `{"decision_point_outcome":null,"batch_processing_outcome":null}`, `{"broken":`} {
		got, err := contracts.ParseOutcomes(json.RawMessage(in))
		if err != nil || got.DecisionPointOutcome != nil || got.BatchProcessingOutcome != nil {
			t.Errorf("ParseOutcomes(%s) = %+v, %v; want no outcome", in, got, err)
		}
	}
	if got, err := contracts.ParseOutcomes(nil); err != nil || got != (contracts.Outcomes{}) {
		t.Errorf("ParseOutcomes(nil) = %+v, %v", got, err)
	}
}

func TestParseOutcomesValid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   string
		want contracts.Outcomes
	}{
		{"create_steps", `{"decision_point_outcome":{"type":"create_steps","step_names":["a","b"]},"score":7}`,
			contracts.Outcomes{DecisionPointOutcome: &contracts.DecisionPointOutcome{Type: "create_steps", StepNames: []string{"a", "b"}}}},
		{"no_branches", `{"decision_point_outcome":{"type":"no_branches"}}`,
			contracts.Outcomes{DecisionPointOutcome: &contracts.DecisionPointOutcome{Type: "no_branches"}}},
		{"no_branches with empty and null lists", `{"decision_point_outcome":{"type":"no_branches","step_names":[]},
			"batch_processing_outcome":{"type":"no_batches","cursor_configs":null}}`,
			contracts.Outcomes{DecisionPointOutcome: &contracts.DecisionPointOutcome{Type: "no_branches"},
				BatchProcessingOutcome: &contracts.BatchProcessingOutcome{Type: "no_batches"}}},
		{"unknown fields ignored", `{"decision_point_outcome":{"type":"no_branches","reason":"small order"}}`,
			contracts.Outcomes{DecisionPointOutcome: &contracts.DecisionPointOutcome{Type: "no_branches"}}},
		{"create_batches as Tasker sends it", `{"batch_processing_outcome":{"type":"create_batches","worker_template_name":"w","worker_count":2,
			"cursor_configs":[{"batch_id":"001","start_cursor":0,"end_cursor":5,"batch_size":5},
			                  {"batch_id":"002","start_cursor":"2026-01-01T00:00:00Z","end_cursor":{"page":3},"batch_size":5}],
			"total_items":10}}`,
			contracts.Outcomes{BatchProcessingOutcome: &contracts.BatchProcessingOutcome{Type: "create_batches", WorkerTemplateName: "w",
				WorkerCount: 2, TotalItems: 10, CursorConfigs: []contracts.CursorConfig{
					{BatchID: "001", StartCursor: json.RawMessage(`0`), EndCursor: json.RawMessage(`5`), BatchSize: 5},
					{BatchID: "002", StartCursor: json.RawMessage(`"2026-01-01T00:00:00Z"`), EndCursor: json.RawMessage(`{"page":3}`), BatchSize: 5},
				}}}},
		{"create_batches without count, size or total; null cursors", `{"batch_processing_outcome":{"type":"create_batches",
			"worker_template_name":"w","cursor_configs":[{"batch_id":"batch_001","start_cursor":null,"end_cursor":null}]}}`,
			contracts.Outcomes{BatchProcessingOutcome: &contracts.BatchProcessingOutcome{Type: "create_batches", WorkerTemplateName: "w",
				CursorConfigs: []contracts.CursorConfig{{BatchID: "batch_001", StartCursor: json.RawMessage(`null`), EndCursor: json.RawMessage(`null`)}}}}},
	}
	for _, c := range cases {
		got, err := contracts.ParseOutcomes(json.RawMessage(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %s, want %s", c.name, mustMarshal(t, got), mustMarshal(t, c.want))
		}
	}
}

func TestParseOutcomesInvalid(t *testing.T) {
	t.Parallel()
	batch := func(fields string) string {
		return `{"batch_processing_outcome":{"type":"create_batches","worker_template_name":"w",` + fields + `}}`
	}
	cursor := `{"batch_id":"001","start_cursor":0,"end_cursor":1}`
	cases := []struct {
		name, in, want string
	}{
		{"decision not an object", `{"decision_point_outcome":"create_steps"}`,
			`decision_point_outcome: not an object (got a string)`},
		{"decision type missing", `{"decision_point_outcome":{"step_names":["a"]}}`, `decision_point_outcome.type: missing`},
		{"decision type unknown", `{"decision_point_outcome":{"type":"maybe"}}`,
			`decision_point_outcome.type: "maybe" is not create_steps or no_branches`},
		{"decision type not a string", `{"decision_point_outcome":{"type":1}}`,
			`decision_point_outcome.type: not a string (got a number)`},
		{"Tasker's Rust enum name is not the wire tag", `{"decision_point_outcome":{"type":"CreateSteps","step_names":["a"]}}`,
			`decision_point_outcome.type: "CreateSteps" is not create_steps or no_branches`},
		{"create_steps without step_names", `{"decision_point_outcome":{"type":"create_steps"}}`,
			`decision_point_outcome.step_names: empty: create_steps needs at least one step name (use no_branches to create none)`},
		{"create_steps with empty step_names", `{"decision_point_outcome":{"type":"create_steps","step_names":[]}}`,
			`decision_point_outcome.step_names: empty: create_steps needs at least one step name (use no_branches to create none)`},
		{"step_names not an array", `{"decision_point_outcome":{"type":"create_steps","step_names":"a"}}`,
			`decision_point_outcome.step_names: not an array of step names (got a string)`},
		{"step name not a string", `{"decision_point_outcome":{"type":"create_steps","step_names":["a",2]}}`,
			`decision_point_outcome.step_names[1]: not a string (got a number)`},
		{"empty step name", `{"decision_point_outcome":{"type":"create_steps","step_names":["a",""]}}`,
			`decision_point_outcome.step_names[1]: empty`},
		{"duplicate step name", `{"decision_point_outcome":{"type":"create_steps","step_names":["a","b","a"]}}`,
			`decision_point_outcome.step_names[2]: "a" repeats step_names[0]`},
		{"no_branches with names", `{"decision_point_outcome":{"type":"no_branches","step_names":["a"]}}`,
			`decision_point_outcome.step_names: must be empty with no_branches`},

		{"batch not an object", `{"batch_processing_outcome":[1]}`, `batch_processing_outcome: not an object (got an array)`},
		{"batch type missing", `{"batch_processing_outcome":{}}`, `batch_processing_outcome.type: missing`},
		{"batch type unknown", `{"batch_processing_outcome":{"type":"some_batches"}}`,
			`batch_processing_outcome.type: "some_batches" is not create_batches or no_batches`},
		{"no worker_template_name", `{"batch_processing_outcome":{"type":"create_batches","cursor_configs":[` + cursor + `]}}`,
			`batch_processing_outcome.worker_template_name: missing: create_batches needs the batch_worker step to instantiate`},
		{"empty worker_template_name", `{"batch_processing_outcome":{"type":"create_batches","worker_template_name":"","cursor_configs":[` + cursor + `]}}`,
			`batch_processing_outcome.worker_template_name: missing: create_batches needs the batch_worker step to instantiate`},
		{"worker_template_name not a string", `{"batch_processing_outcome":{"type":"create_batches","worker_template_name":true}}`,
			`batch_processing_outcome.worker_template_name: not a string (got a boolean)`},
		{"no cursor_configs", batch(`"worker_count":0`),
			`batch_processing_outcome.cursor_configs: empty: create_batches needs at least one cursor config (use no_batches to create none)`},
		{"empty cursor_configs", batch(`"cursor_configs":[]`),
			`batch_processing_outcome.cursor_configs: empty: create_batches needs at least one cursor config (use no_batches to create none)`},
		{"cursor_configs not an array", batch(`"cursor_configs":{"batch_id":"001"}`),
			`batch_processing_outcome.cursor_configs: not an array of cursor configs (got an object)`},
		{"cursor config not an object", batch(`"cursor_configs":[` + cursor + `,"002"]`),
			`batch_processing_outcome.cursor_configs[1]: not an object (got a string)`},
		{"batch_id missing", batch(`"cursor_configs":[` + cursor + `,` + cursor + `,{"start_cursor":0,"end_cursor":1}]`),
			`batch_processing_outcome.cursor_configs[2].batch_id: missing`},
		{"batch_id empty", batch(`"cursor_configs":[` + cursor + `,{"batch_id":"002","start_cursor":1,"end_cursor":2},{"batch_id":"","start_cursor":0,"end_cursor":1}]`),
			`batch_processing_outcome.cursor_configs[2].batch_id: empty`},
		{"batch_id a number", batch(`"cursor_configs":[{"batch_id":1,"start_cursor":0,"end_cursor":1}]`),
			`batch_processing_outcome.cursor_configs[0].batch_id: not a string (got a number)`},
		{"batch_id not a name", batch(`"cursor_configs":[{"batch_id":"a/b","start_cursor":0,"end_cursor":1}]`),
			`batch_processing_outcome.cursor_configs[0].batch_id: "a/b": use at most 64 letters, digits, '_', '.' or '-' (it becomes part of a step name)`},
		{"batch_id too long", batch(`"cursor_configs":[{"batch_id":"` + strings.Repeat("x", 65) + `","start_cursor":0,"end_cursor":1}]`),
			`batch_processing_outcome.cursor_configs[0].batch_id: "` + strings.Repeat("x", 65) + `": use at most 64 letters, digits, '_', '.' or '-' (it becomes part of a step name)`},
		{"duplicate batch_id", batch(`"cursor_configs":[` + cursor + `,{"batch_id":"002","start_cursor":1,"end_cursor":2},` + cursor + `]`),
			`batch_processing_outcome.cursor_configs[2].batch_id: "001" repeats cursor_configs[0] (worker step names must be unique)`},
		{"start_cursor missing", batch(`"cursor_configs":[{"batch_id":"001","end_cursor":1}]`),
			`batch_processing_outcome.cursor_configs[0].start_cursor: missing`},
		{"end_cursor missing", batch(`"cursor_configs":[{"batch_id":"001","start_cursor":0}]`),
			`batch_processing_outcome.cursor_configs[0].end_cursor: missing`},
		{"batch_size negative", batch(`"cursor_configs":[{"batch_id":"001","start_cursor":0,"end_cursor":1,"batch_size":-1}]`),
			`batch_processing_outcome.cursor_configs[0].batch_size: not an integer from 0 to 9223372036854775807 (got -1)`},
		{"batch_size fractional", batch(`"cursor_configs":[{"batch_id":"001","start_cursor":0,"end_cursor":1,"batch_size":1.5}]`),
			`batch_processing_outcome.cursor_configs[0].batch_size: not an integer from 0 to 9223372036854775807 (got 1.5)`},
		{"worker_count differs", batch(`"worker_count":3,"cursor_configs":[` + cursor + `]`),
			`batch_processing_outcome.worker_count: 3, but there are 1 cursor_configs`},
		{"worker_count sent as 0", batch(`"worker_count":0,"cursor_configs":[` + cursor + `]`),
			`batch_processing_outcome.worker_count: 0, but there are 1 cursor_configs`},
		{"worker_count a string", batch(`"worker_count":"1","cursor_configs":[` + cursor + `]`),
			`batch_processing_outcome.worker_count: not an integer from 0 to 9223372036854775807 (got "1")`},
		{"total_items negative", batch(`"total_items":-5,"cursor_configs":[` + cursor + `]`),
			`batch_processing_outcome.total_items: not an integer from 0 to 9223372036854775807 (got -5)`},
		{"no_batches with cursors", `{"batch_processing_outcome":{"type":"no_batches","cursor_configs":[` + cursor + `]}}`,
			`batch_processing_outcome.cursor_configs: must be empty with no_batches`},
		{"a bad batch outcome next to a good decision", `{"decision_point_outcome":{"type":"no_branches"},"batch_processing_outcome":{"type":""}}`,
			`batch_processing_outcome.type: missing`},
	}
	if math.MaxInt != math.MaxInt64 {
		t.Skip("error messages quote the 64-bit int range")
	}
	for _, c := range cases {
		got, err := contracts.ParseOutcomes(json.RawMessage(c.in))
		if err == nil {
			t.Errorf("%s: accepted as %+v", c.name, got)
			continue
		}
		if err.Error() != c.want {
			t.Errorf("%s:\n got: %v\nwant: %s", c.name, err, c.want)
		}
		var fe *contracts.FieldError
		if !errors.As(err, &fe) || !strings.HasPrefix(c.want, fe.Field+": ") {
			t.Errorf("%s: not a *FieldError naming the field: %#v", c.name, err)
		}
		if got != (contracts.Outcomes{}) {
			t.Errorf("%s: returned %+v with the error", c.name, got)
		}
	}
}

// Result builds the JSON ParseOutcomes reads back, merges extra without
// modifying it, and lets the outcome win over an extra key of its name.
func TestOutcomeResult(t *testing.T) {
	t.Parallel()
	extra := map[string]any{"score": 7, "decision_point_outcome": "overwritten"}
	res := contracts.CreateSteps("manual_review", "notify").Result(extra)
	if !res.Success || res.Status != contracts.StatusCompleted || res.Error != nil {
		t.Fatalf("not a success: %+v", res)
	}
	if want := `{"decision_point_outcome":{"type":"create_steps","step_names":["manual_review","notify"]},"score":7}`; string(res.Result) != want {
		t.Errorf("Result = %s, want %s", res.Result, want)
	}
	if extra["decision_point_outcome"] != "overwritten" || len(extra) != 2 {
		t.Errorf("extra was modified: %v", extra)
	}

	cases := []struct {
		name string
		res  contracts.StepResult
		want string
	}{
		{"no_branches", contracts.NoBranches().Result(nil), `{"decision_point_outcome":{"type":"no_branches"}}`},
		{"no_batches", contracts.NoBatches().Result(map[string]any{"reason": "empty"}),
			`{"batch_processing_outcome":{"type":"no_batches"},"reason":"empty"}`},
		{"create_batches", contracts.CreateBatches("process_batch", contracts.EvenCursors(5, 2), 5).Result(nil),
			`{"batch_processing_outcome":{"type":"create_batches","worker_template_name":"process_batch","worker_count":2,"cursor_configs":[` +
				`{"batch_id":"001","start_cursor":0,"end_cursor":3,"batch_size":3},{"batch_id":"002","start_cursor":3,"end_cursor":5,"batch_size":2}],"total_items":5}}`},
	}
	for _, c := range cases {
		if !c.res.Success || string(c.res.Result) != c.want {
			t.Errorf("%s: got %+v (%s), want %s", c.name, c.res, c.res.Result, c.want)
		}
	}

	// Every helper-built outcome reads back as itself.
	for _, o := range []contracts.DecisionPointOutcome{contracts.CreateSteps("a"), contracts.NoBranches()} {
		got, err := contracts.ParseOutcomes(o.Result(nil).Result)
		if err != nil || !reflect.DeepEqual(*got.DecisionPointOutcome, o) {
			t.Errorf("%+v read back as %+v, %v", o, got.DecisionPointOutcome, err)
		}
	}
	for _, o := range []contracts.BatchProcessingOutcome{
		contracts.CreateBatches("w", contracts.CursorsBySize(1000, 300), 1000), contracts.NoBatches(),
	} {
		got, err := contracts.ParseOutcomes(o.Result(nil).Result)
		if err != nil || !reflect.DeepEqual(*got.BatchProcessingOutcome, o) {
			t.Errorf("%+v read back as %+v, %v", o, got.BatchProcessingOutcome, err)
		}
	}

	// An extra that is not JSON fails the step visibly instead of panicking.
	bad := contracts.NoBranches().Result(map[string]any{"ch": make(chan int)})
	if bad.Success || bad.Error == nil || bad.Error.Retryable || bad.Error.ErrorType != contracts.ErrorTypeInvalidResponse ||
		!strings.Contains(bad.Error.Message, "decision_point_outcome") {
		t.Errorf("unencodable extra gave %+v", bad)
	}
}

// Validate on Go values agrees with ParseOutcomes on their JSON.
func TestOutcomeValidate(t *testing.T) {
	t.Parallel()
	cursors := contracts.EvenCursors(4, 2)
	dup := []contracts.CursorConfig{cursors[0], cursors[0]}
	cases := []struct {
		name string
		err  error
		want string // "" for valid
	}{
		{"create_steps", contracts.CreateSteps("a").Validate(), ""},
		{"create_steps of nothing", contracts.CreateSteps().Validate(), "decision_point_outcome.step_names: empty"},
		{"zero decision", contracts.DecisionPointOutcome{}.Validate(), "decision_point_outcome.type: missing"},
		{"create_batches", contracts.CreateBatches("w", cursors, 4).Validate(), ""},
		{"create_batches of nothing", contracts.CreateBatches("w", nil, 0).Validate(), "batch_processing_outcome.cursor_configs: empty"},
		{"no worker template", contracts.CreateBatches("", cursors, 4).Validate(), "batch_processing_outcome.worker_template_name: missing"},
		{"duplicate batch", contracts.CreateBatches("w", dup, 4).Validate(), `batch_processing_outcome.cursor_configs[1].batch_id: "001" repeats`},
		{"nil start cursor", contracts.CreateBatches("w", []contracts.CursorConfig{{BatchID: "x", EndCursor: json.RawMessage(`1`)}}, 1).Validate(),
			"batch_processing_outcome.cursor_configs[0].start_cursor: missing"},
		{"negative total", contracts.CreateBatches("w", cursors, -1).Validate(), "batch_processing_outcome.total_items: -1 is negative"},
		{"wrong count", contracts.BatchProcessingOutcome{Type: "create_batches", WorkerTemplateName: "w", WorkerCount: 3, CursorConfigs: cursors}.Validate(),
			"batch_processing_outcome.worker_count: 3, but there are 2 cursor_configs"},
		{"zero batch outcome", contracts.BatchProcessingOutcome{}.Validate(), "batch_processing_outcome.type: missing"},
		{"no_batches", contracts.NoBatches().Validate(), ""},
	}
	for _, c := range cases {
		switch {
		case c.want == "" && c.err != nil:
			t.Errorf("%s: %v", c.name, c.err)
		case c.want != "" && (c.err == nil || !strings.HasPrefix(c.err.Error(), c.want)):
			t.Errorf("%s: got %v, want %s...", c.name, c.err, c.want)
		}
	}
}

// The published schema and ParseOutcomes agree: what ParseOutcomes accepts
// the schema accepts, and the other way round except where ParseOutcomes is
// stricter than a schema can say (duplicate batch ids, worker_count).
func TestParseOutcomesAgreesWithSchema(t *testing.T) {
	t.Parallel()
	s := loadSchemas(t)
	docs := []string{
		`{"decision_point_outcome":{"type":"create_steps","step_names":["a","b"]}}`,
		`{"decision_point_outcome":{"type":"create_steps","step_names":[]}}`,
		`{"decision_point_outcome":{"type":"create_steps","step_names":["a","a"]}}`,
		`{"decision_point_outcome":{"type":"create_steps","step_names":[""]}}`,
		`{"decision_point_outcome":{"type":"create_steps"}}`,
		`{"decision_point_outcome":{"type":"no_branches"}}`,
		`{"decision_point_outcome":{"type":"no_branches","step_names":[]}}`,
		`{"decision_point_outcome":{"type":"no_branches","step_names":["a"]}}`,
		`{"decision_point_outcome":{"type":"maybe"}}`,
		`{"decision_point_outcome":{}}`,
		`{"batch_processing_outcome":{"type":"no_batches"}}`,
		`{"batch_processing_outcome":{"type":"no_batches","cursor_configs":[{"batch_id":"001","start_cursor":0,"end_cursor":1}]}}`,
		`{"batch_processing_outcome":{"type":"create_batches","worker_template_name":"w","cursor_configs":[]}}`,
		`{"batch_processing_outcome":{"type":"create_batches","worker_template_name":"w","cursor_configs":[{"batch_id":"001","start_cursor":0,"end_cursor":1}]}}`,
		`{"batch_processing_outcome":{"type":"create_batches","worker_template_name":"w","cursor_configs":[{"batch_id":"","start_cursor":0,"end_cursor":1}]}}`,
		`{"batch_processing_outcome":{"type":"create_batches","worker_template_name":"w","cursor_configs":[{"batch_id":"a b","start_cursor":0,"end_cursor":1}]}}`,
		`{"batch_processing_outcome":{"type":"create_batches","worker_template_name":"w","cursor_configs":[{"batch_id":"001","end_cursor":1}]}}`,
		`{"batch_processing_outcome":{"type":"create_batches","worker_template_name":"","cursor_configs":[{"batch_id":"001","start_cursor":0,"end_cursor":1}]}}`,
		`{"batch_processing_outcome":{"type":"create_batches","worker_template_name":"w","worker_count":-1,"cursor_configs":[{"batch_id":"001","start_cursor":0,"end_cursor":1}]}}`,
		`{"batch_processing_outcome":{"type":"create_batches","worker_template_name":"w","cursor_configs":[{"batch_id":"001","start_cursor":0,"end_cursor":1},{"batch_id":"001","start_cursor":1,"end_cursor":2}]}}`,
		`{"batch_processing_outcome":{"type":"create_batches","worker_template_name":"w","worker_count":2,"cursor_configs":[{"batch_id":"001","start_cursor":0,"end_cursor":1}]}}`,
		`{"batch_processing_outcome":{"type":"create_batches","worker_template_name":"w","total_items":-1,"cursor_configs":[{"batch_id":"001","start_cursor":0,"end_cursor":1}]}}`,
	}
	sch := s.lax["step-result.schema.json"]
	for _, d := range docs {
		_, parseErr := contracts.ParseOutcomes(json.RawMessage(d))
		schemaErr := sch.Validate(instance(t, `{"success":true,"result":`+d+`}`))
		switch {
		case parseErr == nil && schemaErr != nil:
			t.Errorf("ParseOutcomes accepts what the schema rejects: %s\n%v", d, schemaErr)
		case schemaErr == nil && parseErr != nil && !strings.Contains(parseErr.Error(), "repeats cursor_configs") &&
			!strings.HasPrefix(parseErr.Error(), "batch_processing_outcome.worker_count: 2, but"):
			t.Errorf("the schema accepts what ParseOutcomes rejects: %s\n%v", d, parseErr)
		}
	}

	// Outcomes built by the helpers are valid, strictly: the schema
	// describes every field they send.
	for _, res := range []contracts.StepResult{
		contracts.CreateSteps("a", "b").Result(map[string]any{"why": "big order"}),
		contracts.NoBranches().Result(nil),
		contracts.CreateBatches("w", contracts.EvenCursors(10, 3), 10).Result(nil),
		contracts.NoBatches().Result(nil),
	} {
		if err := s.strict["step-result.schema.json"].Validate(instance(t, res)); err != nil {
			t.Errorf("%s is invalid: %v", res.Result, err)
		}
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
