package workflow_test

import (
	"errors"
	"fmt"
	"log"
	"strings"

	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

const orderTemplate = `
name: order_processing
namespace_name: ecommerce
version: 1.0.0
input_schema:
  type: object
  required: [order_id]
  properties:
    order_id: {type: string}
steps:
  - name: validate
    handler: {callable: ecommerce.validate}
  - name: charge
    dependencies: [validate]
    handler: {callable: payments.charge}
    retry: {retryable: true, max_attempts: 5, backoff: exponential, backoff_base_ms: 500}
  - name: reserve
    dependencies: [validate]
    handler: {callable: inventory.reserve}
  - name: ship
    dependencies: [charge, reserve]
    handler: {callable: shipping.ship}
    timeout_seconds: 60
`

func Example() {
	tpl, err := workflow.Parse([]byte(orderTemplate))
	if err != nil {
		log.Fatal(err)
	}
	if err := tpl.ValidateContext([]byte(`{"order_id": "o-42"}`)); err != nil {
		log.Fatal(err)
	}
	plan, err := tpl.Plan(workflow.RetryDefaults{MaxAttempts: 3})
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range plan.Steps {
		fmt.Printf("%d %-8s parents=%v ancestors=%v pending=%d max_attempts=%d timeout=%ds\n",
			s.Index, s.Name, s.Parents, s.Ancestors, s.PendingParents, s.MaxAttempts, s.TimeoutSeconds)
	}
	// Output:
	// 0 validate parents=[] ancestors=[] pending=0 max_attempts=3 timeout=0s
	// 1 charge   parents=[0] ancestors=[0] pending=1 max_attempts=5 timeout=0s
	// 2 reserve  parents=[0] ancestors=[0] pending=1 max_attempts=3 timeout=0s
	// 3 ship     parents=[1 2] ancestors=[0 1 2] pending=2 max_attempts=3 timeout=60s
}

func ExampleParse_problems() {
	_, err := workflow.Parse([]byte(`
name: broken
namespace_name: ecommerce
version: 1.0.0
steps:
  - name: charge
    dependancies: [validate]
    handler: {callable: payments.charge}
    retry: {limit: 0}
  - name: ship
    dependencies: [charge, pack]
    handler: {}
`))
	var ve *workflow.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			fmt.Println(p)
		}
	}
	// Output:
	// steps[0].dependancies: unknown field; did you mean "dependencies"? (line 7)
	// steps[0].retry.limit: must be >= 1 (line 9)
	// steps[1].dependencies[1]: unknown step "pack" (line 11)
	// steps[1].handler.callable: required (line 12)
}

func ExampleTemplate_ValidateContext() {
	tpl, err := workflow.Parse([]byte(orderTemplate))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tpl.ValidateContext([]byte(`{"order_id": 42}`)))
	fmt.Println(tpl.ValidateContext([]byte(`{}`)))
	// Output:
	// workflow: invalid context: context.order_id: must be string, got number
	// workflow: invalid context: context.order_id: required
}

func ExampleRetry_Backoff() {
	r := workflow.Retry{Strategy: workflow.BackoffExponential, BackoffBaseMs: 1000, MaxBackoffMs: 10_000}
	var delays []string
	for attempt := 1; attempt <= 6; attempt++ {
		delays = append(delays, r.Backoff(attempt, nil).String())
	}
	fmt.Println(strings.Join(delays, " "))
	// With equal jitter the delay lies in [d/2, d): rnd() = 0 gives d/2.
	fmt.Println(r.Backoff(3, func() float64 { return 0 }))
	// Output:
	// 1s 2s 4s 8s 10s 10s
	// 2s
}

func ExampleTemplate_ExpandDecision() {
	tpl, err := workflow.Parse([]byte(`
name: approval
namespace_name: approvals
version: 1.0.0
steps:
  - {name: validate, handler: {callable: approvals.validate}}
  - {name: route, type: decision, dependencies: [validate], handler: {callable: approvals.route}}
  - {name: auto_approve, dependencies: [route], handler: {callable: approvals.auto}}
  - {name: manager_approval, dependencies: [route], handler: {callable: approvals.manager}}
  - {name: finalize, type: deferred_convergence, dependencies: [auto_approve, manager_approval], handler: {callable: approvals.finalize}}
`))
	if err != nil {
		log.Fatal(err)
	}
	plan, _ := tpl.Plan(workflow.RetryDefaults{})
	fmt.Println("deferred at submit:", plan.Deferred)

	created := map[string]bool{"validate": true, "route": true}
	steps, err := tpl.ExpandDecision("route", []string{"manager_approval"}, func(name string) bool { return created[name] })
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range steps {
		fmt.Println(s.Name, "after", s.Parents)
	}
	// Output:
	// deferred at submit: [auto_approve manager_approval finalize]
	// manager_approval after [route]
	// finalize after [manager_approval]
}
