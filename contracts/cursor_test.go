package contracts_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// ranges returns the [start, end) of each cursor, failing on non-integers.
func ranges(t *testing.T, cs []contracts.CursorConfig) [][2]int64 {
	t.Helper()
	var out [][2]int64
	for _, c := range cs {
		s, e, err := c.IntRange()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, [2]int64{s, e})
	}
	return out
}

func TestEvenCursors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		total   int64
		workers int
		want    [][2]int64
	}{
		{0, 3, nil},
		{-5, 3, nil},
		{1, 1, [][2]int64{{0, 1}}},
		{10, 1, [][2]int64{{0, 10}}},
		{10, 0, [][2]int64{{0, 10}}},  // below 1 means 1
		{10, -2, [][2]int64{{0, 10}}}, // below 1 means 1
		{10, 2, [][2]int64{{0, 5}, {5, 10}}},
		{10, 3, [][2]int64{{0, 4}, {4, 7}, {7, 10}}},
		{10, 4, [][2]int64{{0, 3}, {3, 6}, {6, 8}, {8, 10}}}, // Tasker's ceiling split: 3,3,3,1
		{10, 6, [][2]int64{{0, 2}, {2, 4}, {4, 6}, {6, 8}, {8, 9}, {9, 10}}}, // Tasker's: five of 2
		{3, 5, [][2]int64{{0, 1}, {1, 2}, {2, 3}}},                           // never more workers than items
		{1000, 3, [][2]int64{{0, 334}, {334, 667}, {667, 1000}}},
	}
	for _, c := range cases {
		got := contracts.EvenCursors(c.total, c.workers)
		if r := ranges(t, got); !reflect.DeepEqual(r, c.want) {
			t.Errorf("EvenCursors(%d, %d) = %v, want %v", c.total, c.workers, r, c.want)
		}
	}

	// Properties over many shapes: contiguous cover of [0,total), sizes
	// within one of each other, batch_size = end-start, ids 001, 002, ...
	for total := int64(1); total <= 60; total++ {
		for workers := 1; workers <= 70; workers += 3 {
			cs := contracts.EvenCursors(total, workers)
			if want := min(int64(workers), total); int64(len(cs)) != want {
				t.Fatalf("EvenCursors(%d, %d): %d batches, want %d", total, workers, len(cs), want)
			}
			checkCover(t, cs, total)
			lo, hi := int64(math.MaxInt64), int64(0)
			for _, c := range cs {
				lo, hi = min(lo, int64(c.BatchSize)), max(hi, int64(c.BatchSize))
			}
			if hi-lo > 1 {
				t.Fatalf("EvenCursors(%d, %d): sizes from %d to %d", total, workers, lo, hi)
			}
		}
	}

	// Large totals do not overflow.
	big := contracts.EvenCursors(math.MaxInt64, 3)
	checkCover(t, big, math.MaxInt64)
}

func TestCursorsBySize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		total int64
		size  int
		want  [][2]int64
	}{
		{0, 10, nil},
		{-1, 10, nil},
		{10, 3, [][2]int64{{0, 3}, {3, 6}, {6, 9}, {9, 10}}},
		{9, 3, [][2]int64{{0, 3}, {3, 6}, {6, 9}}},
		{5, 10, [][2]int64{{0, 5}}},
		{5, 0, [][2]int64{{0, 5}}},  // below 1 means one batch
		{5, -1, [][2]int64{{0, 5}}}, // below 1 means one batch
		{3, 1, [][2]int64{{0, 1}, {1, 2}, {2, 3}}},
	}
	for _, c := range cases {
		got := contracts.CursorsBySize(c.total, c.size)
		if r := ranges(t, got); !reflect.DeepEqual(r, c.want) {
			t.Errorf("CursorsBySize(%d, %d) = %v, want %v", c.total, c.size, r, c.want)
		}
		checkCover(t, got, max(c.total, 0))
	}
	for total := int64(1); total <= 50; total++ {
		for size := 1; size <= 55; size += 2 {
			cs := contracts.CursorsBySize(total, size)
			checkCover(t, cs, total)
			for i, c := range cs {
				if c.BatchSize > size || (i < len(cs)-1 && c.BatchSize != size) {
					t.Fatalf("CursorsBySize(%d, %d)[%d] has %d items", total, size, i, c.BatchSize)
				}
			}
		}
	}
}

// checkCover checks that cs cover [0,total) contiguously, with consistent
// batch sizes and Tasker's batch ids in order.
func checkCover(t *testing.T, cs []contracts.CursorConfig, total int64) {
	t.Helper()
	var next int64
	for i, c := range cs {
		s, e, err := c.IntRange()
		if err != nil {
			t.Fatal(err)
		}
		if s != next || e <= s || int64(c.BatchSize) != e-s || c.BatchID != contracts.BatchID(i+1) {
			t.Fatalf("batch %d is %+v (%d..%d), expected to start at %d", i, c, s, e, next)
		}
		next = e
	}
	if next != total {
		t.Fatalf("batches end at %d, want %d", next, total)
	}
}

