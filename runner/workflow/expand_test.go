package workflow

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func existing(names ...string) func(string) bool {
	return func(n string) bool { return slices.Contains(names, n) }
}

func TestExpandDecision(t *testing.T) {
	tpl := mustParse(t, readTestdata(t, "approval.yaml"))
	initial := []string{"validate_request", "routing_decision", "audit_log"}
	tests := []struct {
		name   string
		chosen []string
		exists []string
		want   []DynamicStep
	}{
		{
			name:   "two branches then convergence by intersection",
			chosen: []string{"finance_review", "manager_approval"},
			exists: initial,
			want: []DynamicStep{
				{Name: "manager_approval", Parents: []string{"routing_decision"}},
				{Name: "finance_review", Parents: []string{"routing_decision"}},
				{Name: "finalize_approval", Parents: []string{"manager_approval", "finance_review"}},
				{Name: "archive", Parents: []string{"finalize_approval"}},
			},
		},
		{
			name:   "one branch",
			chosen: []string{"auto_approve"},
			exists: initial,
			want: []DynamicStep{
				{Name: "auto_approve", Parents: []string{"routing_decision"}},
				{Name: "finalize_approval", Parents: []string{"auto_approve"}},
				{Name: "archive", Parents: []string{"finalize_approval"}},
			},
		},
		{name: "no branches", chosen: nil, exists: initial, want: nil},
		{
			name:   "repeated outcome creates nothing new",
			chosen: []string{"auto_approve"},
			exists: append(slices.Clone(initial), "auto_approve", "finalize_approval", "archive"),
			want:   nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tpl.ExpandDecision("routing_decision", tt.chosen, existing(tt.exists...))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tt.want, func(a, b DynamicStep) bool { return a.Name == b.Name && slices.Equal(a.Parents, b.Parents) }) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// A convergence step that also depends on the decision step runs whatever
// the outcome: after no_branches it waits for the decision step alone.
func TestExpandDecisionConvergesAfterNoBranches(t *testing.T) {
	tpl := mustParse(t, []byte(`
name: gate
namespace_name: n
version: "1"
steps:
  - {name: decide, type: decision, handler: {callable: d}}
  - {name: yes, dependencies: [decide], handler: {callable: y}}
  - {name: done, type: deferred_convergence, dependencies: [decide, yes], handler: {callable: c}}
`))
	same := func(a, b DynamicStep) bool { return a.Name == b.Name && slices.Equal(a.Parents, b.Parents) }
	got, err := tpl.ExpandDecision("decide", nil, existing("decide"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []DynamicStep{{Name: "done", Parents: []string{"decide"}}}; !slices.EqualFunc(got, want, same) {
		t.Errorf("no_branches: got %+v, want %+v", got, want)
	}
	got, err = tpl.ExpandDecision("decide", []string{"yes"}, existing("decide"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []DynamicStep{{Name: "yes", Parents: []string{"decide"}}, {Name: "done", Parents: []string{"decide", "yes"}}}; !slices.EqualFunc(got, want, same) {
		t.Errorf("create_steps: got %+v, want %+v", got, want)
	}
}

func TestExpandDecisionErrors(t *testing.T) {
	tpl := mustParse(t, readTestdata(t, "approval.yaml"))
	ex := existing("validate_request", "routing_decision")
	_, err := tpl.ExpandDecision("validate_request", []string{"auto_approve"}, ex)
	if err == nil || !strings.Contains(err.Error(), `step: "validate_request" is not a decision step`) {
		t.Errorf("err = %v", err)
	}
	_, err = tpl.ExpandDecision("routing_decision", []string{"ghost", "archive", "auto_approve", "auto_approve"}, ex)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	want := []Problem{
		{Path: "step_names[0]", Message: `unknown step "ghost"`},
		{Path: "step_names[1]", Message: `step "archive" does not depend on decision step "routing_decision"`},
		{Path: "step_names[3]", Message: `duplicate step "auto_approve"`},
	}
	if !slices.Equal(ve.Problems, want) {
		t.Errorf("problems = %+v", ve.Problems)
	}
	if !strings.HasPrefix(err.Error(), "workflow: invalid outcome: ") {
		t.Errorf("Error() = %q", err)
	}
}

func TestExpandBatch(t *testing.T) {
	csv := mustParse(t, readTestdata(t, "csv_batch.yaml"))
	got, err := csv.ExpandBatch("analyze_csv", "process_csv_batch", existing("analyze_csv"))
	if err != nil {
		t.Fatal(err)
	}
	want := []DynamicStep{
		{Name: "process_csv_batch", Parents: []string{"analyze_csv"}},
		{Name: "aggregate_csv_results", Parents: []string{"process_csv_batch"}},
		{Name: "publish_report", Parents: []string{"aggregate_csv_results"}},
	}
	if !slices.EqualFunc(got, want, func(a, b DynamicStep) bool { return a.Name == b.Name && slices.Equal(a.Parents, b.Parents) }) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	// Decision, then batch: the decision creates the batchable step only; the
	// batch creates the workers and the convergence step.
	db := mustParse(t, readTestdata(t, "decision_batch.yaml"))
	initial := []string{"start", "evens", "odds", "route"}
	got, err = db.ExpandDecision("route", []string{"even_analyzer"}, existing(initial...))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "even_analyzer" || !slices.Equal(got[0].Parents, []string{"route"}) {
		t.Errorf("decision expansion = %+v", got)
	}
	got, err = db.ExpandBatch("even_analyzer", "even_worker", existing(append(initial, "even_analyzer")...))
	if err != nil {
		t.Fatal(err)
	}
	want = []DynamicStep{
		{Name: "even_worker", Parents: []string{"even_analyzer"}},
		{Name: "even_total", Parents: []string{"even_worker"}},
	}
	if !slices.EqualFunc(got, want, func(a, b DynamicStep) bool { return a.Name == b.Name && slices.Equal(a.Parents, b.Parents) }) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	for _, tc := range []struct{ batchable, worker, want string }{
		{"route", "even_worker", `step: "route" is not a batchable step`},
		{"even_analyzer", "odd_worker", `worker_template_name: step "odd_worker" is not a batch_worker step depending on "even_analyzer"`},
		{"even_analyzer", "ghost", `worker_template_name: unknown step "ghost"`},
	} {
		if _, err := db.ExpandBatch(tc.batchable, tc.worker, existing(initial...)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ExpandBatch(%s, %s) err = %v, want %q", tc.batchable, tc.worker, err, tc.want)
		}
	}
}
