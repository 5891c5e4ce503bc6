package workflow

import (
	"encoding/json"
	"errors"
	"iter"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// fakeTask is a task's steps by template step name (one instance each
// unless given more).
type fakeTask struct {
	byTpl map[string][]Instance
	names map[string]bool
}

func newFakeTask() *fakeTask {
	return &fakeTask{byTpl: map[string][]Instance{}, names: map[string]bool{}}
}

func (f *fakeTask) add(templateStep, name string, id uuid.UUID, done bool) {
	f.byTpl[templateStep] = append(f.byTpl[templateStep], Instance{ID: id, Done: done})
	f.names[name] = true
}

func (f *fakeTask) Len() int                 { return len(f.names) }
func (f *fakeTask) HasName(name string) bool { return f.names[name] }
func (f *fakeTask) Instances(templateStep string) iter.Seq[Instance] {
	return slices.Values(f.byTpl[templateStep])
}

// ids returns a NewID that counts from 1 (uuid with that last byte).
func ids() func() uuid.UUID {
	var n byte
	return func() uuid.UUID { n++; return uuid.UUID{15: n} }
}

func id(n byte) uuid.UUID { return uuid.UUID{15: n} }

func cursors(batchIDs ...string) []contracts.CursorConfig {
	var out []contracts.CursorConfig
	for i, b := range batchIDs {
		out = append(out, contracts.CursorConfig{BatchID: b, StartCursor: json.RawMessage(`0`), EndCursor: json.RawMessage([]byte{byte('1' + i)})})
	}
	return out
}

func TestInstantiateBatch(t *testing.T) {
	t.Parallel()
	tpl := mustParse(t, readTestdata(t, "csv_batch.yaml"))
	self := uuid.UUID{0: 0xaa}
	task := newFakeTask()
	task.add("analyze_csv", "analyze_csv", self, true)
	dyn, err := tpl.ExpandBatch("analyze_csv", "process_csv_batch", task.HasName)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tpl.Instantiate(Growth{
		StepID: self, StepName: "analyze_csv", TemplateStep: "analyze_csv", Expansion: dyn,
		Cursors: cursors("001", "002", "003"), Retry: RetryDefaults{BackoffBaseMs: 50},
		MaxStepsPerOutcome: 100, MaxStepsPerTask: 100, NewID: ids(),
	}, task)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		name, def string
		parents   []uuid.UUID
		pending   int
	}
	want := []row{
		// The outcome's own step is written complete with these: a parent
		// still pending, though the task reads it as done.
		{"process_csv_batch_001", "process_csv_batch", []uuid.UUID{self}, 1},
		{"process_csv_batch_002", "process_csv_batch", []uuid.UUID{self}, 1},
		{"process_csv_batch_003", "process_csv_batch", []uuid.UUID{self}, 1},
		// A parent naming the worker means every instance.
		{"aggregate_csv_results", "aggregate_csv_results", []uuid.UUID{id(1), id(2), id(3)}, 3},
		{"publish_report", "publish_report", []uuid.UUID{id(4)}, 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d steps, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.ID != id(byte(i+1)) || g.Name != w.name || g.Def.Name != w.def || !slices.Equal(g.Parents, w.parents) || g.PendingParents != w.pending {
			t.Errorf("step %d = %s (%s) id %s parents %v pending %d, want %+v", i, g.Name, g.Def.Name, g.ID, g.Parents, g.PendingParents, w)
		}
	}
	// Retry: the template's max_attempts, the operator's base, the defaults.
	if r := got[0].Retry; r.MaxAttempts != 3 || r.BackoffBaseMs != 50 || r.MaxBackoffMs != MaxBackoffMsDefault || !*r.Retryable {
		t.Errorf("worker retry = %+v", r)
	}
	var in contracts.BatchWorkerInputs
	if err := json.Unmarshal(got[1].Inputs, &in); err != nil {
		t.Fatal(err)
	}
	if in.Cursor.BatchID != "002" || string(in.Cursor.EndCursor) != "2" || in.IsNoOp ||
		in.BatchMetadata.CursorField != "row_number" || in.BatchMetadata.FailureStrategy != string(ContinueOnFailure) {
		t.Errorf("worker 002 inputs = %+v", in)
	}
	if got[3].Inputs != nil {
		t.Errorf("convergence step has inputs %s", got[3].Inputs)
	}
	if task.Len() != 1 {
		t.Errorf("Instantiate changed the task: %d steps", task.Len())
	}
}

// A parent already done does not hold its new child back; one not done, and
// a fresh one, do.
func TestInstantiatePendingParents(t *testing.T) {
	t.Parallel()
	tpl := mustParse(t, readTestdata(t, "approval.yaml"))
	task := newFakeTask()
	task.add("validate_request", "validate_request", id(101), true)
	task.add("audit_log", "audit_log", id(102), false)
	task.add("routing_decision", "routing_decision", id(103), true)
	got, err := tpl.Instantiate(Growth{
		StepID: id(103), StepName: "routing_decision", TemplateStep: "routing_decision",
		Expansion: []DynamicStep{
			{Name: "auto_approve", Parents: []string{"validate_request", "audit_log"}},
			{Name: "finalize_approval", Parents: []string{"auto_approve", "validate_request"}},
		},
		MaxStepsPerOutcome: 10, MaxStepsPerTask: 10, NewID: ids(),
	}, task)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].PendingParents != 1 || !slices.Equal(got[0].Parents, []uuid.UUID{id(101), id(102)}) ||
		got[1].PendingParents != 1 || !slices.Equal(got[1].Parents, []uuid.UUID{id(1), id(101)}) {
		t.Errorf("got %+v", got)
	}
}

