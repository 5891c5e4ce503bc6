package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// auditOf renders the history of one step or task (rows and column moves,
// through the history views), oldest first, as
// "from>to@attempt:worker metadata" (due_at, a time, shown as its presence).
func auditOf(t *testing.T, pool *pgxpool.Pool, table string, id uuid.UUID) []string {
	t.Helper()
	attempt, key := "'@' || attempt", "step_uuid"
	if table == "task_transitions" {
		attempt, key = "''", "task_uuid"
	}
	rows, err := pool.Query(t.Context(), `
		SELECT coalesce(from_state, '') || '>' || to_state || `+attempt+` || ':' || coalesce(worker_id, '')
		       || coalesce(' ' || nullif(metadata - 'due_at', '{}')::text, '')
		       || CASE WHEN metadata ? 'due_at' THEN ' due_at' ELSE '' END
		FROM tasker.`+strings.Replace(table, "transitions", "history", 1)+` WHERE `+key+` = $1 ORDER BY seq, id`, id)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every state change of every path (creation, claim, rescue, yield, retry,
// due retry, failure, children made ready, a manual resolve, completion of
// the task) leaves exactly its audit rows, with the worker and metadata
// each kind of move records. Lease extensions and counter changes leave
// none.
func TestAuditOfEveryMove(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	task, s := diamond(t, pool, "audit", now)
	a, b, c, d := s[0], s[1], s[2], s[3]

	claim := func(worker string, at time.Time, want int) []store.ClaimedStep {
		t.Helper()
		cs, err := store.Claim(ctx, pool, store.ClaimParams{WorkerID: worker, Namespaces: []string{"audit"}, Limit: 10, Now: at, LeaseFor: time.Minute})
		if err != nil || len(cs) != want {
			t.Fatalf("claim by %s at %v: %d steps (%v), want %d", worker, at, len(cs), err, want)
		}
		return cs
	}
	complete := func(worker string, at time.Time, cs ...store.Completion) store.CompleteResult {
		t.Helper()
		r, err := store.Complete(ctx, pool, worker, at, cs)
		if err != nil || r.Stale != 0 {
			t.Fatalf("complete by %s: %+v, %v", worker, r, err)
		}
		return r
	}

	claim("w1", now, 1)
	if n, err := store.ExtendLeases(ctx, pool, "w1", []store.Lease{{StepUUID: a, Epoch: 1}}, now.Add(30*time.Second), now); err != nil || n != 1 {
		t.Fatalf("extend: %d, %v", n, err)
	}
	t1 := now.Add(2 * time.Minute) // the lease has expired: w2 rescues the step
	claim("w2", t1, 1)
	complete("w2", t1, store.Completion{StepUUID: a, Attempt: 2, Epoch: 2, State: contracts.StepStateEnqueued, Checkpoint: []byte(`{"at":1}`), RunAt: t1})
	claim("w2", t1, 1) // the yield gave no attempt back, but the epoch moved on
	retryAt := t1.Add(time.Hour)
	complete("w2", t1, store.Completion{StepUUID: a, Attempt: 2, Epoch: 3, State: contracts.StepStateWaitingForRetry, Error: []byte(`{"message":"x"}`), RunAt: retryAt})
	claim("w2", retryAt, 1)
	if r := complete("w2", retryAt, store.Completion{StepUUID: a, Attempt: 3, Epoch: 4, State: contracts.StepStateComplete, Results: []byte(`1`)}); r.Enqueued != 2 {
		t.Fatalf("completing a enqueued %d children, want 2", r.Enqueued)
	}
	claim("w1", retryAt, 2)
	r := complete("w1", retryAt,
		store.Completion{StepUUID: b, Attempt: 1, Epoch: 1, State: contracts.StepStateComplete},
		store.Completion{StepUUID: c, Attempt: 1, Epoch: 1, State: contracts.StepStateError, Error: []byte(`{"message":"boom"}`)})
	if r.TasksFinished[task] != contracts.TaskStateBlockedByFailures {
		t.Fatalf("after c failed: %+v", r)
	}
	if res, err := store.ResolveStep(ctx, pool, c, []byte(`"by hand"`), store.Manual{Actor: "ops", Reason: "fixed", Now: retryAt}); err != nil || res.Enqueued != 1 {
		t.Fatalf("resolve c: %+v, %v", res, err)
	}
	claim("w1", retryAt, 1)
	if r := complete("w1", retryAt, store.Completion{StepUUID: d, Attempt: 1, Epoch: 1, State: contracts.StepStateComplete}); r.TasksFinished[task] != contracts.TaskStateComplete {
		t.Fatalf("after d: %+v", r)
	}

	manual := `{"actor": "ops", "action": "resolve", "reason": "fixed"}`
	for _, tc := range []struct {
		table string
		id    uuid.UUID
		want  []string
	}{
		{"step_transitions", a, []string{
			">enqueued@0:",
			"enqueued>in_progress@1:w1",
			`in_progress>in_progress@2:w2 {"lease_rescued_from": "w1"}`,
			"in_progress>enqueued@1:w2", // a yield gives its attempt back
			"enqueued>in_progress@2:w2",
			`in_progress>waiting_for_retry@2:w2 {"error": {"message": "x"}}`,
			"waiting_for_retry>enqueued@2:w2 due_at",
			"enqueued>in_progress@3:w2",
			"in_progress>complete@3:w2",
		}},
		{"step_transitions", b, []string{">pending@0:", "pending>enqueued@0:", "enqueued>in_progress@1:w1", "in_progress>complete@1:w1"}},
		{"step_transitions", c, []string{">pending@0:", "pending>enqueued@0:", "enqueued>in_progress@1:w1",
			`in_progress>error@1:w1 {"error": {"message": "boom"}}`, "error>resolved_manually@1:ops " + manual}},
		{"step_transitions", d, []string{">pending@0:", "pending>enqueued@0:ops " + manual, "enqueued>in_progress@1:w1", "in_progress>complete@1:w1"}},
		{"task_transitions", task, []string{">pending:", "pending>steps_in_process:", "steps_in_process>blocked_by_failures:",
			"blocked_by_failures>steps_in_process:ops " + manual, "steps_in_process>complete:"}},
	} {
		if got := auditOf(t, pool, tc.table, tc.id); !slices.Equal(got, tc.want) {
			t.Errorf("%s of %s:\n got %q\nwant %q", tc.table, tc.id, got, tc.want)
		}
	}
}

// A submitted task is in process from the start: it is inserted so, in one
// statement fewer than before, and its audit still shows it created pending
// and then started. Its namespace is notified at commit; a repeated
// submission that creates nothing notifies no one. A task inserted by hand
// in any other state than those two is refused.
func TestCreatedTasksStartInProcess(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	listener, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Release()
	channel := store.ChannelPrefix + "start"
	if _, err := listener.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	next := func() string {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n, err := listener.Conn().WaitForNotification(wctx)
		if err != nil {
			t.Fatalf("waiting for a notification: %v", err)
		}
		return n.Channel + " " + n.Payload
	}

	task, _ := diamond(t, pool, "start", now)
	if got := next(); got != channel+" " {
		t.Fatalf("notification after the submit = %q, want %q", got, channel+" ")
	}
	if s := mustState(t, pool, "tasks", task); s != string(contracts.TaskStateStepsInProcess) {
		t.Fatalf("task state = %s, want %s", s, string(contracts.TaskStateStepsInProcess))
	}
	if got, want := auditOf(t, pool, "task_transitions", task), []string{">pending:", "pending>steps_in_process:"}; !slices.Equal(got, want) {
		t.Fatalf("task audit = %q, want %q", got, want)
	}

	// The same idempotency key again: nothing is created and nothing is
	// sent. Notifications arrive in commit order, so the marker sent after
	// the repeat is the next one when the repeat sent none.
	var tpl int64
	var key string
	if err := pool.QueryRow(ctx, `SELECT template_id, idempotency_key FROM tasker.tasks WHERE task_uuid = $1`, task).Scan(&tpl, &key); err != nil {
		t.Fatal(err)
	}
	again, err := store.CreateTasks(ctx, pool, now, []store.NewTask{{TaskUUID: uuid.Must(uuid.NewV7()), TemplateID: tpl, Namespace: "start",
		TemplateName: "diamond", TemplateVersion: "1.0.0", CorrelationID: uuid.New(), IdempotencyKey: key,
		Steps: []store.NewStep{{StepUUID: uuid.Must(uuid.NewV7()), Name: "a", TemplateStepName: "a", Handler: "h.a", MaxAttempts: 1}}}})
	if err != nil || len(again) != 1 || again[0].Created || again[0].TaskUUID != task {
		t.Fatalf("repeated submission = %+v, %v", again, err)
	}
	if _, err := pool.Exec(ctx, `SELECT pg_notify($1, 'marker')`, channel); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != channel+" marker" {
		t.Fatalf("after a repeated submission the next notification is %q, want the marker", got)
	}

	insert := func(state string) (uuid.UUID, error) {
		id := uuid.Must(uuid.NewV7())
		_, err := pool.Exec(ctx, `INSERT INTO tasker.tasks (task_uuid, template_id, namespace, template_name, template_version, correlation_id, state, created_state)
			VALUES ($1, $2, 'start', 'diamond', '1.0.0', $3, $4, $4)`, id, tpl, uuid.New(), state)
		return id, err
	}
	for _, state := range []string{string(contracts.TaskStatePending), string(contracts.TaskStateStepsInProcess)} {
		id, err := insert(state)
		if err != nil {
			t.Fatalf("inserting a task %s: %v", state, err)
		}
		want := []string{">pending:"}
		if state == string(contracts.TaskStateStepsInProcess) {
			want = append(want, "pending>steps_in_process:")
		}
		if got := auditOf(t, pool, "task_transitions", id); !slices.Equal(got, want) {
			t.Fatalf("audit of a task inserted %s = %q, want %q", state, got, want)
		}
	}
	for _, state := range []string{string(contracts.TaskStateComplete), string(contracts.TaskStateBlockedByFailures), string(contracts.TaskStateCancelled)} {
		_, err := insert(state)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.ConstraintName != "task_state_transition" ||
			!strings.Contains(pgErr.Message, "cannot be created in state "+state) {
			t.Fatalf("inserting a task %s: err = %v, want an illegal transition", state, err)
		}
	}
}

// TestHappyMovesAreLegal keeps the moves that history keeps in columns
// (migration 0011; the triggers skip them) in the transition tables, the
// one list of legal moves.
func TestHappyMovesAreLegal(t *testing.T) {
	pool := pgtest.Pool(t)
	for _, m := range []struct{ table, from, to string }{
		{"step_state_transitions", "", "pending"},
		{"step_state_transitions", "", "enqueued"},
		{"step_state_transitions", "pending", "enqueued"},
		{"step_state_transitions", "enqueued", "in_progress"},
		{"step_state_transitions", "in_progress", "complete"},
		{"task_state_transitions", "", "pending"},
		{"task_state_transitions", "pending", "steps_in_process"},
		{"task_state_transitions", "steps_in_process", "complete"},
	} {
		var ok bool
		if err := pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM tasker.`+m.table+` WHERE from_state = $1 AND to_state = $2)`, m.from, m.to).Scan(&ok); err != nil || !ok {
			t.Errorf("%s: %q -> %q is not a legal move (%v)", m.table, m.from, m.to, err)
		}
	}
}
