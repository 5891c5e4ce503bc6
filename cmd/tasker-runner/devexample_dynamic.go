package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
)

// The dynamic example workflows (examples/templates/approval.yaml and
// batch_etl.yaml): their tasks in the demo, and in-process Go versions of
// their steps for a language whose runtime is missing. The steps behave as
// the example services' do (examples/handlers/go/handler/dynamic.go; cmd
// may not import examples), built on the helpers of package contracts.

// devApproval returns the id and task context of the nth example approval
// request; the first one needs two approvals (manager and finance).
func devApproval(n int) (string, json.RawMessage) {
	id := fmt.Sprintf("REQ-%d", 2000+n)
	amounts := []float64{7500, 650, 2400, 0, 40_000}
	b, _ := json.Marshal(map[string]any{"request": map[string]any{
		"id": id, "amount": amounts[(n-1)%len(amounts)], "requester": "ada", "purpose": "a new build server",
	}})
	return id, b
}

// devETL returns the id and task context of the nth example ETL run: 10,000
// rows in 4 cursor ranges, a checkpoint every 1,000 rows.
func devETL(n int) (string, json.RawMessage) {
	id := fmt.Sprintf("ETL-%d", 3000+n)
	b, _ := json.Marshal(map[string]any{"etl": map[string]any{"id": id, "rows": devETLRows, "workers": 4, "checkpoint_every": 1000}})
	return id, b
}

const devETLRows = 10_000

// devRowAmount is the batch ETL's generated row amount, in cents.
func devRowAmount(id int64) int64 { return id * 7919 % 10007 }

// devStep is a step as the example services write them: a result value
// (or a contracts.StepResult, sent as it is) or an error.
type devStep func(env *contracts.StepEnvelope) (any, error)

func (f devStep) asFunc() callout.Func {
	return func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		v, err := f(env)
		if err != nil {
			return contracts.StepResult{}, callout.Permanent(err)
		}
		if res, ok := v.(contracts.StepResult); ok {
			return res, nil
		}
		b, err := json.Marshal(v)
		return contracts.StepResult{Success: true, Result: b}, err
	}
}

