package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
)

// devTemplate is the example `dev` runs: a diamond whose steps are
// in-process Go handlers.
const devTemplate = `
name: order_fulfilment
namespace_name: examples
version: 1.0.0
description: Validate an order, then reserve stock and charge in parallel, then ship.
input_schema:
  type: object
  required: [order_id, items]
  properties:
    order_id: {type: string}
    items:
      type: array
      items:
        type: object
        required: [sku, quantity, price]
        properties:
          sku: {type: string}
          quantity: {type: integer, minimum: 1}
          price: {type: number, minimum: 0}
steps:
  - name: validate_order
    handler: {callable: examples.validate_order}
  - name: reserve_stock
    dependencies: [validate_order]
    handler: {callable: examples.reserve_stock}
  - name: charge_payment
    dependencies: [validate_order]
    handler: {callable: examples.charge_payment}
  - name: ship_order
    dependencies: [reserve_stock, charge_payment]
    handler: {callable: examples.ship_order}
`

const devContext = `{"order_id": "ORD-1001", "items": [{"sku": "KB-42", "quantity": 1, "price": 89.5}, {"sku": "MS-7", "quantity": 2, "price": 24.25}]}`

func result(v any) (contracts.StepResult, error) {
	b, err := json.Marshal(v)
	return contracts.StepResult{Success: true, Result: b}, err
}

// registerDevHandlers adds the example's Go handlers to funcs.
func registerDevHandlers(funcs *callout.Funcs) {
	funcs.Register("examples.validate_order", func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		var order struct {
			OrderID string `json:"order_id"`
			Items   []struct {
				Quantity int     `json:"quantity"`
				Price    float64 `json:"price"`
			} `json:"items"`
		}
		if err := json.Unmarshal(env.Task.Context, &order); err != nil {
			return contracts.StepResult{}, callout.Permanent(err)
		}
		total := 0.0
		for _, it := range order.Items {
			total += float64(it.Quantity) * it.Price
		}
		return result(map[string]any{"valid": true, "order_id": order.OrderID, "total": total})
	})
	funcs.Register("examples.reserve_stock", func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		return result(map[string]any{"reservation_id": "RSV-" + env.Step.StepUUID[len(env.Step.StepUUID)-6:]})
	})
	funcs.Register("examples.charge_payment", func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		var v struct {
			Total float64 `json:"total"`
		}
		_ = json.Unmarshal(env.DependencyResults["validate_order"].Result, &v)
		return result(map[string]any{"charge_id": "CH-" + env.Step.StepUUID[len(env.Step.StepUUID)-6:], "amount": v.Total})
	})
	funcs.Register("examples.ship_order", func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		var r struct {
			ReservationID string `json:"reservation_id"`
		}
		var c struct {
			ChargeID string  `json:"charge_id"`
			Amount   float64 `json:"amount"`
		}
		_ = json.Unmarshal(env.DependencyResults["reserve_stock"].Result, &r)
		_ = json.Unmarshal(env.DependencyResults["charge_payment"].Result, &c)
		return result(map[string]any{"tracking": "TRK-" + env.Task.TaskUUID[len(env.Task.TaskUUID)-6:], "reservation_id": r.ReservationID, "charge_id": c.ChargeID, "amount": c.Amount})
	})
}

// devProgress prints the steps of the example namespace as they finish
// (the submitted order, and any task submitted there later).
type devProgress struct {
	out  io.Writer
	mu   sync.Mutex
	once sync.Once
	done chan struct{} // closed when the first example task finishes
}

func newDevProgress(out io.Writer) *devProgress {
	return &devProgress{out: out, done: make(chan struct{})}
}

func (p *devProgress) onEvent(e runner.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Step.Namespace != "examples" || e.Stale {
		return
	}
	took := e.Finished.Sub(e.Started).Round(10 * time.Microsecond)
	switch e.State {
	case "complete":
		fmt.Fprintf(p.out, "  ✓ %-15s Go handler %-26s attempt %d, %s  %s\n", e.Step.Name, e.Step.Handler, e.Step.Attempt, took, compact(e.Result.Result))
	default:
		msg := ""
		if e.Result.Error != nil {
			msg = e.Result.Error.Message
		}
		fmt.Fprintf(p.out, "  ✗ %-15s %s (attempt %d): %s\n", e.Step.Name, e.State, e.Step.Attempt, msg)
	}
	if e.TaskState != "" {
		fmt.Fprintf(p.out, "task %s %s\n", e.Step.TaskUUID, strings.ToUpper(e.TaskState))
		p.once.Do(func() { close(p.done) })
	}
}

func compact(b []byte) string {
	if len(b) > 160 {
		return string(b[:160]) + "..."
	}
	return string(b)
}

// runDevExample registers the example template and submits one order.
func runDevExample(ctx context.Context, env *environment, e *engine) error {
	info, err := e.client.RegisterTemplate(ctx, []byte(devTemplate))
	if err != nil {
		return fmt.Errorf("registering the example template: %w", err)
	}
	fmt.Fprintf(env.stdout, "submitting %s/%s@%s with context %s\n", info.Namespace, info.Name, info.Version, devContext)
	s, err := e.client.Submit(ctx, runner.SubmitRequest{
		Namespace: info.Namespace, Name: info.Name, Version: info.Version,
		Context: json.RawMessage(devContext), Initiator: "tasker-runner dev", Reason: "example",
	})
	if err != nil {
		return fmt.Errorf("submitting the example task: %w", err)
	}
	env.logger.Info("example task submitted", "task_uuid", s.TaskUUID)
	return nil
}
