package workflow

import (
	"slices"
	"strconv"
	"testing"
)

// want describes one planned step by names, for readable tables.
type wantStep struct {
	name      string
	parents   []string
	ancestors []string
}

func checkPlan(t *testing.T, p *Plan, want []wantStep, deferred []string) {
	t.Helper()
	names := func(idx []int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, p.Steps[i].Name)
		}
		return out
	}
	if len(p.Steps) != len(want) {
		var got []string
		for _, s := range p.Steps {
			got = append(got, s.Name)
		}
		t.Fatalf("plan has steps %v, want %d steps", got, len(want))
	}
	for i, w := range want {
		s := p.Steps[i]
		if s.Index != i || s.Name != w.name {
			t.Errorf("step %d = %d %s, want %s", i, s.Index, s.Name, w.name)
		}
		if got := names(s.Parents); !slices.Equal(got, w.parents) {
			t.Errorf("%s parents = %v, want %v", s.Name, got, w.parents)
		}
		if got := names(s.Ancestors); !slices.Equal(got, w.ancestors) {
			t.Errorf("%s ancestors = %v, want %v", s.Name, got, w.ancestors)
		}
		if s.PendingParents != len(w.parents) {
			t.Errorf("%s pending parents = %d, want %d", s.Name, s.PendingParents, len(w.parents))
		}
		for _, a := range s.Ancestors {
			if a >= i {
				t.Errorf("%s has ancestor %d not before it: order is not topological", s.Name, a)
			}
		}
	}
	if !slices.Equal(p.Deferred, deferred) {
		t.Errorf("deferred = %v, want %v", p.Deferred, deferred)
	}
}

func TestPlan(t *testing.T) {
	var linear []wantStep
	for i := 1; i <= 10; i++ {
		w := wantStep{name: "s" + strconv.Itoa(i)}
		if i > 1 {
			w.parents = []string{"s" + strconv.Itoa(i-1)}
		}
		for j := 1; j < i; j++ {
			w.ancestors = append(w.ancestors, "s"+strconv.Itoa(j))
		}
		linear = append(linear, w)
	}
	tests := []struct {
		file     string
		doc      string
		want     []wantStep
		deferred []string
	}{
		{
			file: "diamond.yaml",
			want: []wantStep{
				{"a", nil, nil},
				{"b", []string{"a"}, []string{"a"}},
				{"c", []string{"a"}, []string{"a"}},
				{"d", []string{"b", "c"}, []string{"a", "b", "c"}},
			},
		},
		{file: "linear10.yaml", want: linear},
		{
			// Declared out of order: the plan is still topological, with
			// ties broken by template order.
			doc: header + `steps:
  - {name: d, dependencies: [b, c], handler: {callable: x}}
  - {name: c, dependencies: [a], handler: {callable: x}}
  - {name: b, dependencies: [a], handler: {callable: x}}
  - {name: a, handler: {callable: x}}
  - {name: z, handler: {callable: x}}`,
			want: []wantStep{
				{"a", nil, nil},
				{"c", []string{"a"}, []string{"a"}},
				{"b", []string{"a"}, []string{"a"}},
				{"d", []string{"c", "b"}, []string{"a", "c", "b"}},
				{"z", nil, nil},
			},
		},
		{
			// Decision branches, the convergence step after them and what
			// follows it are deferred; the decision and a sibling are planned.
			file: "approval.yaml",
			want: []wantStep{
				{"validate_request", nil, nil},
				{"routing_decision", []string{"validate_request"}, []string{"validate_request"}},
				{"audit_log", []string{"validate_request"}, []string{"validate_request"}},
			},
			deferred: []string{"finalize_approval", "auto_approve", "manager_approval", "finance_review", "archive"},
		},
		{
			// The batch_worker template and everything after it are deferred.
			file:     "csv_batch.yaml",
			want:     []wantStep{{"analyze_csv", nil, nil}},
			deferred: []string{"process_csv_batch", "aggregate_csv_results", "publish_report"},
		},
		{
			file: "decision_batch.yaml",
			want: []wantStep{
				{"start", nil, nil},
				{"evens", []string{"start"}, []string{"start"}},
				{"odds", []string{"start"}, []string{"start"}},
				{"route", []string{"evens", "odds"}, []string{"start", "evens", "odds"}},
			},
			deferred: []string{"even_analyzer", "even_worker", "even_total", "odd_analyzer", "odd_worker", "odd_total"},
		},
		{
			// A step with some static and some deferred dependencies is
			// deferred; a deferred_convergence step over static steps and a
			// step after a batchable (not after its workers) are planned.
			doc: header + `steps:
  - {name: a, handler: {callable: x}}
  - {name: pick, type: decision, dependencies: [a], handler: {callable: x}}
  - {name: branch, dependencies: [pick], handler: {callable: x}}
  - {name: mixed, dependencies: [a, branch], handler: {callable: x}}
  - {name: join, type: deferred_convergence, dependencies: [a], handler: {callable: x}}
  - {name: split, type: batchable, dependencies: [join], handler: {callable: x}}
  - {name: work, type: batch_worker, dependencies: [split], handler: {callable: x}}
  - {name: after_split, dependencies: [split], handler: {callable: x}}
  - {name: total, type: deferred_convergence, dependencies: [work, after_split], handler: {callable: x}}`,
			want: []wantStep{
				{"a", nil, nil},
				{"pick", []string{"a"}, []string{"a"}},
				{"join", []string{"a"}, []string{"a"}},
				{"split", []string{"join"}, []string{"a", "join"}},
				{"after_split", []string{"split"}, []string{"a", "join", "split"}},
			},
			deferred: []string{"branch", "mixed", "work", "total"},
		},
	}
	for _, tt := range tests {
		name := tt.file
		if name == "" {
			name = tt.want[0].name + "..."
		}
		t.Run(name, func(t *testing.T) {
			doc := []byte(tt.doc)
			if tt.file != "" {
				doc = readTestdata(t, tt.file)
			}
			p, err := mustParse(t, doc).Plan(RetryDefaults{})
			if err != nil {
				t.Fatal(err)
			}
			checkPlan(t, p, tt.want, tt.deferred)
		})
	}
}

