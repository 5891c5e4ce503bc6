package contracts_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/tasker-runner/tasker-runner/contracts"
)

func TestYield(t *testing.T) {
	t.Parallel()
	s := loadSchemas(t)
	cases := []struct {
		name string
		cp   contracts.Checkpoint
		want string
	}{
		{"full", contracts.Checkpoint{Cursor: json.RawMessage(`2500`), ItemsProcessed: 2500, AccumulatedResults: json.RawMessage(`{"total":18250.5}`)},
			`{"cursor":2500,"items_processed":2500,"accumulated_results":{"total":18250.5}}`},
		{"page token, nothing accumulated", contracts.Checkpoint{Cursor: json.RawMessage(`"tok-9"`), ItemsProcessed: 10},
			`{"cursor":"tok-9","items_processed":10}`},
		{"zero", contracts.Checkpoint{}, `{"cursor":null,"items_processed":0}`},
	}
	for _, c := range cases {
		res := contracts.Yield(c.cp)
		if res.Status != contracts.StatusYielded || res.Success || res.Error != nil || string(res.Checkpoint) != c.want {
			t.Errorf("%s: Yield = %+v (checkpoint %s), want checkpoint %s", c.name, res, res.Checkpoint, c.want)
		}
		// Valid strictly: the schema describes every field Yield sends.
		if err := s.strict["step-result.schema.json"].Validate(instance(t, res)); err != nil {
			t.Errorf("%s: invalid result: %v", c.name, err)
		}
		// What the runner hands back decodes to the same checkpoint.
		env := &contracts.StepEnvelope{Step: contracts.StepInfo{Checkpoint: res.Checkpoint}}
		got, ok, err := env.ResumeFrom()
		want := c.cp
		if want.Cursor == nil {
			want.Cursor = json.RawMessage(`null`)
		}
		if !ok || err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: ResumeFrom = %+v, %v, %v; want %+v", c.name, got, ok, err, want)
		}
	}

	bad := contracts.Yield(contracts.Checkpoint{Cursor: json.RawMessage(`{oops`)})
	if bad.Success || bad.Status != contracts.StatusFailed || bad.Error == nil || bad.Error.Retryable ||
		bad.Error.ErrorType != contracts.ErrorTypeInvalidResponse {
		t.Errorf("invalid cursor JSON gave %+v", bad)
	}
}

func TestResumeFrom(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in string
		want     contracts.Checkpoint
		ok       bool
		err      string
	}{
		{"never yielded", ``, contracts.Checkpoint{}, false, ""},
		{"null", `null`, contracts.Checkpoint{}, false, ""},
		{"Tasker's shape with extra fields", `{"cursor":{"page":3},"items_processed":300,"accumulated_results":[1,2],"mine":true}`,
			contracts.Checkpoint{Cursor: json.RawMessage(`{"page":3}`), ItemsProcessed: 300, AccumulatedResults: json.RawMessage(`[1,2]`)}, true, ""},
		{"cursor only", `{"cursor":5}`, contracts.Checkpoint{Cursor: json.RawMessage(`5`)}, true, ""},
		{"not an object", `[5]`, contracts.Checkpoint{}, false, `step.checkpoint: not an object (got an array)`},
		{"negative count", `{"cursor":5,"items_processed":-1}`, contracts.Checkpoint{}, false,
			`step.checkpoint.items_processed: not an integer from 0 to 9223372036854775807 (got -1)`},
		{"count a string", `{"cursor":5,"items_processed":"5"}`, contracts.Checkpoint{}, false,
			`step.checkpoint.items_processed: not an integer from 0 to 9223372036854775807 (got "5")`},
	}
	for _, c := range cases {
		env := &contracts.StepEnvelope{Step: contracts.StepInfo{Checkpoint: json.RawMessage(c.in)}}
		got, ok, err := env.ResumeFrom()
		if c.err != "" {
			var fe *contracts.FieldError
			if err == nil || err.Error() != c.err || !errors.As(err, &fe) || ok {
				t.Errorf("%s: got %v, %v; want error %s", c.name, ok, err, c.err)
			}
			continue
		}
		if err != nil || ok != c.ok || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, %v, %v; want %+v, %v", c.name, got, ok, err, c.want, c.ok)
		}
	}
}

func TestCheckpointIntCursor(t *testing.T) {
	t.Parallel()
	cases := []struct {
		cursor string
		want   int64
		err    string
	}{
		{`2500`, 2500, ""},
		{`9223372036854775807`, math.MaxInt64, ""},
		{``, 0, "contracts: checkpoint cursor: missing"},
		{`"2500"`, 0, `contracts: checkpoint cursor: "2500" is not an integer`},
		{`2.5`, 0, `contracts: checkpoint cursor: 2.5 is not an integer`},
	}
	for _, c := range cases {
		n, err := contracts.Checkpoint{Cursor: json.RawMessage(c.cursor)}.IntCursor()
		switch {
		case c.err == "" && (err != nil || n != c.want):
			t.Errorf("IntCursor(%s) = %d, %v", c.cursor, n, err)
		case c.err != "" && (err == nil || err.Error() != c.err):
			t.Errorf("IntCursor(%s): error %v, want %s", c.cursor, err, c.err)
		}
	}
}
