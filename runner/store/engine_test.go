package store_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// diamond creates A -> (B, C) -> D in namespace ns and returns the task and
// its step uuids in order A, B, C, D.
func diamond(t *testing.T, pool *pgxpool.Pool, ns string, now time.Time) (uuid.UUID, []uuid.UUID) {
	t.Helper()
	id, _, err := store.RegisterTemplate(t.Context(), pool, store.Template{Namespace: ns, Name: "diamond", Version: "1.0.0", Definition: []byte(`{"name":"diamond"}`)})
	if err != nil {
		t.Fatal(err)
	}
	task := uuid.Must(uuid.NewV7())
	steps := []uuid.UUID{uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())}
	mk := func(i int, name string, parents []int) store.NewStep {
		return store.NewStep{StepUUID: steps[i], Name: name, TemplateStepName: name, Handler: "h." + name,
			Parents: parents, MaxAttempts: 2, Retryable: true}
	}
	created, err := store.CreateTasks(t.Context(), pool, now, []store.NewTask{{
		TaskUUID: task, TemplateID: id, Namespace: ns, TemplateName: "diamond", TemplateVersion: "1.0.0",
		Context: []byte(`{"order":1}`), CorrelationID: uuid.New(), IdempotencyKey: "k-" + task.String(),
		Steps: []store.NewStep{mk(0, "a", nil), mk(1, "b", []int{0}), mk(2, "c", []int{0}), mk(3, "d", []int{1, 2})},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 1 || !created[0].Created {
		t.Fatalf("created = %+v", created)
	}
	return task, steps
}

func TestClaimCompleteDiamond(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	task, steps := diamond(t, pool, "shop", now)
	buf := make([]store.ClaimedStep, 3, 10) // reused, as the runner's claim loop does; stale rows must not leak
	claim := func(limit int) []store.ClaimedStep {
		t.Helper()
		cs, err := store.Claim(ctx, pool, store.ClaimParams{WorkerID: "w1", Namespaces: []string{"shop"}, Limit: limit, Now: now, LeaseFor: time.Minute, Buf: buf})
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) > 0 && &cs[0] != &buf[:1][0] {
			t.Fatal("Claim allocated a new slice instead of reusing Buf")
		}
		return cs
	}
	complete := func(cs ...store.Completion) store.CompleteResult {
		t.Helper()
		r, err := store.Complete(ctx, pool, "w1", now, cs)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	got := claim(10)
	if len(got) != 1 || got[0].StepUUID != steps[0] || got[0].Attempt != 1 || string(got[0].Context) != `{"order": 1}` {
		t.Fatalf("first claim = %+v", got)
	}
	if r := complete(store.Completion{StepUUID: steps[0], Attempt: 1, Epoch: 1, State: contracts.StepStateComplete, Results: []byte(`{"a":1}`)}); r.Enqueued != 2 || r.Stale != 0 {
		t.Fatalf("complete a = %+v", r)
	}
	// A stale completion (wrong attempt) changes nothing.
	if r := complete(store.Completion{StepUUID: steps[0], Attempt: 1, Epoch: 1, State: contracts.StepStateComplete}); r.Stale != 1 || len(r.Applied) != 0 {
		t.Fatalf("repeated completion = %+v, want stale", r)
	}
	got = claim(10)
	if len(got) != 2 {
		t.Fatalf("second claim got %d steps, want b and c", len(got))
	}
	for _, c := range got {
		if string(c.DependencyResults["a"]) != `{"a": 1}` {
			t.Fatalf("step %s dependency results = %v", c.Name, c.DependencyResults)
		}
	}
	complete(store.Completion{StepUUID: steps[1], Attempt: 1, Epoch: 1, State: contracts.StepStateComplete, Results: []byte(`"b"`)},
		store.Completion{StepUUID: steps[2], Attempt: 1, Epoch: 1, State: contracts.StepStateComplete, Results: []byte(`"c"`)})
	got = claim(10)
	if len(got) != 1 || got[0].StepUUID != steps[3] || len(got[0].DependencyResults) != 3 {
		t.Fatalf("third claim = %+v", got)
	}
	r := complete(store.Completion{StepUUID: steps[3], Attempt: 1, Epoch: 1, State: contracts.StepStateComplete})
	if r.TasksFinished[task] != "complete" {
		t.Fatalf("task not finished: %+v", r)
	}

	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM tasker.step_history WHERE task_uuid = $1 AND to_state = 'complete'`, task).Scan(&n); err != nil || n != 4 {
		t.Fatalf("complete transitions = %d (%v), want 4", n, err)
	}
	var states []string
	rows, _ := pool.Query(ctx, `SELECT coalesce(from_state, '') || '>' || to_state FROM tasker.task_history WHERE task_uuid = $1 ORDER BY seq, id`, task)
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		states = append(states, s)
	}
	if len(states) != 3 || states[2] != "steps_in_process>complete" {
		t.Fatalf("task transitions = %v", states)
	}
}

func TestRetryErrorRescueAndIllegalTransition(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	task, steps := diamond(t, pool, "ops", now)
	p := store.ClaimParams{WorkerID: "w1", Namespaces: []string{"ops"}, Limit: 10, Now: now, LeaseFor: time.Minute}

	if cs, err := store.Claim(ctx, pool, p); err != nil || len(cs) != 1 {
		t.Fatalf("claim: %v %v", cs, err)
	}
	// The lease expires; another runner rescues the step with a new attempt.
	p2 := p
	p2.WorkerID, p2.Now = "w2", now.Add(2*time.Minute)
	cs, err := store.Claim(ctx, pool, p2)
	if err != nil || len(cs) != 1 || !cs[0].Rescued || cs[0].Attempt != 2 {
		t.Fatalf("rescue claim = %+v, %v", cs, err)
	}
	// The first runner's late completion is stale.
	r, err := store.Complete(ctx, pool, "w1", p2.Now, []store.Completion{{StepUUID: steps[0], Attempt: 1, Epoch: 1, State: contracts.StepStateComplete}})
	if err != nil || r.Stale != 1 {
		t.Fatalf("late completion = %+v, %v", r, err)
	}
	// Retry later, then fail for good.
	retryAt := p2.Now.Add(time.Hour)
	if _, err := store.Complete(ctx, pool, "w2", p2.Now, []store.Completion{{StepUUID: steps[0], Attempt: 2, Epoch: 2, State: contracts.StepStateWaitingForRetry, Error: []byte(`{"message":"x"}`), RunAt: retryAt}}); err != nil {
		t.Fatal(err)
	}
	if cs, _ := store.Claim(ctx, pool, p2); len(cs) != 0 {
		t.Fatalf("claimed a step before its retry time: %+v", cs)
	}
	p3 := p2
	p3.Now = retryAt
	if cs, err := store.Claim(ctx, pool, p3); err != nil || len(cs) != 1 || cs[0].Attempt != 3 {
		t.Fatalf("retry claim = %+v, %v", cs, err)
	}
	r, err = store.Complete(ctx, pool, "w2", p3.Now, []store.Completion{{StepUUID: steps[0], Attempt: 3, Epoch: 3, State: contracts.StepStateError, Error: []byte(`{"message":"boom"}`)}})
	if err != nil || r.TasksFinished[task] != "blocked_by_failures" {
		t.Fatalf("final failure = %+v, %v", r, err)
	}

	// Illegal moves are rejected by the transition function.
	_, err = pool.Exec(ctx, `UPDATE tasker.steps SET state = 'complete' WHERE step_uuid = $1`, steps[1])
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.ConstraintName != "step_state_transition" || pgErr.Code != "23514" ||
		pgErr.Message != fmt.Sprintf("illegal step transition: step %s cannot move from pending to complete", steps[1]) {
		t.Fatalf("pending -> complete: err = %v, want illegal transition", err)
	}
	_, err = pool.Exec(ctx, `UPDATE tasker.tasks SET state = 'pending' WHERE task_uuid = $1`, task)
	if !errors.As(err, &pgErr) || pgErr.ConstraintName != "task_state_transition" {
		t.Fatalf("blocked -> pending: err = %v, want illegal transition", err)
	}
	var audit []string
	rows, _ := pool.Query(ctx, `SELECT coalesce(from_state,'') || '>' || to_state || '@' || attempt || ':' || coalesce(worker_id,'') FROM tasker.step_history WHERE step_uuid = $1 ORDER BY seq, id`, steps[0])
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		audit = append(audit, s)
	}
	want := []string{">enqueued@0:", "enqueued>in_progress@1:w1", "in_progress>in_progress@2:w2", "in_progress>waiting_for_retry@2:w2",
		// The due retry became enqueued at its run_at, then was claimed.
		"waiting_for_retry>enqueued@2:w2", "enqueued>in_progress@3:w2", "in_progress>error@3:w2"}
	if len(audit) != len(want) {
		t.Fatalf("audit = %v, want %v", audit, want)
	}
	for i := range want {
		if audit[i] != want[i] {
			t.Fatalf("audit = %v, want %v", audit, want)
		}
	}
	var due time.Time
	if err := pool.QueryRow(ctx, `SELECT (metadata->>'due_at')::timestamptz FROM tasker.step_history
		WHERE step_uuid = $1 AND from_state = 'waiting_for_retry' AND to_state = 'enqueued'`, steps[0]).Scan(&due); err != nil || !due.Equal(retryAt) {
		t.Fatalf("due_at = %v, %v; want the retry's run_at %v", due, err, retryAt)
	}
}

func TestIdempotentSubmission(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	id, _, err := store.RegisterTemplate(ctx, pool, store.Template{Namespace: "ns", Name: "one", Version: "1", Definition: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.RegisterTemplate(ctx, pool, store.Template{Namespace: "ns", Name: "one", Version: "1", Definition: []byte(`{"x":1}`)}); !errors.Is(err, store.ErrTemplateConflict) {
		t.Fatalf("re-register with a different definition: %v", err)
	}
	mk := func(key string) store.NewTask {
		return store.NewTask{TaskUUID: uuid.Must(uuid.NewV7()), TemplateID: id, Namespace: "ns", TemplateName: "one", TemplateVersion: "1",
			CorrelationID: uuid.New(), IdempotencyKey: key, Steps: []store.NewStep{{StepUUID: uuid.Must(uuid.NewV7()), Name: "s", TemplateStepName: "s", Handler: "h", MaxAttempts: 1}}}
	}
	first, err := store.CreateTasks(ctx, pool, time.Now(), []store.NewTask{mk("same")})
	if err != nil {
		t.Fatal(err)
	}
	again, err := store.CreateTasks(ctx, pool, time.Now(), []store.NewTask{mk("same"), mk("other"), mk("other")})
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Created || again[0].TaskUUID != first[0].TaskUUID || !again[1].Created || again[2].Created || again[2].TaskUUID != again[1].TaskUUID {
		t.Fatalf("idempotency: first %+v, again %+v", first, again)
	}
	// The statements are pipelined in one transaction: a step that fails
	// its insert leaves no task behind.
	bad := mk("")
	bad.Steps[0].Type = "bogus"
	if _, err := store.CreateTasks(ctx, pool, time.Now(), []store.NewTask{mk("third"), bad}); err == nil || !strings.Contains(err.Error(), "store: creating steps") {
		t.Fatalf("a step that cannot be inserted: err = %v", err)
	}
	var tasks, steps int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM tasker.tasks), (SELECT count(*) FROM tasker.steps)`).Scan(&tasks, &steps); err != nil || tasks != 2 || steps != 2 {
		t.Fatalf("tasks=%d steps=%d err=%v, want 2 and 2", tasks, steps, err)
	}
}

// Every yield rewrites the checkpoint history, so it keeps only the latest
// CheckpointHistoryMax entries.
func TestCheckpointHistoryIsBounded(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, steps := diamond(t, pool, "yields", now)
	if _, err := pool.Exec(ctx, `UPDATE tasker.steps SET checkpoint_history = (SELECT jsonb_agg(jsonb_build_object('cursor', i)) FROM generate_series(1, $2) i) WHERE step_uuid = $1`,
		steps[0], store.CheckpointHistoryMax); err != nil {
		t.Fatal(err)
	}
	for yield := range 2 {
		cs, err := store.Claim(ctx, pool, store.ClaimParams{WorkerID: "w1", Namespaces: []string{"yields"}, Limit: 1, Now: now, LeaseFor: time.Minute})
		if err != nil || len(cs) != 1 {
			t.Fatalf("claim: %v %v", cs, err)
		}
		ckpt := fmt.Sprintf(`{"cursor": "new-%d"}`, yield)
		if _, err := store.Complete(ctx, pool, "w1", now, []store.Completion{{StepUUID: steps[0], Attempt: cs[0].Attempt, Epoch: cs[0].Epoch, State: contracts.StepStateEnqueued, RunAt: now, Checkpoint: []byte(ckpt)}}); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	var first, last string
	if err := pool.QueryRow(ctx, `SELECT jsonb_array_length(checkpoint_history), checkpoint_history->0->>'cursor', checkpoint_history->-1->>'cursor' FROM tasker.steps WHERE step_uuid = $1`,
		steps[0]).Scan(&n, &first, &last); err != nil {
		t.Fatal(err)
	}
	if n != store.CheckpointHistoryMax || first != "3" || last != "new-1" {
		t.Fatalf("history: %d entries, first %s, last %s; want %d, 3, new-1", n, first, last, store.CheckpointHistoryMax)
	}
}