func TestInstantiateRefuses(t *testing.T) {
	t.Parallel()
	tpl := mustParse(t, readTestdata(t, "csv_batch.yaml"))
	dyn := []DynamicStep{
		{Name: "process_csv_batch", Parents: []string{"analyze_csv"}},
		{Name: "aggregate_csv_results", Parents: []string{"process_csv_batch"}},
	}
	tests := []struct {
		name     string
		g        Growth
		taken    string // a step name the task has
		taskLen  int
		wantType string
		want     string
	}{
		{"per outcome", Growth{Cursors: cursors("a", "b", "c"), MaxStepsPerOutcome: 3, MaxStepsPerTask: 100}, "", 0,
			contracts.ErrorTypeStepLimit, `step "analyze_csv": the outcome would create 4 steps; the limit per outcome is 3`},
		{"per task", Growth{Cursors: cursors("a"), MaxStepsPerOutcome: 10, MaxStepsPerTask: 5}, "", 4,
			contracts.ErrorTypeStepLimit, `step "analyze_csv": the outcome would bring the task to 6 steps; the limit per task is 5`},
		{"name taken", Growth{Cursors: cursors("a", "b"), MaxStepsPerOutcome: 10, MaxStepsPerTask: 100}, "process_csv_batch_b", 0,
			contracts.ErrorTypeInvalidOutcome, `step "analyze_csv": the task already has a step named "process_csv_batch_b"`},
		{"same batch id twice", Growth{Cursors: cursors("a", "a"), MaxStepsPerOutcome: 10, MaxStepsPerTask: 100}, "", 0,
			contracts.ErrorTypeInvalidOutcome, `step "analyze_csv": the task already has a step named "process_csv_batch_a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			task := newFakeTask()
			task.add("analyze_csv", "analyze_csv", id(100), false)
			for i := range tt.taskLen - 1 {
				task.add("other", "other"+string(rune('a'+i)), id(byte(110+i)), true)
			}
			if tt.taken != "" {
				task.add("process_csv_batch", tt.taken, id(120), false)
			}
			g := tt.g
			g.StepID, g.StepName, g.TemplateStep, g.Expansion = id(100), "analyze_csv", "analyze_csv", dyn
			got, err := tpl.Instantiate(g, task)
			var oe *OutcomeError
			if !errors.As(err, &oe) || oe.Type != tt.wantType || oe.Error() != tt.want {
				t.Fatalf("Instantiate = %v, %v; want %s %q", got, err, tt.wantType, tt.want)
			}
		})
	}
}

// A no_batches outcome makes one placeholder worker; without any
// batch_config the batch takes Tasker's defaults.
func TestInstantiateNoBatches(t *testing.T) {
	t.Parallel()
	tpl := mustParse(t, []byte(`name: plain
namespace_name: t
version: 1.0.0
steps:
  - name: split
    type: batchable
    handler: {callable: split}
  - name: work
    type: batch_worker
    dependencies: [split]
    handler: {callable: work}
  - name: total
    type: deferred_convergence
    dependencies: [work]
    handler: {callable: total}
`))
	worker, err := tpl.NoBatchesWorker("split")
	if err != nil || worker != "work" {
		t.Fatalf("NoBatchesWorker = %q, %v", worker, err)
	}
	task := newFakeTask()
	task.add("split", "split", id(100), false)
	dyn, err := tpl.ExpandBatch("split", worker, task.HasName)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tpl.Instantiate(Growth{
		StepID: id(100), StepName: "split", TemplateStep: "split", Expansion: dyn,
		Cursors: cursors("000"), NoOp: true, MaxStepsPerOutcome: 10, MaxStepsPerTask: 10,
	}, task)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "work_000" || got[1].Name != "total" || got[0].ID == got[1].ID || got[0].ID.Version() != 7 {
		t.Fatalf("got %+v", got)
	}
	var in contracts.BatchWorkerInputs
	if err := json.Unmarshal(got[0].Inputs, &in); err != nil {
		t.Fatal(err)
	}
	if !in.IsNoOp || in.BatchMetadata.CursorField != "id" || in.BatchMetadata.FailureStrategy != string(ContinueOnFailure) {
		t.Errorf("inputs = %+v", in)
	}
}

func TestNoBatchesWorker(t *testing.T) {
	t.Parallel()
	db := mustParse(t, readTestdata(t, "decision_batch.yaml"))
	if w, err := db.NoBatchesWorker("even_analyzer"); err != nil || w != "even_worker" {
		t.Errorf("from batch_config: %q, %v", w, err)
	}
	_, err := db.NoBatchesWorker("route")
	var oe *OutcomeError
	if !errors.As(err, &oe) || oe.Type != contracts.ErrorTypeInvalidOutcome || !strings.Contains(err.Error(), "has 0 batch_worker steps") {
		t.Errorf("not batchable: %v", err)
	}
}