func TestBatchID(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{1: "001", 2: "002", 42: "042", 999: "999", 1000: "1000", 12345: "12345"} {
		if got := contracts.BatchID(n); got != want {
			t.Errorf("BatchID(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestNewCursorConfig(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	c, err := contracts.NewCursorConfig(3, day, day.Add(24*time.Hour), 86400)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	if want := `{"batch_id":"003","start_cursor":"2026-03-01T00:00:00Z","end_cursor":"2026-03-02T00:00:00Z","batch_size":86400}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	if _, _, err := c.IntRange(); err == nil || err.Error() != `contracts: batch "003": start_cursor: "2026-03-01T00:00:00Z" is not an integer` {
		t.Errorf("IntRange of timestamps: %v", err)
	}
	if _, err := contracts.NewCursorConfig(1, 0, math.Inf(1), 1); err == nil || !strings.Contains(err.Error(), "batch 001: end_cursor") {
		t.Errorf("unencodable end cursor: %v", err)
	}
	if _, err := contracts.NewCursorConfig(1, make(chan int), 1, 1); err == nil || !strings.Contains(err.Error(), "batch 001: start_cursor") {
		t.Errorf("unencodable start cursor: %v", err)
	}
}

func TestIntRange(t *testing.T) {
	t.Parallel()
	cases := []struct {
		start, end string
		s, e       int64
		err        string
	}{
		{"0", "10", 0, 10, ""},
		{" -5 ", "5", -5, 5, ""},
		{"7", "7", 7, 7, ""},
		{"9223372036854775807", "9223372036854775807", math.MaxInt64, math.MaxInt64, ""},
		{"", "1", 0, 0, `contracts: batch "b": start_cursor: missing`},
		{"1", "", 0, 0, `contracts: batch "b": end_cursor: missing`},
		{"1.5", "3", 0, 0, `contracts: batch "b": start_cursor: 1.5 is not an integer`},
		{"1", "1e3", 0, 0, `contracts: batch "b": end_cursor: 1e3 is not an integer`},
		{`"1"`, "3", 0, 0, `contracts: batch "b": start_cursor: "1" is not an integer`},
		{"null", "3", 0, 0, `contracts: batch "b": start_cursor: null is not an integer`},
		{"10", "5", 0, 0, `contracts: batch "b": end_cursor 5 is before start_cursor 10`},
	}
	for _, c := range cases {
		cfg := contracts.CursorConfig{BatchID: "b", StartCursor: json.RawMessage(c.start), EndCursor: json.RawMessage(c.end)}
		s, e, err := cfg.IntRange()
		switch {
		case c.err == "" && (err != nil || s != c.s || e != c.e):
			t.Errorf("IntRange(%s, %s) = %d, %d, %v", c.start, c.end, s, e, err)
		case c.err != "" && (err == nil || err.Error() != c.err):
			t.Errorf("IntRange(%s, %s): error %v, want %s", c.start, c.end, err, c.err)
		}
	}
}

func TestBatchWorker(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		inputs string
		want   contracts.BatchWorkerInputs
		err    string
	}{
		{"Tasker's shape", `{"cursor":{"batch_id":"002","start_cursor":500,"end_cursor":1000,"batch_size":500},
			"batch_metadata":{"cursor_field":"id","failure_strategy":"continue_on_failure"},"is_no_op":false,"other":1}`,
			contracts.BatchWorkerInputs{
				Cursor:        contracts.CursorConfig{BatchID: "002", StartCursor: json.RawMessage(`500`), EndCursor: json.RawMessage(`1000`), BatchSize: 500},
				BatchMetadata: contracts.BatchMetadata{CursorField: "id", FailureStrategy: "continue_on_failure"},
			}, ""},
		{"no-op placeholder", `{"cursor":{"batch_id":"000","start_cursor":0,"end_cursor":0,"batch_size":0},"is_no_op":true}`,
			contracts.BatchWorkerInputs{
				Cursor: contracts.CursorConfig{BatchID: "000", StartCursor: json.RawMessage(`0`), EndCursor: json.RawMessage(`0`)},
				IsNoOp: true,
			}, ""},
		{"flat cursor config", `{"batch_id":"001","start_cursor":"a","end_cursor":"m"}`,
			contracts.BatchWorkerInputs{Cursor: contracts.CursorConfig{BatchID: "001", StartCursor: json.RawMessage(`"a"`), EndCursor: json.RawMessage(`"m"`)}}, ""},
		{"no inputs", ``, contracts.BatchWorkerInputs{}, `step.inputs: empty: step "work" is not a batch worker`},
		{"null inputs", `null`, contracts.BatchWorkerInputs{}, `step.inputs: empty: step "work" is not a batch worker`},
		{"ordinary step", `{}`, contracts.BatchWorkerInputs{}, `step.inputs.cursor: missing: step "work" is not a batch worker`},
		{"inputs an array", `[1]`, contracts.BatchWorkerInputs{}, `step.inputs: not an object (got an array)`},
		{"cursor a string", `{"cursor":"001"}`, contracts.BatchWorkerInputs{}, `step.inputs.cursor: not an object (got a string)`},
		{"cursor without batch_id", `{"cursor":{"start_cursor":0,"end_cursor":1}}`, contracts.BatchWorkerInputs{}, `step.inputs.cursor.batch_id: missing`},
		{"cursor with empty batch_id", `{"cursor":{"batch_id":"","start_cursor":0,"end_cursor":1}}`, contracts.BatchWorkerInputs{}, `step.inputs.cursor.batch_id: empty`},
		{"cursor without end", `{"cursor":{"batch_id":"1","start_cursor":0}}`, contracts.BatchWorkerInputs{}, `step.inputs.cursor.end_cursor: missing`},
		{"flat without start", `{"batch_id":"1","end_cursor":0}`, contracts.BatchWorkerInputs{}, `step.inputs.start_cursor: missing`},
		{"bad batch_size", `{"cursor":{"batch_id":"1","start_cursor":0,"end_cursor":1,"batch_size":"10"}}`, contracts.BatchWorkerInputs{},
			`step.inputs.cursor.batch_size: not an integer from 0 to 9223372036854775807 (got "10")`},
		{"metadata a list", `{"cursor":{"batch_id":"1","start_cursor":0,"end_cursor":1},"batch_metadata":[]}`, contracts.BatchWorkerInputs{},
			`step.inputs.batch_metadata: not an object (got an array)`},
		{"cursor_field a number", `{"cursor":{"batch_id":"1","start_cursor":0,"end_cursor":1},"batch_metadata":{"cursor_field":1}}`, contracts.BatchWorkerInputs{},
			`step.inputs.batch_metadata.cursor_field: not a string (got a number)`},
		{"is_no_op a string", `{"cursor":{"batch_id":"1","start_cursor":0,"end_cursor":1},"is_no_op":"yes"}`, contracts.BatchWorkerInputs{},
			`step.inputs.is_no_op: not a boolean (got a string)`},
	}
	if math.MaxInt != math.MaxInt64 {
		t.Skip("error messages quote the 64-bit int range")
	}
	for _, c := range cases {
		env := &contracts.StepEnvelope{Step: contracts.StepInfo{Name: "work", Inputs: json.RawMessage(c.inputs)}}
		got, err := env.BatchWorker()
		if c.err != "" {
			var fe *contracts.FieldError
			if err == nil || err.Error() != c.err || !errors.As(err, &fe) {
				t.Errorf("%s: error %#v, want %s", c.name, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}

	// What the runner marshals from the Go type decodes back the same.
	in := contracts.BatchWorkerInputs{Cursor: contracts.EvenCursors(10, 2)[1],
		BatchMetadata: contracts.BatchMetadata{CursorField: "id", FailureStrategy: "fail_fast"}}
	env := &contracts.StepEnvelope{Step: contracts.StepInfo{Inputs: json.RawMessage(mustMarshal(t, in))}}
	if got, err := env.BatchWorker(); err != nil || !reflect.DeepEqual(got, in) {
		t.Errorf("round trip: got %+v, %v; want %+v", got, err, in)
	}
}

// The envelope schema's batch_worker_inputs describes exactly the Go type.
func TestBatchWorkerInputsSchema(t *testing.T) {
	t.Parallel()
	s := loadSchemas(t)
	in := contracts.BatchWorkerInputs{Cursor: contracts.EvenCursors(10, 2)[0],
		BatchMetadata: contracts.BatchMetadata{CursorField: "id", FailureStrategy: "continue_on_failure"}, IsNoOp: true}
	const ref = "#/$defs/batch_worker_inputs"
	for _, docs := range []map[string]any{s.docs, strictDocs(s.docs)} {
		sch := compileFragment(t, docs, "step-envelope.schema.json", ref)
		if err := sch.Validate(instance(t, in)); err != nil {
			t.Errorf("a marshalled BatchWorkerInputs is invalid: %v", err)
		}
		if err := sch.Validate(instance(t, `{"cursor":{"batch_id":"","start_cursor":0,"end_cursor":1}}`)); err == nil {
			t.Error("an empty batch_id is valid")
		}
	}
	docs := map[string]any{"wrapped.schema.json": map[string]any{"$ref": "step-envelope.schema.json" + ref}}
	for k, v := range s.docs {
		docs[k] = v
	}
	checkCoverage(t, docs, "wrapped.schema.json", instance(t, in))
}

// strictDocs is the strict copy (see strictCopy) of every schema document.
func strictDocs(docs map[string]any) map[string]any {
	out := make(map[string]any, len(docs))
	for k, d := range docs {
		out[k] = strictCopy(d)
	}
	return out
}

// compileFragment compiles the schema at ref (a "#/$defs/..." fragment) of
// file, offline as compileSchemas does.
func compileFragment(t *testing.T, docs map[string]any, file, ref string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	for name, doc := range docs {
		if err := c.AddResource(schemaBase+name, doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	sch, err := c.Compile(schemaBase + file + ref)
	if err != nil {
		t.Fatalf("compiling %s%s: %v", file, ref, err)
	}
	return sch
}
