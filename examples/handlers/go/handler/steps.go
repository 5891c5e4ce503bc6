package handler

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// Steps returns the example's step functions by callable: the steps of an
// order-fulfilment workflow, of the approval and batch ETL workflows
// (dynamic.go), and conformance.echo for `tasker-runner conformance`.
func Steps() map[string]StepFunc {
	return map[string]StepFunc{
		"order_fulfillment.validate_order": validateOrder,
		"order_fulfillment.charge":         charge,
		"order_fulfillment.reserve_stock":  reserveStock,
		"order_fulfillment.ship":           ship,
		"approval.route":                   route,
		"approval.auto_approve":            approve("policy", AutoApproveBelow),
		"approval.manager_approval":        approve("manager", math.Inf(1)),
		"approval.finance_review":          approve("finance", FinanceRefuseAbove),
		"approval.finalize":                finalize,
		"etl.analyze":                      analyze,
		"etl.transform":                    transform,
		"etl.aggregate":                    aggregate,
		"conformance.echo":                 echo,
	}
}

// order is the part of the task context the steps read.
type order struct {
	Order struct {
		ID       string  `json:"id"`
		Total    float64 `json:"total"`
		Currency string  `json:"currency"`
		Address  string  `json:"address"`
		Items    []struct {
			SKU      string `json:"sku"`
			Quantity int    `json:"quantity"`
		} `json:"items"`
	} `json:"order"`
}

func readOrder(env *contracts.StepEnvelope) (order, error) {
	var o order
	if err := json.Unmarshal(env.Task.Context, &o); err != nil {
		return o, &Failure{Type: "invalid_context", Message: "the task context is not an order: " + err.Error()}
	}
	return o, nil
}

// validateOrder checks the order and reports what it found: an invalid order
// is a result ({"valid": false}), not a failure, so later steps can decide.
func validateOrder(_ context.Context, env *contracts.StepEnvelope) (any, error) {
	o, err := readOrder(env)
	if err != nil {
		return nil, err
	}
	problems := []string{}
	if o.Order.Total <= 0 {
		problems = append(problems, "order.total must be positive")
	}
	if len(o.Order.Items) == 0 {
		problems = append(problems, "order.items is empty")
	}
	return map[string]any{"valid": len(problems) == 0, "problems": problems, "total": o.Order.Total}, nil
}

// charge takes the payment. It reads order.total from the task context and
// validate_order's result from dependency_results. A declined payment is a
// business failure: 200 with success false and retryable false (the step is
// dead-lettered at once). The charge id derives from the step_uuid, which
// stays the same across attempts: charging twice is charging once.
func charge(_ context.Context, env *contracts.StepEnvelope) (any, error) {
	o, err := readOrder(env)
	if err != nil {
		return nil, err
	}
	var validation struct {
		Valid bool `json:"valid"`
	}
	dep, ok := env.DependencyResults["validate_order"]
	if !ok || json.Unmarshal(dep.Result, &validation) != nil || !validation.Valid {
		return nil, &Failure{Type: "order_invalid", Message: "validate_order did not find the order valid"}
	}
	if o.Order.Total > 10_000 {
		return nil, &Failure{Type: "card_declined", Message: fmt.Sprintf("card declined for %.2f", o.Order.Total)}
	}
	currency := o.Order.Currency
	if currency == "" {
		currency = "EUR"
	}
	return map[string]any{"charge_id": "ch_" + env.Step.StepUUID, "amount": o.Order.Total, "currency": currency}, nil
}

// reserveStock shows a retryable failure: on the first attempt the warehouse
// is busy and the step answers 503 with Retry-After, so the runner tries
// again a second later with step.attempts (and Tasker-Attempt) 2.
func reserveStock(_ context.Context, env *contracts.StepEnvelope) (any, error) {
	if env.Step.Attempts < 2 {
		return nil, &Failure{
			Type: "warehouse_busy", Message: "the warehouse is busy, try again shortly",
			Retryable: true, Status: http.StatusServiceUnavailable, RetryAfter: time.Second,
		}
	}
	return map[string]any{"reservation_id": "rsv_" + env.Step.StepUUID, "attempt": env.Step.Attempts}, nil
}

// ship shows a permanent failure with an error status: without an address
// it answers 422 and retryable false; retrying cannot help.
func ship(_ context.Context, env *contracts.StepEnvelope) (any, error) {
	o, err := readOrder(env)
	if err != nil {
		return nil, err
	}
	if o.Order.Address == "" {
		return nil, &Failure{Type: "no_address", Message: "order.address is missing", Status: http.StatusUnprocessableEntity}
	}
	return map[string]any{"tracking": "trk_" + env.Task.TaskUUID, "address": o.Order.Address}, nil
}

// echo answers what it was asked: the step it ran, the attempt and the
// inputs. It serves `tasker-runner conformance` (default callable).
func echo(_ context.Context, env *contracts.StepEnvelope) (any, error) {
	return map[string]any{"step_uuid": env.Step.StepUUID, "attempt": env.Step.Attempts, "inputs": env.Step.Inputs}, nil
}
