package dev

import (
	"encoding/json"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
)

// devTaskView is the part of GET /v1/tasks/{id} the checks read.
type devTaskView struct {
	State string `json:"state"`
	Steps []struct {
		Name     string `json:"name"`
		State    string `json:"state"`
		Attempts int    `json:"attempts"`
		Results  struct {
			Result   json.RawMessage `json:"result"`
			Metadata struct {
				Handler string `json:"handler"`
			} `json:"metadata"`
		} `json:"results"`
	} `json:"steps"`
}

// getDevTask reads the task whose "task <uuid> <label> COMPLETE" line is in
// out through the API at addr.
func getDevTask(t *testing.T, out, addr, label string) devTaskView {
	t.Helper()
	m := regexp.MustCompile(`(?m)^task (\S+) ` + label + ` COMPLETE`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s did not complete:\n%s", label, out)
	}
	resp, err := clitest.NoKeepAlive.Get("http://" + addr + "/v1/tasks/" + m[1])
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/tasks/%s: %s %s (%v)", m[1], resp.Status, b, err)
	}
	var task devTaskView
	if err := json.Unmarshal(b, &task); err != nil {
		t.Fatal(err)
	}
	return task
}

// checkDevDynamic checks the approval and batch ETL demos that follow the
// order: every step ran in the language dev routes it to (or the Go
// service, Go*, when that runtime is missing), as the progress lines and the
// handler each result names show, and the results are right: finalize saw
// exactly the two approvals taken, and the aggregate equals the totals
// computed here.
func checkDevDynamic(t *testing.T, out, addr string) {
	t.Helper()
	service := checkDevDynamicOutput(t, out)
	checkDevApproval(t, out, addr, service)
	checkDevETL(t, out, addr, service)
}