// devDynamicFallbacks are the in-process Go versions of the approval and
// batch ETL steps, by callable.
func devDynamicFallbacks() map[string]callout.Func {
	approvals := []string{"auto_approve", "manager_approval", "finance_review"}
	approve := func(approver string, limit float64) devStep {
		return func(env *contracts.StepEnvelope) (any, error) {
			amount, err := contracts.DependencyValue[float64](env, "route_approval", "amount")
			if err != nil {
				return nil, err
			}
			out := map[string]any{"approved": amount <= limit, "approver": approver, "amount": amount}
			if amount > limit {
				out["reason"] = fmt.Sprintf("over the %s limit of %.0f", approver, limit)
			}
			return out, nil
		}
	}
	type etlParams struct {
		Rows            int64 `json:"rows"`
		Workers         int   `json:"workers"`
		CheckpointEvery int64 `json:"checkpoint_every"`
	}
	readETL := func(env *contracts.StepEnvelope) (etlParams, error) {
		var c struct {
			ETL *etlParams `json:"etl"`
		}
		if json.Unmarshal(env.Task.Context, &c) != nil || c.ETL == nil || c.ETL.Rows < 0 {
			return etlParams{}, errors.New("the task context has no etl.rows")
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
	type progress struct {
		Rows        int64 `json:"rows"`
		AmountCents int64 `json:"amount_cents"`
		Calls       int64 `json:"calls"`
	}
	steps := map[string]devStep{
		"approval.route": func(env *contracts.StepEnvelope) (any, error) {
			var c struct {
				Request struct {
					Amount *float64 `json:"amount"`
				} `json:"request"`
			}
			if json.Unmarshal(env.Task.Context, &c) != nil || c.Request.Amount == nil {
				return nil, errors.New("the task context has no request.amount")
			}
			amount := *c.Request.Amount
			extra := map[string]any{"amount": amount}
			switch {
			case amount <= 0:
				return contracts.NoBranches().Result(extra), nil
			case amount < 1000:
				return contracts.CreateSteps("auto_approve").Result(extra), nil
			case amount < 5000:
				return contracts.CreateSteps("manager_approval").Result(extra), nil
			default:
				return contracts.CreateSteps("manager_approval", "finance_review").Result(extra), nil
			}
		},
		"approval.auto_approve":     approve("policy", 1000),
		"approval.manager_approval": approve("manager", math.Inf(1)),
		"approval.finance_review":   approve("finance", 25_000),
		"approval.finalize": func(env *contracts.StepEnvelope) (any, error) {
			amount, err := contracts.DependencyValue[float64](env, "route_approval", "amount")
			if err != nil {
				return nil, err
			}
			taken, decision := []string{}, "nothing_to_approve"
			for _, name := range approvals {
				if _, ok := env.DependencyResults[name]; !ok {
					continue
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
		},
		"etl.analyze": func(env *contracts.StepEnvelope) (any, error) {
			p, err := readETL(env)
			if err != nil {
				return nil, err
			}
			if p.Rows == 0 {
				return contracts.NoBatches().Result(map[string]any{"rows": 0}), nil
			}
			return contracts.CreateBatches("transform_rows", contracts.EvenCursors(p.Rows, p.Workers), p.Rows).Result(map[string]any{"rows": p.Rows}), nil
		},
		"etl.transform": func(env *contracts.StepEnvelope) (any, error) {
			p, err := readETL(env)
			if err != nil {
				return nil, err
			}
			in, err := env.BatchWorker()
			if err != nil {
				return nil, err
			}
			start, end, err := in.Cursor.IntRange()
			if err != nil {
				return nil, err
			}
			pos, acc := start, progress{}
			if cp, ok, err := env.ResumeFrom(); err != nil {
				return nil, err
			} else if ok {
				if pos, err = cp.IntCursor(); err != nil {
					return nil, err
				}
				if err := json.Unmarshal(cp.AccumulatedResults, &acc); err != nil {
					return nil, err
				}
			}
			stop := min(pos+p.CheckpointEvery, end)
			for id := pos; id < stop; id++ {
				acc.Rows++
				acc.AmountCents += devRowAmount(id)
			}
			acc.Calls++
			if stop < end {
				b, _ := json.Marshal(acc) // three integers always encode
				return contracts.Yield(contracts.Checkpoint{Cursor: json.RawMessage(fmt.Sprint(stop)), ItemsProcessed: stop - start, AccumulatedResults: b}), nil
			}
			return map[string]any{"batch_id": in.Cursor.BatchID, "start": start, "end": end,
				"rows": acc.Rows, "amount_cents": acc.AmountCents, "calls": acc.Calls}, nil
		},
		"etl.aggregate": func(env *contracts.StepEnvelope) (any, error) {
			expected, err := contracts.DependencyValue[int64](env, "analyze_rows", "rows")
			if err != nil {
				return nil, err
			}
			var workers, failed, rows, amount int64
			for name := range env.DependencyResults {
				if !strings.HasPrefix(name, "transform_rows_") {
					continue
				}
				n, err := contracts.DependencyValue[int64](env, name, "rows")
				switch {
				case errors.Is(err, contracts.ErrDependencyFailed):
					failed++
					continue
				case errors.Is(err, contracts.ErrFieldNotFound):
					continue // the placeholder worker of no_batches
				case err != nil:
					return nil, err
				}
				a, err := contracts.DependencyValue[int64](env, name, "amount_cents")
				if err != nil {
					return nil, err
				}
				workers, rows, amount = workers+1, rows+n, amount+a
			}
			return map[string]any{"workers": workers, "failed_workers": failed, "rows": rows,
				"rows_expected": expected, "amount_cents": amount}, nil
		},
	}
	out := make(map[string]callout.Func, len(steps))
	for callable, f := range steps {
		out[callable] = f.asFunc()
	}
	return out
}
