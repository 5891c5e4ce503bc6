package openapi

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// TestStateEnums: struct tags cannot name constants, so the REST enums of
// the states are written out; this keeps them equal to contracts' lists.
func TestStateEnums(t *testing.T) {
	tasks := strings.Join(stateNames(contracts.TaskStates()), ",")
	steps := strings.Join(stateNames(contracts.StepStates()), ",")
	for _, c := range []struct {
		typ   any
		field string
		want  string
	}{
		{TaskSummary{}, "State", tasks},
		{listTasksInput{}, "State", tasks},
		{Step{}, "State", steps},
	} {
		f, ok := reflect.TypeOf(c.typ).FieldByName(c.field)
		if !ok {
			t.Fatalf("%T has no field %s", c.typ, c.field)
		}
		if got := f.Tag.Get("enum"); got != c.want {
			t.Errorf("%T.%s enum = %q, want %q", c.typ, c.field, got, c.want)
		}
	}
}

// stateNames returns states as the strings of an enum.
func stateNames[S ~string](states []S) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out
}
