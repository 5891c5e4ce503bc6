package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// TestStepInsertsUseGenericPlans shows that Submit's step and edge inserts
// reuse one generic plan instead of being planned again for every small
// batch, and that the plan_cache_mode switch behind it ends with them,
// inside a caller's transaction too.
func TestStepInsertsUseGenericPlans(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	tpl, _, err := store.RegisterTemplate(ctx, pool, store.Template{Namespace: "plans", Name: "pair", Version: "1", Definition: []byte(`{"name":"pair"}`)})
	if err != nil {
		t.Fatal(err)
	}
	// pg_prepared_statements is per session: everything runs on one connection.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	task := func() store.NewTask {
		return store.NewTask{TaskUUID: uuid.Must(uuid.NewV7()), TemplateID: tpl, Namespace: "plans", TemplateName: "pair",
			TemplateVersion: "1", CorrelationID: uuid.New(), Steps: []store.NewStep{
				{StepUUID: uuid.Must(uuid.NewV7()), Name: "a", TemplateStepName: "a", Handler: "h", MaxAttempts: 1},
				{StepUUID: uuid.Must(uuid.NewV7()), Name: "b", TemplateStepName: "b", Handler: "h", MaxAttempts: 1, Parents: []int{0}},
			}}
	}
	const submits = 8
	for range submits {
		if _, err := store.CreateTasks(ctx, conn, time.Now(), []store.NewTask{task()}); err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range []string{"tasker.steps", "tasker.step_edges"} {
		var generic, custom int64
		if err := conn.QueryRow(ctx, `
			SELECT generic_plans, custom_plans FROM pg_prepared_statements
			WHERE statement LIKE '%INSERT INTO ' || $1 || ' %'`, table).Scan(&generic, &custom); err != nil {
			t.Fatalf("the prepared insert into %s: %v", table, err)
		}
		if generic != submits || custom != 0 {
			t.Errorf("insert into %s: %d generic and %d custom plans in %d submits; want only generic ones", table, generic, custom, submits)
		}
	}

	var mode string
	if err := conn.QueryRow(ctx, `SHOW plan_cache_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "auto" {
		t.Errorf("plan_cache_mode after Submit = %q, want the session's auto", mode)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(ctx, `SET LOCAL plan_cache_mode = force_custom_plan`); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateTasks(ctx, tx, time.Now(), []store.NewTask{task()}); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, `SHOW plan_cache_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "force_custom_plan" {
		t.Errorf("plan_cache_mode in the caller's transaction after Submit = %q, want its own force_custom_plan back", mode)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}
