package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// The steps of the two dynamic example workflows (examples/templates):
// approval.yaml, a decision point, and batch_etl.yaml, a batch over
// generated rows with checkpoints. They answer with the outcome and
// checkpoint helpers of package contracts; a step function may return a
// [contracts.StepResult], which the service sends as it is.

// Approvals are the branches of the approval workflow, in template order.
var Approvals = []string{"auto_approve", "manager_approval", "finance_review"}

// Thresholds of the approval workflow.
const (
	AutoApproveBelow   = 1000   // below: auto_approve
	FinanceReviewFrom  = 5000   // from: manager_approval and finance_review
	FinanceRefuseAbove = 25_000 // finance_review refuses above
)

// route is the decision step: which approvals the request's amount needs.
func route(_ context.Context, env *contracts.StepEnvelope) (any, error) {
	var c struct {
		Request struct {
			Amount *float64 `json:"amount"`
		} `json:"request"`
	}
	if json.Unmarshal(env.Task.Context, &c) != nil || c.Request.Amount == nil {
		return nil, &Failure{Type: "invalid_context", Message: "the task context has no request.amount"}
	}
	amount := *c.Request.Amount
	extra := map[string]any{"amount": amount}
	switch {
	case amount <= 0:
		return contracts.NoBranches().Result(extra), nil // nothing to approve
	case amount < AutoApproveBelow:
		return contracts.CreateSteps("auto_approve").Result(extra), nil
	case amount < FinanceReviewFrom:
		return contracts.CreateSteps("manager_approval").Result(extra), nil
	default:
		return contracts.CreateSteps("manager_approval", "finance_review").Result(extra), nil
	}
}

// approve returns the step function of one approval: it reads the amount
// from the decision's result (contracts.DependencyValue, by path).
func approve(approver string, limit float64) StepFunc {
	return func(_ context.Context, env *contracts.StepEnvelope) (any, error) {
		amount, err := contracts.DependencyValue[float64](env, "route_approval", "amount")
		if err != nil {
			return nil, &Failure{Type: "missing_dependency", Message: err.Error()}
		}
		out := map[string]any{"approved": amount <= limit, "approver": approver, "amount": amount}
		if amount > limit {
			out["reason"] = fmt.Sprintf("over the %s limit of %.0f", approver, limit)
		}
		return out, nil
	}
}

// finalize is the convergence step: it runs once whichever approvals were
// created (none after no_branches) and records the decision.
func finalize(_ context.Context, env *contracts.StepEnvelope) (any, error) {
	amount, err := contracts.DependencyValue[float64](env, "route_approval", "amount")
	if err != nil {
		return nil, &Failure{Type: "missing_dependency", Message: err.Error()}
	}
	taken := []string{}
	decision := "nothing_to_approve"
	for _, name := range Approvals {
		if _, ok := env.DependencyResults[name]; !ok {
			continue // a branch not taken: never created
		}
		taken = append(taken, name)
		approved, err := contracts.DependencyValue[bool](env, name, "approved")
		switch {
		case err != nil || !approved:
			decision = "rejected"
		case decision != "rejected":
			decision = "approved"
		}
	}
	return map[string]any{"decision": decision, "approvals": taken, "amount": amount}, nil
}

// etlParams is the task context of the batch ETL.
type etlParams struct {
	Rows            int64 `json:"rows"`
	Workers         int   `json:"workers"`
	CheckpointEvery int64 `json:"checkpoint_every"`
}

func readETL(env *contracts.StepEnvelope) (etlParams, error) {
	var c struct {
		ETL *etlParams `json:"etl"`
	}
	if json.Unmarshal(env.Task.Context, &c) != nil || c.ETL == nil || c.ETL.Rows < 0 {
		return etlParams{}, &Failure{Type: "invalid_context", Message: "the task context has no etl.rows"}
	}
	p := *c.ETL
	if p.Workers < 1 {
		p.Workers = 4
	}
	if p.CheckpointEvery < 1 {
		p.CheckpointEvery = 1000
	}
	return p, nil
}

// RowAmount is the generated row's amount, in cents: deterministic from
// its id, so every language computes the same totals.
func RowAmount(id int64) int64 { return id * 7919 % 10007 }

