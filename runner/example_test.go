package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
)

// A program that runs its workflows' steps in its own process: two Go
// handlers registered by callable, a template whose steps call them, one
// task.
func ExampleServer() {
	ctx := context.Background()
	// The example's own database, from the test harness; a program passes
	// its own URL.
	dbURL, dropDB := exampleDatabase()
	defer dropDB()

	pool, err := runner.OpenPool(ctx, runner.PoolConfig{URL: dbURL})
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	if _, err := runner.Migrate(ctx, pool); err != nil {
		panic(err)
	}

	finished := make(chan string, 1)
	srv, err := runner.NewServer(pool, runner.ServerConfig{
		Logger: slog.New(slog.DiscardHandler),
		// Only to end the example: OnEvent sees every step outcome.
		OnEvent: func(e runner.Event) {
			if e.TaskState != "" {
				finished <- fmt.Sprint(e.TaskState)
			}
		},
	})
	if err != nil {
		panic(err)
	}
	srv.HandleFunc("payments.charge", func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		var order struct {
			OrderID     string `json:"order_id"`
			AmountCents int    `json:"amount_cents"`
		}
		if err := json.Unmarshal(env.Task.Context, &order); err != nil {
			return contracts.StepResult{}, err
		}
		fmt.Printf("charging %d cents for %s\n", order.AmountCents, order.OrderID)
		return contracts.StepResult{Success: true, Result: json.RawMessage(`{"receipt":"r-1"}`)}, nil
	})
	srv.HandleFunc("shipping.ship", func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		var charge struct{ Receipt string }
		if err := json.Unmarshal(env.DependencyResults["charge"].Result, &charge); err != nil {
			return contracts.StepResult{}, err
		}
		fmt.Printf("shipping, paid with receipt %s\n", charge.Receipt)
		return contracts.StepResult{Success: true}, nil
	})
	if err := srv.Start(ctx); err != nil {
		panic(err)
	}
	defer srv.Stop(ctx)

	client := srv.Client()
	if _, err := client.RegisterTemplate(ctx, []byte(`
name: order
namespace_name: shop
version: 1.0.0
steps:
  - name: charge
    handler: {callable: payments.charge}
  - name: ship
    dependencies: [charge]
    handler: {callable: shipping.ship}
`)); err != nil {
		panic(err)
	}
	if _, err := client.Submit(ctx, runner.SubmitRequest{
		Namespace: "shop", Name: "order",
		Context: json.RawMessage(`{"order_id": "o-42", "amount_cents": 1999}`),
	}); err != nil {
		panic(err)
	}
	select {
	case state := <-finished:
		fmt.Println("task", state)
	case <-time.After(time.Minute):
		fmt.Println("timed out")
	}
	// Output:
	// charging 1999 cents for o-42
	// shipping, paid with receipt r-1
	// task complete
}