func TestPlanResolvesRetryAndTimeout(t *testing.T) {
	tpl := mustParse(t, []byte(header+`steps:
  - {name: defaults, handler: {callable: x}}
  - {name: explicit, handler: {callable: x}, timeout_seconds: 45,
     retry: {retryable: false, max_attempts: 1, backoff: fixed, backoff_base_ms: 200, max_backoff_ms: 400}}
  - {name: partial, handler: {callable: x}, retry: {limit: 7}}`))
	tests := []struct {
		name     string
		defaults RetryDefaults
		want     map[string]Retry
		timeout  map[string]int
	}{
		{
			name:     "package defaults",
			defaults: RetryDefaults{},
			want: map[string]Retry{
				"defaults": {MaxAttempts: 3, Strategy: BackoffExponential, BackoffBaseMs: 1000, MaxBackoffMs: MaxBackoffMsDefault},
				"explicit": {MaxAttempts: 1, Strategy: BackoffFixed, BackoffBaseMs: 200, MaxBackoffMs: 400},
				"partial":  {MaxAttempts: 7, Strategy: BackoffExponential, BackoffBaseMs: 1000, MaxBackoffMs: MaxBackoffMsDefault},
			},
		},
		{
			name:     "operator defaults",
			defaults: RetryDefaults{MaxAttempts: 10, BackoffBaseMs: 50, MaxBackoffMs: 5000},
			want: map[string]Retry{
				"defaults": {MaxAttempts: 10, Strategy: BackoffExponential, BackoffBaseMs: 50, MaxBackoffMs: 5000},
				"explicit": {MaxAttempts: 1, Strategy: BackoffFixed, BackoffBaseMs: 200, MaxBackoffMs: 400},
				"partial":  {MaxAttempts: 7, Strategy: BackoffExponential, BackoffBaseMs: 50, MaxBackoffMs: 5000},
			},
		},
	}
	retryable := map[string]bool{"defaults": true, "explicit": false, "partial": true}
	timeout := map[string]int{"defaults": 0, "explicit": 45, "partial": 0}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tpl.Plan(tt.defaults)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range p.Steps {
				got := s.Retry
				if got.Retryable == nil || *got.Retryable != retryable[s.Name] || s.Retryable != retryable[s.Name] {
					t.Errorf("%s retryable = %v/%v, want %v", s.Name, got.Retryable, s.Retryable, retryable[s.Name])
				}
				got.Retryable = nil
				if got != tt.want[s.Name] {
					t.Errorf("%s retry = %+v, want %+v", s.Name, got, tt.want[s.Name])
				}
				if s.MaxAttempts != tt.want[s.Name].MaxAttempts || s.TimeoutSeconds != timeout[s.Name] {
					t.Errorf("%s max attempts %d timeout %d", s.Name, s.MaxAttempts, s.TimeoutSeconds)
				}
			}
		})
	}
	if _, err := tpl.Plan(RetryDefaults{MaxAttempts: -1}); err == nil {
		t.Error("negative defaults accepted")
	}
}

func TestPlanIsACopy(t *testing.T) {
	tpl := mustParse(t, readTestdata(t, "diamond.yaml"))
	p1, _ := tpl.Plan(RetryDefaults{})
	p1.Steps[3].Ancestors[0] = 99
	p1.Steps[3].Parents[0] = 99
	*p1.Steps[0].Retry.Retryable = false
	p2, _ := tpl.Plan(RetryDefaults{})
	if p2.Steps[3].Ancestors[0] != 0 || p2.Steps[3].Parents[0] != 1 || !*p2.Steps[0].Retry.Retryable {
		t.Error("modifying a plan changed the template's cached plan")
	}
}

// TestConcurrentUse runs the read-only API from many goroutines; with -race
// it checks that a parsed Template is safe for concurrent use.
func TestConcurrentUse(t *testing.T) {
	tpl := mustParse(t, readTestdata(t, "tasker_order.yaml"))
	done := make(chan error)
	for range 8 {
		go func() {
			var err error
			for range 50 {
				if _, err = tpl.Plan(RetryDefaults{}); err != nil {
					break
				}
				if err = tpl.ValidateContext([]byte(`{"order":{"id":"o1","lines":[{"sku":"a","quantity":1}]}}`)); err != nil {
					break
				}
				_ = tpl.Step("ship")
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