// checkDevDynamicOutput checks the progress lines of the dynamic demos and
// returns the handler each step's result must name (by template step name).
func checkDevDynamicOutput(t *testing.T, out string) map[string]string {
	t.Helper()
	order := strings.Index(out, "ORD-1001 COMPLETE")
	if approval := strings.Index(out, "submitting approval request REQ-2001"); order < 0 || approval < order {
		t.Errorf("the approval does not come after the order:\n%s", out)
	}
	who := map[string]string{}     // step (template name) -> who ran it, as a pattern
	service := map[string]string{} // step -> the handler of its result's metadata
	for _, l := range devLanguages {
		for _, r := range l.routes() {
			step := strings.TrimSuffix(r.step, "_*")
			who[step], service[step] = l.label, "examples/handlers/"+l.key
			if regexp.MustCompile(`(?m)^  ` + l.label + `\s+NOT RUNNING`).MatchString(out) {
				who[step], service[step] = `Go\*`, "examples/handlers/go"
			}
		}
	}
	line := func(label, step, rest string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^  ` + label + ` ` + step + `\s+` + who[strings.TrimRight(step, "_0123456789")] + `\s+` + rest)
	}
	res := []*regexp.Regexp{
		line("✓ REQ-2001", "route_approval", `attempt 1, .*decision: creates manager_approval, finance_review  \{"amount":7500\}`),
		line("✓ REQ-2001", "manager_approval", `attempt 1, `),
		line("✓ REQ-2001", "finance_review", `attempt 1, `),
		line("✓ REQ-2001", "finalize_approval", `attempt 1, .*"decision":"approved"`),
		line("✓ ETL-3001", "analyze_rows", `attempt 1, .*batches: 4 workers transform_rows_001\.\.004 over 10000 items`),
		line("✓ ETL-3001", "aggregate_rows", `attempt 1, `),
	}
	for _, id := range []string{"001", "002", "003", "004"} {
		res = append(res, line("✓ ETL-3001", "transform_rows_"+id, `attempt 1, `))
	}
	for _, re := range res {
		if !re.MatchString(out) {
			t.Errorf("the output does not match %s:\n%s", re, out)
		}
	}
	if strings.Contains(out, "REQ-2001 auto_approve") {
		t.Errorf("auto_approve ran for 7,500:\n%s", out)
	}
	// Three calls per worker of 2,500 rows: two checkpoints each.
	for _, id := range []string{"001", "002", "003", "004"} {
		cps := line("⤷ ETL-3001", "transform_rows_"+id, `checkpoint at (\d+) \((\d+) done\), .*attempt 1 kept`).FindAllStringSubmatch(out, -1)
		if len(cps) != 2 {
			t.Errorf("transform_rows_%s: %d checkpoint lines, want 2:\n%s", id, len(cps), out)
		}
	}

	return service
}

// checkDevApproval checks the approval task: every step complete in one
// attempt by its service, and finalize saw the two approvals taken.
func checkDevApproval(t *testing.T, out, addr string, service map[string]string) {
	t.Helper()
	approval := getDevTask(t, out, addr, "REQ-2001")
	var names []string
	for _, s := range approval.Steps {
		names = append(names, s.Name)
		if s.State != "complete" || s.Attempts != 1 || s.Results.Metadata.Handler != service[s.Name] {
			t.Errorf("REQ-2001 %s: %s after %d attempts, ran by %q; want complete after 1, by %q", s.Name, s.State, s.Attempts, s.Results.Metadata.Handler, service[s.Name])
		}
		if s.Name == "finalize_approval" {
			var got struct {
				Decision  string
				Approvals []string
				Amount    float64
			}
			if err := json.Unmarshal(s.Results.Result, &got); err != nil || got.Decision != "approved" || got.Amount != 7500 ||
				!slices.Equal(got.Approvals, []string{"manager_approval", "finance_review"}) {
				t.Errorf("finalize_approval saw %s, want the two approvals taken, approved", s.Results.Result)
			}
		}
	}
	slices.Sort(names)
	if want := []string{"finalize_approval", "finance_review", "manager_approval", "route_approval"}; !slices.Equal(names, want) {
		t.Errorf("REQ-2001 has the steps %v, want %v", names, want)
	}

}

// checkDevETL checks the batch ETL task: four workers of 2,500 rows in three
// calls each, and the aggregate equals the totals computed here.
func checkDevETL(t *testing.T, out, addr string, service map[string]string) {
	t.Helper()
	etl := getDevTask(t, out, addr, "ETL-3001")
	var sum int64
	for id := range int64(devETLRows) {
		sum += id * 7919 % 10007 // examples/templates/batch_etl.yaml
	}
	workers := 0
	for _, s := range etl.Steps {
		step := strings.TrimRight(s.Name, "_0123456789") // transform_rows_001 -> transform_rows
		if step == "transform_rows" {
			workers++
		}
		if s.State != "complete" || s.Attempts != 1 || s.Results.Metadata.Handler != service[step] {
			t.Errorf("ETL-3001 %s: %s after %d attempts, ran by %q; want complete after 1, by %q", s.Name, s.State, s.Attempts, s.Results.Metadata.Handler, service[step])
		}
		var got struct{ Rows, RowsExpected, Workers, FailedWorkers, AmountCents, Calls int64 }
		decodeInto(t, s.Results.Result, map[string]*int64{"rows": &got.Rows, "rows_expected": &got.RowsExpected, "workers": &got.Workers,
			"failed_workers": &got.FailedWorkers, "amount_cents": &got.AmountCents, "calls": &got.Calls})
		switch {
		case step == "transform_rows" && (got.Rows != 2500 || got.Calls != 3):
			t.Errorf("%s: %s, want 2500 rows in 3 calls", s.Name, s.Results.Result)
		case s.Name == "aggregate_rows" && (got.Rows != devETLRows || got.RowsExpected != devETLRows || got.Workers != 4 || got.FailedWorkers != 0 || got.AmountCents != sum):
			t.Errorf("aggregate_rows: %s, want 4 workers, %d rows, amount_cents %d", s.Results.Result, devETLRows, sum)
		}
	}
	if workers != 4 || len(etl.Steps) != 6 {
		t.Errorf("ETL-3001 has %d steps with %d workers, want 6 with 4", len(etl.Steps), workers)
	}
}

// decodeInto reads the integer fields of a JSON object that are there.
func decodeInto(t *testing.T, raw json.RawMessage, fields map[string]*int64) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	for k, dst := range fields {
		if v, ok := m[k]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				t.Errorf("%s: %s: %v", raw, k, err)
			}
		}
	}
}