// analyze is the batchable step: it splits the rows into even cursor
// ranges, one transform_rows worker each (none for 0 rows).
func analyze(_ context.Context, env *contracts.StepEnvelope) (any, error) {
	p, err := readETL(env)
	if err != nil {
		return nil, err
	}
	if p.Rows == 0 {
		return contracts.NoBatches().Result(map[string]any{"rows": 0}), nil
	}
	return contracts.CreateBatches("transform_rows", contracts.EvenCursors(p.Rows, p.Workers), p.Rows).
		Result(map[string]any{"rows": p.Rows}), nil
}

// etlProgress is what a worker carries from call to call in its checkpoint.
type etlProgress struct {
	Rows        int64 `json:"rows"`
	AmountCents int64 `json:"amount_cents"`
	Calls       int64 `json:"calls"`
}

// transform is the batch worker: it processes its cursor range
// checkpoint_every rows per call, yielding a checkpoint after each call but
// the last, and resumes from the last checkpoint.
func transform(_ context.Context, env *contracts.StepEnvelope) (any, error) {
	p, err := readETL(env)
	if err != nil {
		return nil, err
	}
	in, err := env.BatchWorker()
	if err != nil {
		return nil, &Failure{Type: "invalid_inputs", Message: err.Error()}
	}
	if in.IsNoOp {
		return map[string]any{"batch_id": in.Cursor.BatchID, "rows": 0, "amount_cents": 0, "calls": 0}, nil
	}
	start, end, err := in.Cursor.IntRange()
	if err != nil {
		return nil, &Failure{Type: "invalid_inputs", Message: err.Error()}
	}
	pos, acc := start, etlProgress{}
	cp, resumed, err := env.ResumeFrom()
	if err != nil {
		return nil, &Failure{Type: "invalid_checkpoint", Message: err.Error()}
	}
	if resumed {
		if pos, err = cp.IntCursor(); err != nil {
			return nil, &Failure{Type: "invalid_checkpoint", Message: err.Error()}
		}
		if err := json.Unmarshal(cp.AccumulatedResults, &acc); err != nil {
			return nil, &Failure{Type: "invalid_checkpoint", Message: "accumulated_results: " + err.Error()}
		}
	}
	stop := min(pos+p.CheckpointEvery, end)
	for id := pos; id < stop; id++ {
		acc.Rows++
		acc.AmountCents += RowAmount(id)
	}
	acc.Calls++
	if stop < end {
		b, _ := json.Marshal(acc) // three integers always encode
		return contracts.Yield(contracts.Checkpoint{Cursor: json.RawMessage(fmt.Sprint(stop)), ItemsProcessed: stop - start, AccumulatedResults: b}), nil
	}
	return map[string]any{"batch_id": in.Cursor.BatchID, "start": start, "end": end,
		"rows": acc.Rows, "amount_cents": acc.AmountCents, "calls": acc.Calls}, nil
}

// aggregate is the convergence step: it adds up every worker's result
// (a worker that failed for good shows as success false, under the batch's
// continue_on_failure strategy).
func aggregate(_ context.Context, env *contracts.StepEnvelope) (any, error) {
	expected, err := contracts.DependencyValue[int64](env, "analyze_rows", "rows")
	if err != nil {
		return nil, &Failure{Type: "missing_dependency", Message: err.Error()}
	}
	var workers, failed, rows, amount int64
	for name := range env.DependencyResults {
		if !strings.HasPrefix(name, "transform_rows_") {
			continue
		}
		n, err := contracts.DependencyValue[int64](env, name, "rows")
		if errors.Is(err, contracts.ErrDependencyFailed) {
			failed++
			continue
		}
		if errors.Is(err, contracts.ErrFieldNotFound) {
			continue // the placeholder worker of no_batches: {"no_op": true}
		}
		if err != nil {
			return nil, &Failure{Type: "invalid_worker_result", Message: err.Error()}
		}
		a, err := contracts.DependencyValue[int64](env, name, "amount_cents")
		if err != nil {
			return nil, &Failure{Type: "invalid_worker_result", Message: err.Error()}
		}
		workers, rows, amount = workers+1, rows+n, amount+a
	}
	return map[string]any{"workers": workers, "failed_workers": failed, "rows": rows,
		"rows_expected": expected, "amount_cents": amount}, nil
}
