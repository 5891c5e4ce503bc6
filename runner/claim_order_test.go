package runner_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// submitOne submits a one-step task of template "one" in ns and returns
// its step's uuid.
func submitOne(t *testing.T, pool *pgxpool.Pool, client *runner.Client, ns string, priority int) uuid.UUID {
	t.Helper()
	s, err := client.Submit(t.Context(), runner.SubmitRequest{Namespace: ns, Name: "one", Priority: priority})
	if err != nil {
		t.Fatal(err)
	}
	var step uuid.UUID
	if err := pool.QueryRow(t.Context(), `SELECT step_uuid FROM tasker.steps WHERE task_uuid = $1`, s.TaskUUID).Scan(&step); err != nil {
		t.Fatal(err)
	}
	return step
}

func oneStepTemplate(ns string) string {
	return "name: one\nnamespace_name: " + ns + "\nversion: 1\nsteps:\n  - name: only\n    handler: {callable: work}\n"
}

// TestClaimOrderByPriority: store.Claim takes the highest priority first,
// across the namespaces it serves, and among equal priorities the step
// ready longest (run_at) first; a step not yet due is not taken. The run_at
// order is made the opposite of the priority order, so that a claim
// ignoring priority takes the wrong step, be it in the scan of each
// namespace (its LIMIT would keep only the oldest) or in the merge.
func TestClaimOrderByPriority(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, oneStepTemplate("a"))
	register(t, client, oneStepTemplate("b"))

	base := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	type step struct {
		name     string
		ns       string
		priority int
		runAt    time.Duration // after base
	}
	// Listed in the order they must be claimed.
	want := []step{
		{"b-p10", "b", 10, 9 * time.Minute},
		{"a-p5-early", "a", 5, 7 * time.Minute},
		{"a-p5-late", "a", 5, 8 * time.Minute},
		{"b-p5-later", "b", 5, 8*time.Minute + time.Second},
		{"a-p0", "a", 0, 2 * time.Minute},
		{"b-p0", "b", 0, 3 * time.Minute},
		{"a-p-3", "a", -3, 30 * time.Second},
		{"b-p-3", "b", -3, time.Minute},
	}
	names := map[uuid.UUID]string{}
	for _, s := range slices.Backward(want) { // submitted lowest first
		id := submitOne(t, pool, client, s.ns, s.priority)
		names[id] = s.name
		if _, err := pool.Exec(ctx, `UPDATE tasker.steps SET run_at = $2 WHERE step_uuid = $1`, id, base.Add(s.runAt)); err != nil {
			t.Fatal(err)
		}
	}
	// Highest priority of all, but not due until after the claims' now.
	future := submitOne(t, pool, client, "a", 100)
	if _, err := pool.Exec(ctx, `UPDATE tasker.steps SET run_at = $2 WHERE step_uuid = $1`, future, base.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}

	claimNow := base.Add(time.Hour)
	claim := func(limit int) []string {
		t.Helper()
		steps, err := store.Claim(ctx, pool, store.ClaimParams{
			WorkerID: "w", Namespaces: []string{"a", "b"}, Limit: limit, Now: claimNow, LeaseFor: time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range steps {
			n, ok := names[s.StepUUID]
			if !ok {
				n = "unexpected " + s.StepUUID.String()
			}
			got = append(got, n)
		}
		return got
	}
	// Two at a time: each claim takes the next two (a set: RETURNING has no order).
	for i := 0; i < len(want); i += 2 {
		got := claim(2)
		slices.Sort(got)
		exp := []string{want[i].name, want[i+1].name}
		slices.Sort(exp)
		if !slices.Equal(got, exp) {
			t.Fatalf("claim %d took %v, want %v", i/2+1, got, exp)
		}
	}
	if got := claim(10); len(got) != 0 {
		t.Fatalf("claimed %v, a step not yet due", got)
	}
}

// TestClaimNamespaceFilter: a claim for namespaces a and b takes every
// ready step of both and none of c's, at the store and in a runner
// configured with Namespaces [a, b] (c's steps, submitted first, stay
// enqueued and its handler is never called).
func TestClaimNamespaceFilter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	t.Run("store", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Pool(t)
		client := runner.NewClient(pool, runner.ClientConfig{})
		byNS := map[uuid.UUID]string{}
		for _, ns := range []string{"c", "a", "b"} {
			register(t, client, oneStepTemplate(ns))
			for i := range 3 {
				byNS[submitOne(t, pool, client, ns, 10*i)] = ns // c's have the top priorities too
			}
		}
		steps, err := store.Claim(ctx, pool, store.ClaimParams{
			WorkerID: "w", Namespaces: []string{"a", "b"}, Limit: 100, Now: time.Now().Add(time.Minute), LeaseFor: time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, s := range steps {
			if s.Namespace != byNS[s.StepUUID] {
				t.Errorf("step %s claimed as namespace %s, submitted in %s", s.StepUUID, s.Namespace, byNS[s.StepUUID])
			}
			count[byNS[s.StepUUID]]++
		}
		if count["a"] != 3 || count["b"] != 3 || count["c"] != 0 {
			t.Fatalf("claimed by namespace %v, want a:3 b:3 c:0", count)
		}
		var enqueued int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM tasker.steps WHERE namespace = 'c' AND state = 'enqueued' AND attempts = 0`).Scan(&enqueued); err != nil {
			t.Fatal(err)
		}
		if enqueued != 3 {
			t.Fatalf("%d of c's 3 steps still enqueued and unattempted", enqueued)
		}
	})

	t.Run("runner", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.Pool(t)
		client := runner.NewClient(pool, runner.ClientConfig{})
		tasks := map[string][]uuid.UUID{}
		for _, ns := range []string{"c", "a", "b"} {
			register(t, client, oneStepTemplate(ns))
			for i := range 3 {
				s, err := client.Submit(ctx, runner.SubmitRequest{Namespace: ns, Name: "one", Priority: 10 * i})
				if err != nil {
					t.Fatal(err)
				}
				tasks[ns] = append(tasks[ns], s.TaskUUID)
			}
		}
		var mu sync.Mutex
		called := map[string]int{}
		var handlers callout.Funcs
		handlers.Register("work", func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
			mu.Lock()
			called[env.Task.Namespace]++
			mu.Unlock()
			return contracts.StepResult{Success: true}, nil
		})
		r := startRunner(t, pool, runner.Config{Handlers: &handlers, Namespaces: []string{"a", "b"}, PollInterval: 50 * time.Millisecond})
		waitFor(t, 20*time.Second, "a's and b's tasks to complete", func() bool {
			for _, ns := range []string{"a", "b"} {
				for _, task := range tasks[ns] {
					if taskState(t, pool, task) != "complete" {
						return false
					}
				}
			}
			return true
		})
		// Every claim that found a's and b's steps would have found c's,
		// which were ready before them.
		var cStates []string
		if err := pool.QueryRow(ctx, `SELECT array_agg(DISTINCT state || '/' || attempts) FROM tasker.steps WHERE namespace = 'c'`).Scan(&cStates); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(cStates, []string{"enqueued/0"}) || called["c"] != 0 || called["a"] != 3 || called["b"] != 3 {
			t.Fatalf("c's steps %v (want enqueued/0); handler calls by namespace %v (want a:3 b:3)", cStates, called)
		}
		if st := r.Stats(); st.Claimed != 6 {
			t.Fatalf("runner claimed %d steps, want 6", st.Claimed)
		}
	})
}
