package runner_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
)

// An operator's script: retry every dead letter of a namespace once the
// service it called is fixed, then list the tasks still blocked.
func ExampleClient_RetryStep() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	client := runner.NewClient(pool, runner.ClientConfig{})

	letters, _, err := client.ListDeadLetters(ctx, runner.DeadLetterFilter{Namespace: "shop"}, nil, 100)
	if err != nil {
		log.Fatal(err)
	}
	manual := runner.Manual{Actor: "ops", Reason: "the card processor is back"}
	for _, d := range letters {
		_, err := client.RetryStep(ctx, d.StepUUID, 1, manual)
		var conflict *runner.StateConflictError
		switch {
		case errors.As(err, &conflict):
			fmt.Println("changed meanwhile:", conflict.Items[0].State)
		case err != nil:
			log.Fatal(err)
		}
	}
	blocked, _, err := client.ListTasks(ctx, runner.TaskFilter{
		Namespace: "shop", States: []runner.TaskState{contracts.TaskStateBlockedByFailures}, Limit: 50,
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range blocked {
		fmt.Println(t.TaskUUID, t.TemplateName, t.State)
	}
}
