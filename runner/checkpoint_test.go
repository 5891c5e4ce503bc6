package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

type checkpoint struct {
	Cursor         int `json:"cursor"`
	ItemsProcessed int `json:"items_processed"`
}

// A step that yields five times and then finishes records five checkpoints
// and one attempt; a failure after checkpoint 3 resumes from checkpoint 3.
func TestCheckpointsDoNotConsumeAttempts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, "name: long\nnamespace_name: ckpt\nversion: 1\nsteps:\n  - name: work\n    handler: {callable: yields}\n    retry: {max_attempts: 3, backoff: fixed, backoff_base_ms: 20}\n")
	register(t, client, "name: flaky\nnamespace_name: ckpt\nversion: 1\nsteps:\n  - name: work\n    handler: {callable: fails_after_3}\n    retry: {max_attempts: 3, backoff: fixed, backoff_base_ms: 20}\n")

	var mu sync.Mutex
	resumedFrom := map[int]int{} // attempt -> cursor seen at its first call
	var h callout.Funcs
	step := func(env *contracts.StepEnvelope) checkpoint {
		var c checkpoint
		if len(env.Step.Checkpoint) > 0 {
			_ = json.Unmarshal(env.Step.Checkpoint, &c)
		}
		return c
	}
	yield := func(c checkpoint) contracts.StepResult {
		b, _ := json.Marshal(checkpoint{Cursor: c.Cursor + 1, ItemsProcessed: c.ItemsProcessed + 10})
		return contracts.StepResult{Success: true, Status: contracts.StatusYielded, Checkpoint: b}
	}
	h.Register("yields", func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		if c := step(env); c.Cursor < 5 {
			return yield(c), nil
		}
		return contracts.StepResult{Success: true, Result: json.RawMessage(`{"done":true}`)}, nil
	})
	failed := false
	h.Register("fails_after_3", func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		c := step(env)
		mu.Lock()
		if _, ok := resumedFrom[env.Step.Attempts]; !ok {
			resumedFrom[env.Step.Attempts] = c.Cursor
		}
		first := !failed && c.Cursor == 3
		if first {
			failed = true
		}
		mu.Unlock()
		switch {
		case first:
			return contracts.StepResult{}, errors.New("lost the connection mid-batch")
		case c.Cursor < 5:
			return yield(c), nil
		}
		return contracts.StepResult{Success: true}, nil
	})
	startRunner(t, pool, runner.Config{Handlers: &h, PollInterval: 50 * time.Millisecond})

	long, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "ckpt", Name: "long"})
	if err != nil {
		t.Fatal(err)
	}
	flaky, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "ckpt", Name: "flaky"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "both tasks", func() bool {
		return taskState(t, pool, long.TaskUUID) == "complete" && taskState(t, pool, flaky.TaskUUID) == "complete"
	})
	var attempts, history int
	if err := pool.QueryRow(ctx, `SELECT attempts, jsonb_array_length(checkpoint_history) FROM tasker.steps WHERE task_uuid = $1`, long.TaskUUID).Scan(&attempts, &history); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 || history != 5 {
		t.Fatalf("yielding step: %d attempts and %d checkpoints, want 1 and 5", attempts, history)
	}
	mu.Lock()
	defer mu.Unlock()
	if resumedFrom[2] != 3 {
		t.Fatalf("the retry after the failure started from cursor %d, want 3 (attempts seen: %v)", resumedFrom[2], resumedFrom)
	}
}

// A step that never stops yielding is stopped at the yield limit
// (yield_limit_exceeded, no retries, its last checkpoint kept); a redrive
// gives it a new allowance from that checkpoint.
func TestYieldLimit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, "name: forever\nnamespace_name: ckpt\nversion: 1\nsteps:\n  - name: work\n    handler: {callable: forever}\n    retry: {max_attempts: 3}\n")
	var mu sync.Mutex
	var cursors []int // the checkpoint each call started from
	var h callout.Funcs
	h.Register("forever", func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
		var c checkpoint
		if len(env.Step.Checkpoint) > 0 {
			_ = json.Unmarshal(env.Step.Checkpoint, &c)
		}
		mu.Lock()
		cursors = append(cursors, c.Cursor)
		mu.Unlock()
		b, _ := json.Marshal(checkpoint{Cursor: c.Cursor + 1})
		return contracts.StepResult{Success: true, Status: contracts.StatusYielded, Checkpoint: b}, nil
	})
	startRunner(t, pool, runner.Config{Handlers: &h, PollInterval: 50 * time.Millisecond, MaxYieldsPerStep: 5})

	task, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "ckpt", Name: "forever"})
	if err != nil {
		t.Fatal(err)
	}
	stopped := func(round int, wantCursor int, wantCalls []int) {
		t.Helper()
		waitFor(t, 15*time.Second, "the step stopped", func() bool { return taskState(t, pool, task.TaskUUID) == "blocked_by_failures" })
		var state, errType string
		var attempts, yields, cursor int
		if err := pool.QueryRow(ctx, `SELECT state, attempts, yields, (checkpoint->>'cursor')::int, last_error->'error'->>'error_type'
			FROM tasker.steps WHERE task_uuid = $1`, task.TaskUUID).Scan(&state, &attempts, &yields, &cursor, &errType); err != nil {
			t.Fatal(err)
		}
		if state != "error" || attempts != round || yields != 5 || cursor != wantCursor || errType != contracts.ErrorTypeYieldLimit {
			t.Fatalf("round %d: state %s, %d attempts, %d yields, checkpoint cursor %d, error_type %q; want error, %d, 5, %d, %s",
				round, state, attempts, yields, cursor, errType, round, wantCursor, contracts.ErrorTypeYieldLimit)
		}
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(cursors, wantCalls) {
			t.Fatalf("round %d: calls started from cursors %v, want %v", round, cursors, wantCalls)
		}
	}
	// Five yields stored, the sixth refused: six calls, one attempt.
	stopped(1, 5, []int{0, 1, 2, 3, 4, 5})

	var step uuid.UUID
	if err := pool.QueryRow(ctx, `SELECT step_uuid FROM tasker.steps WHERE task_uuid = $1`, task.TaskUUID).Scan(&step); err != nil {
		t.Fatal(err)
	}
	if _, err := store.RedriveSteps(ctx, pool, store.RedriveRequest{StepUUIDs: []uuid.UUID{step}}); err != nil {
		t.Fatal(err)
	}
	// Redriven: five more yields from cursor 5, then stopped again.
	stopped(2, 10, []int{0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10})
}
