package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"

	"github.com/tasker-runner/tasker-runner/contracts"
)

func mustState(t *testing.T, pool *pgxpool.Pool, table string, id uuid.UUID) string {
	t.Helper()
	col := "task_uuid"
	if table == "steps" {
		col = "step_uuid"
	}
	var s string
	if err := pool.QueryRow(t.Context(), `SELECT state FROM tasker.`+table+` WHERE `+col+` = $1`, id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// fail claims the namespace's ready steps as w1 and fails them for good.
func failReady(t *testing.T, pool *pgxpool.Pool, ns string, now time.Time) []uuid.UUID {
	t.Helper()
	cs, err := store.Claim(t.Context(), pool, store.ClaimParams{WorkerID: "w1", Namespaces: []string{ns}, Limit: 100, Now: now, LeaseFor: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var out []uuid.UUID
	var comps []store.Completion
	for _, c := range cs {
		out = append(out, c.StepUUID)
		comps = append(comps, store.Completion{StepUUID: c.StepUUID, Attempt: c.Attempt, Epoch: c.Epoch, State: contracts.StepStateError, Error: []byte(`{"message":"boom"}`)})
	}
	if _, err := store.Complete(t.Context(), pool, "w1", now, comps); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestResolveStepAdvancesTheDAG(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	task, steps := diamond(t, pool, "shop", now)
	p := store.ClaimParams{WorkerID: "w1", Namespaces: []string{"shop"}, Limit: 10, Now: now, LeaseFor: time.Minute}
	if cs, err := store.Claim(ctx, pool, p); err != nil || len(cs) != 1 {
		t.Fatalf("claim a: %v %v", cs, err)
	}

	// a is in progress; resolving it by hand takes its lease away.
	res, err := store.ResolveStep(ctx, pool, steps[0], []byte(`{"success":true,"result":"by hand"}`), store.Manual{Reason: "ops", Now: now})
	if err != nil || res.Enqueued != 2 || res.TaskState != string(contracts.TaskStateStepsInProcess) {
		t.Fatalf("resolve a = %+v, %v", res, err)
	}
	if r, err := store.Complete(ctx, pool, "w1", now, []store.Completion{{StepUUID: steps[0], Attempt: 1, Epoch: 1, State: contracts.StepStateComplete}}); err != nil || r.Stale != 1 {
		t.Fatalf("the runner's late completion = %+v, %v; want stale", r, err)
	}
	cs, err := store.Claim(ctx, pool, p)
	if err != nil || len(cs) != 2 || string(cs[0].DependencyResults["a"]) != `{"result": "by hand", "success": true}` {
		t.Fatalf("claim b, c = %+v, %v", cs, err)
	}
	// b fails for good: the task is blocked; resolving b unblocks it.
	if _, err := store.Complete(ctx, pool, "w1", now, []store.Completion{
		{StepUUID: steps[1], Attempt: 1, Epoch: 1, State: contracts.StepStateError, Error: []byte(`{"message":"x"}`)},
		{StepUUID: steps[2], Attempt: 1, Epoch: 1, State: contracts.StepStateComplete, Results: []byte(`"c"`)},
	}); err != nil {
		t.Fatal(err)
	}
	if s := mustState(t, pool, "tasks", task); s != string(contracts.TaskStateBlockedByFailures) {
		t.Fatalf("task = %s, want blocked", s)
	}
	res, err = store.ResolveStep(ctx, pool, steps[1], nil, store.Manual{Now: now})
	if err != nil || res.Enqueued != 1 || res.TaskState != string(contracts.TaskStateStepsInProcess) {
		t.Fatalf("resolve b = %+v, %v", res, err)
	}
	// d is ready; resolving it is the last step: the task completes.
	res, err = store.ResolveStep(ctx, pool, steps[3], nil, store.Manual{Now: now})
	if err != nil || res.TaskState != string(contracts.TaskStateComplete) {
		t.Fatalf("resolve d = %+v, %v", res, err)
	}
	got, err := store.GetTask(ctx, pool, task)
	if err != nil || got.StepsDone != 4 || got.CompletedAt == nil {
		t.Fatalf("task = %+v, %v", got, err)
	}

	// Finished steps cannot be resolved; unknown ones are not found.
	var conflict *store.StateConflictError
	if _, err := store.ResolveStep(ctx, pool, steps[3], nil, store.Manual{}); !errors.As(err, &conflict) || conflict.Items[0].State != string(contracts.StepStateResolvedManually) {
		t.Fatalf("resolve again: %v", err)
	}
	if _, err := store.ResolveStep(ctx, pool, uuid.New(), nil, store.Manual{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("resolve unknown: %v", err)
	}
	trs, err := store.ListStepTransitions(ctx, pool, steps[0])
	if err != nil {
		t.Fatal(err)
	}
	last := trs[len(trs)-1]
	// The audit row names the runner whose lease was taken (worker_id) and
	// the manual action (metadata).
	if last.ToState != string(contracts.StepStateResolvedManually) || last.WorkerID != "w1" || string(last.Metadata) != `{"actor": "api", "action": "resolve", "reason": "ops"}` {
		t.Fatalf("audit row of the resolution = %+v (%s)", last, last.Metadata)
	}
}

func TestRedriveSteps(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	task1, steps1 := diamond(t, pool, "shop", now)
	task2, steps2 := diamond(t, pool, "shop", now.Add(time.Second))
	failed := failReady(t, pool, "shop", now.Add(time.Second))
	if len(failed) != 2 {
		t.Fatalf("failed %d steps, want both a's", len(failed))
	}
	dl, more, err := store.ListDeadLetters(ctx, pool, store.DeadLetterFilter{Namespace: "shop"}, nil, 1)
	if err != nil || len(dl) != 1 || !more || dl[0].TemplateName != "diamond" || dl[0].State != contracts.StepStateError || string(dl[0].LastError) != `{"message": "boom"}` {
		t.Fatalf("dead letters page 1 = %+v, %v, %v", dl, more, err)
	}
	dl2, more, err := store.ListDeadLetters(ctx, pool, store.DeadLetterFilter{Namespace: "shop"}, &store.DeadLetterCursor{FailedAt: dl[0].UpdatedAt, StepUUID: dl[0].StepUUID}, 1)
	if err != nil || len(dl2) != 1 || more || dl2[0].StepUUID == dl[0].StepUUID {
		t.Fatalf("dead letters page 2 = %+v, %v, %v", dl2, more, err)
	}

	// All or nothing: an unknown id, or a step not in error, changes nothing.
	if _, err := store.RedriveSteps(ctx, pool, store.RedriveRequest{StepUUIDs: []uuid.UUID{steps1[0], uuid.New()}}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("redrive with an unknown id: %v", err)
	}
	var conflict *store.StateConflictError
	if _, err := store.RedriveSteps(ctx, pool, store.RedriveRequest{StepUUIDs: []uuid.UUID{steps1[0], steps1[1]}}); !errors.As(err, &conflict) ||
		len(conflict.Items) != 1 || conflict.Items[0].ID != steps1[1] || conflict.Items[0].State != string(contracts.StepStatePending) {
		t.Fatalf("redrive with a pending step: %v", err)
	}
	if s := mustState(t, pool, "steps", steps1[0]); s != string(contracts.StepStateError) {
		t.Fatalf("a refused redrive changed step a to %s", s)
	}

	// Redriving wakes the namespace's runners.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `LISTEN "tasker_shop"`); err != nil {
		t.Fatal(err)
	}
	res, err := store.RedriveSteps(ctx, pool, store.RedriveRequest{StepUUIDs: []uuid.UUID{steps1[0]}, AdditionalAttempts: 3, Manual: store.Manual{Now: now, Reason: "fixed"}})
	if err != nil || !slices.Equal(res.Steps, []uuid.UUID{steps1[0]}) || !slices.Equal(res.TasksResumed, []uuid.UUID{task1}) {
		t.Fatalf("redrive a = %+v, %v", res, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	n, err := conn.Conn().WaitForNotification(wctx)
	cancel()
	if err != nil || n.Channel != "tasker_shop" {
		t.Fatalf("notification = %+v, %v", n, err)
	}
	st, err := store.GetStep(ctx, pool, steps1[0])
	if err != nil || st.State != contracts.StepStateEnqueued || st.Attempts != 1 || st.MaxAttempts != 4 || !st.RunAt.Equal(now) {
		t.Fatalf("redriven step = %+v, %v", st, err)
	}
	if s := mustState(t, pool, "tasks", task1); s != string(contracts.TaskStateStepsInProcess) {
		t.Fatalf("task 1 = %s", s)
	}

	// By filter: task 2's a is the only dead letter left.
	res, err = store.RedriveSteps(ctx, pool, store.RedriveRequest{Filter: store.DeadLetterFilter{TemplateName: "diamond", TaskUUID: task2}, Limit: 10, Manual: store.Manual{Now: now}})
	if err != nil || !slices.Equal(res.Steps, []uuid.UUID{steps2[0]}) || res.More || !slices.Equal(res.TasksResumed, []uuid.UUID{task2}) {
		t.Fatalf("redrive by filter = %+v, %v", res, err)
	}
	res, err = store.RedriveSteps(ctx, pool, store.RedriveRequest{Filter: store.DeadLetterFilter{}, Limit: 10})
	if err != nil || len(res.Steps) != 0 {
		t.Fatalf("redrive with nothing dead = %+v, %v", res, err)
	}
}

func TestCancelTask(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	task, steps := diamond(t, pool, "shop", now)
	if cs, err := store.Claim(ctx, pool, store.ClaimParams{WorkerID: "w1", Namespaces: []string{"shop"}, Limit: 10, Now: now, LeaseFor: time.Minute}); err != nil || len(cs) != 1 {
		t.Fatalf("claim: %v %v", cs, err)
	}
	res, err := store.CancelTask(ctx, pool, task, store.Manual{Reason: "duplicate order", Now: now})
	if err != nil || res.StepsCancelled != 4 {
		t.Fatalf("cancel = %+v, %v", res, err)
	}
	for _, s := range steps {
		st, err := store.GetStep(ctx, pool, s)
		if err != nil || st.State != contracts.StepStateCancelled || st.LeaseOwner != "" {
			t.Fatalf("step after cancel = %+v, %v", st, err)
		}
	}
	if r, err := store.Complete(ctx, pool, "w1", now, []store.Completion{{StepUUID: steps[0], Attempt: 1, Epoch: 1, State: contracts.StepStateComplete}}); err != nil || r.Stale != 1 {
		t.Fatalf("completion of a cancelled step = %+v, %v; want stale", r, err)
	}
	var conflict *store.StateConflictError
	if _, err := store.CancelTask(ctx, pool, task, store.Manual{}); !errors.As(err, &conflict) || conflict.Items[0].State != string(contracts.TaskStateCancelled) {
		t.Fatalf("cancel again: %v", err)
	}
	if _, err := store.CancelTask(ctx, pool, uuid.New(), store.Manual{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cancel unknown: %v", err)
	}
	trs, err := store.ListTaskTransitions(ctx, pool, task)
	if err != nil {
		t.Fatal(err)
	}
	var taskCancel *store.Transition
	for i := range trs {
		if !trs[i].StepUUID.Valid && trs[i].ToState == string(contracts.TaskStateCancelled) {
			taskCancel = &trs[i]
		}
	}
	if taskCancel == nil || taskCancel.FromState != string(contracts.TaskStateStepsInProcess) || taskCancel.WorkerID != "api" {
		t.Fatalf("task transitions = %+v", trs)
	}
	if len(trs) != 2+4+1+4+1 { // task created+started, 4 steps created, a claimed, 4 steps and the task cancelled
		t.Fatalf("%d transitions, want 12: %+v", len(trs), trs)
	}
}

func TestListTasksAndCounts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var tasks []uuid.UUID
	for i := range 7 {
		ns := "shop"
		if i%2 == 1 {
			ns = "mail"
		}
		task, _ := diamond(t, pool, ns, base.Add(time.Duration(i)*time.Minute))
		tasks = append(tasks, task)
	}
	slices.Reverse(tasks) // newest first
	var seen []uuid.UUID
	f := store.TaskFilter{Limit: 3}
	for page := 0; ; page++ {
		got, more, err := store.ListTasks(ctx, pool, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range got {
			seen = append(seen, g.TaskUUID)
		}
		if !more {
			if page != 2 || len(got) != 1 {
				t.Fatalf("last page %d has %d tasks", page, len(got))
			}
			break
		}
		f.Before = got[len(got)-1].TaskUUID
	}
	if !slices.Equal(seen, tasks) {
		t.Fatalf("pages = %v, want %v", seen, tasks)
	}
	got, _, err := store.ListTasks(ctx, pool, store.TaskFilter{
		Namespace: "mail", States: []string{string(contracts.TaskStateStepsInProcess)}, TemplateName: "diamond",
		CreatedAfter: base.Add(2 * time.Minute), CreatedBefore: base.Add(5 * time.Minute), Limit: 10,
	})
	if err != nil || len(got) != 1 || got[0].TaskUUID != tasks[3] { // i = 3: mail, created at base+3m
		t.Fatalf("filtered = %+v, %v", got, err)
	}

	if _, err := store.CancelTask(ctx, pool, tasks[0], store.Manual{}); err != nil {
		t.Fatal(err)
	}
	counts, err := store.CountTasksByState(ctx, pool, time.Now().Add(-2*time.Hour))
	if err != nil || counts[string(contracts.TaskStateStepsInProcess)] != 6 || counts[string(contracts.TaskStateCancelled)] != 1 || counts[string(contracts.TaskStateComplete)] != 0 || len(counts) != len(contracts.TaskStates()) {
		t.Fatalf("counts = %v, %v", counts, err)
	}
	// Finished tasks created before the window are not counted.
	if counts, err := store.CountTasksByState(ctx, pool, time.Now().Add(time.Minute)); err != nil || counts[string(contracts.TaskStateCancelled)] != 0 || counts[string(contracts.TaskStateStepsInProcess)] != 6 {
		t.Fatalf("counts in a window after the tasks = %v, %v", counts, err)
	}
	// Complete tasks are outside the state indexes: listed through the
	// primary key, counted as the window's tasks less the others.
	if _, err := pool.Exec(ctx, `UPDATE tasker.tasks SET state = 'complete', steps_done = steps_total
		WHERE task_uuid = ANY($1)`, []uuid.UUID{tasks[1], tasks[6]}); err != nil {
		t.Fatal(err)
	}
	for since, want := range map[time.Time]map[string]int{
		base.Add(-time.Hour):        {string(contracts.TaskStateComplete): 2, string(contracts.TaskStateStepsInProcess): 4, string(contracts.TaskStateCancelled): 1},
		time.Now().Add(time.Minute): {string(contracts.TaskStateComplete): 0, string(contracts.TaskStateStepsInProcess): 4, string(contracts.TaskStateCancelled): 0},
	} {
		counts, err := store.CountTasksByState(ctx, pool, since)
		if err != nil {
			t.Fatal(err)
		}
		for state, n := range want {
			if counts[state] != n {
				t.Errorf("since %s: %s = %d, want %d (%v)", since.Sub(base), state, counts[state], n, counts)
			}
		}
	}
	done, _, err := store.ListTasks(ctx, pool, store.TaskFilter{States: []string{string(contracts.TaskStateComplete)}, Limit: 10})
	if err != nil || len(done) != 2 || done[0].TaskUUID != tasks[1] || done[1].TaskUUID != tasks[6] {
		t.Fatalf("complete tasks = %+v, %v", done, err)
	}

	now := base.Add(30 * time.Minute)
	qs, err := store.ListNamespaceQueues(ctx, pool, now)
	if err != nil {
		t.Fatal(err)
	}
	// shop: tasks 0, 2, 4, 6 created at base+0,2,4,6m; task 6 (newest) was
	// cancelled. Each live one has its a enqueued since its creation.
	want := []store.NamespaceQueue{{Name: "mail", Ready: 3}, {Name: "shop", Ready: 3}}
	if len(qs) != 2 || qs[0].Name != "mail" || qs[0].Ready != want[0].Ready || qs[1].Ready != want[1].Ready ||
		qs[1].OldestReadyAt == nil || !qs[1].OldestReadyAt.Equal(base) {
		t.Fatalf("queues = %+v", qs)
	}
	if _, err := store.Claim(ctx, pool, store.ClaimParams{WorkerID: "w1", Namespaces: []string{"mail"}, Limit: 1, Now: now, LeaseFor: time.Minute}); err != nil {
		t.Fatal(err)
	}
	qs, _ = store.ListNamespaceQueues(ctx, pool, now)
	if qs[0].Ready != 2 || qs[0].InProgress != 1 {
		t.Fatalf("mail after a claim = %+v", qs[0])
	}
}

func TestListTasksByCorrelationID(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	now := time.Now().Add(-time.Minute)
	first, _ := diamond(t, pool, "shop", now)
	second, _ := diamond(t, pool, "shop", now.Add(time.Second))
	corr := map[uuid.UUID]uuid.UUID{}
	for _, id := range []uuid.UUID{first, second} {
		task, err := store.GetTask(ctx, pool, id)
		if err != nil {
			t.Fatal(err)
		}
		corr[id] = task.CorrelationID
	}
	if corr[first] == corr[second] {
		t.Fatalf("both tasks have correlation id %s", corr[first])
	}
	for _, id := range []uuid.UUID{first, second} {
		got, more, err := store.ListTasks(ctx, pool, store.TaskFilter{CorrelationID: corr[id], Limit: 10})
		if err != nil || more || len(got) != 1 || got[0].TaskUUID != id || got[0].CorrelationID != corr[id] {
			t.Fatalf("tasks of correlation id %s = %+v, %v, %v; want only %s", corr[id], got, more, err, id)
		}
	}
	// With the other filters, and an unknown correlation id.
	if got, _, err := store.ListTasks(ctx, pool, store.TaskFilter{CorrelationID: corr[first], Namespace: "mail", Limit: 10}); err != nil || len(got) != 0 {
		t.Fatalf("correlation id in another namespace = %+v, %v", got, err)
	}
	if got, _, err := store.ListTasks(ctx, pool, store.TaskFilter{CorrelationID: uuid.New(), Limit: 10}); err != nil || len(got) != 0 {
		t.Fatalf("unknown correlation id = %+v, %v", got, err)
	}
	if got, _, err := store.ListTasks(ctx, pool, store.TaskFilter{Limit: 10}); err != nil || len(got) != 2 {
		t.Fatalf("no filter = %d tasks, %v; want 2", len(got), err)
	}
}

func TestListTemplates(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	for _, v := range []string{"1", "2", "3"} {
		if _, _, err := store.RegisterTemplate(ctx, pool, store.Template{Namespace: "ns", Name: "t", Version: v, Definition: []byte(`{"steps":[{},{}]}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := store.RegisterTemplate(ctx, pool, store.Template{Namespace: "other", Name: "u", Version: "1", Definition: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	page, more, err := store.ListTemplates(ctx, pool, store.TemplateFilter{Namespace: "ns", Limit: 2})
	if err != nil || len(page) != 2 || !more || page[0].Version != "3" || page[0].Steps != 2 {
		t.Fatalf("page 1 = %+v, %v, %v", page, more, err)
	}
	page, more, err = store.ListTemplates(ctx, pool, store.TemplateFilter{Namespace: "ns", Limit: 2, Before: page[1].ID})
	if err != nil || len(page) != 1 || more || page[0].Version != "1" {
		t.Fatalf("page 2 = %+v, %v, %v", page, more, err)
	}
	all, _, err := store.ListTemplates(ctx, pool, store.TemplateFilter{Limit: 10})
	if err != nil || len(all) != 4 || all[0].Name != "u" || all[0].Steps != 0 {
		t.Fatalf("all = %+v, %v", all, err)
	}
}

func TestUUIDv7Floor(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 4, 5, 6, 7, 8_000_000, time.UTC)
	floor := store.UUIDv7Floor(at)
	for range 100 {
		u := uuid.Must(uuid.NewV7())
		if u.String() <= floor.String() {
			t.Fatalf("a uuid made now (%s) sorts before the floor of an earlier time (%s)", u, floor)
		}
	}
	if later := store.UUIDv7Floor(at.Add(time.Millisecond)); later.String() <= floor.String() {
		t.Fatal("floors are not ordered by time")
	}
	var ms int64
	for _, b := range floor[:6] {
		ms = ms<<8 | int64(b)
	}
	if ms != at.UnixMilli() {
		t.Fatalf("floor time = %d ms, want %d", ms, at.UnixMilli())
	}
}

// A step's yields show in every read of it (GetStep, ListTaskSteps, dead
// letters), and a redrive resets them.
func TestStepReadsShowYields(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	task, steps := diamond(t, pool, "yields", now)
	for i := range 2 {
		cs, err := store.Claim(ctx, pool, store.ClaimParams{WorkerID: "w1", Namespaces: []string{"yields"}, Limit: 1, Now: now, LeaseFor: time.Minute})
		if err != nil || len(cs) != 1 {
			t.Fatalf("claim %d: %v %v", i, cs, err)
		}
		ckpt := fmt.Sprintf(`{"cursor": %d}`, i)
		if _, err := store.Complete(ctx, pool, "w1", now, []store.Completion{{StepUUID: steps[0], Attempt: cs[0].Attempt, Epoch: cs[0].Epoch, State: contracts.StepStateEnqueued, RunAt: now, Checkpoint: []byte(ckpt)}}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.GetStep(ctx, pool, steps[0])
	if err != nil || st.Yields != 2 || st.State != contracts.StepStateEnqueued || string(st.Checkpoint) != `{"cursor": 1}` {
		t.Fatalf("GetStep after 2 yields = %+v, %v", st, err)
	}
	all, err := store.ListTaskSteps(ctx, pool, task)
	if err != nil || len(all) != 4 {
		t.Fatalf("ListTaskSteps = %+v, %v", all, err)
	}
	for _, s := range all {
		if want := map[bool]int{true: 2, false: 0}[s.StepUUID == steps[0]]; s.Yields != want {
			t.Errorf("ListTaskSteps: step %s has %d yields, want %d", s.Name, s.Yields, want)
		}
	}

	if failed := failReady(t, pool, "yields", now); !slices.Equal(failed, steps[:1]) {
		t.Fatalf("failed %v, want step a", failed)
	}
	dl, _, err := store.ListDeadLetters(ctx, pool, store.DeadLetterFilter{Namespace: "yields"}, nil, 10)
	if err != nil || len(dl) != 1 || dl[0].StepUUID != steps[0] || dl[0].Yields != 2 {
		t.Fatalf("dead letters = %+v, %v", dl, err)
	}
	if _, err := store.RedriveSteps(ctx, pool, store.RedriveRequest{StepUUIDs: steps[:1], AdditionalAttempts: 1, Manual: store.Manual{Now: now}}); err != nil {
		t.Fatal(err)
	}
	if st, err := store.GetStep(ctx, pool, steps[0]); err != nil || st.Yields != 0 || st.State != contracts.StepStateEnqueued {
		t.Fatalf("redriven step = %+v, %v", st, err)
	}
}
