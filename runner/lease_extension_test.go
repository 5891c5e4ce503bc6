package runner_test

import (
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// TestLeaseExtendedWhileHandlerRuns: a handler runs for several visibility
// timeouts while a second runner polls the same database. The first
// runner's heartbeat keeps extending the lease (README: leases), so the
// second never rescues the step: one attempt, one handler call, one claim
// in the audit, and the first runner's outcome is applied (not stale).
func TestLeaseExtendedWhileHandlerRuns(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, "name: slow\nnamespace_name: lease\nversion: 1\nsteps:\n  - name: only\n    handler: {callable: slow}\n    timeout_seconds: 120\n    retry: {max_attempts: 3}\n")

	const leaseFor = 2 * time.Second // the shortest allowed is 1s
	var handlers callout.Funcs
	held := holdHandler(&handlers, "slow")
	cfg := func(id string) runner.Config {
		return runner.Config{
			WorkerID: id, Handlers: &handlers, LeaseFor: leaseFor,
			Mode: runner.ModePollingOnly, PollInterval: 50 * time.Millisecond,
		}
	}
	a := startRunner(t, pool, cfg("runner-a"))
	t.Cleanup(held.letGo) // runs before the runners stop

	sub, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "lease", Name: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-held.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the handler was never called")
	}
	b := startRunner(t, pool, cfg("runner-b"))

	// Wait, by the database's clock, until the first lease would have
	// expired twice over; then until the second runner has polled a few
	// more times.
	waitFor(t, 30*time.Second, "two visibility timeouts to pass", func() bool {
		var passed bool
		var attempts int
		if err := pool.QueryRow(ctx, `SELECT now() > last_attempted_at + 2 * $2::interval, attempts FROM tasker.steps WHERE task_uuid = $1`,
			sub.TaskUUID, leaseFor).Scan(&passed, &attempts); err != nil {
			t.Fatal(err)
		}
		if attempts != 1 {
			t.Fatalf("the step was claimed again while its handler ran (attempt %d): the lease was not extended", attempts)
		}
		return passed
	})
	polls := b.Stats().ClaimQueries
	waitFor(t, 30*time.Second, "the second runner to poll again", func() bool { return b.Stats().ClaimQueries >= polls+3 })
	var owner *string
	var ahead bool
	var attempts int
	if err := pool.QueryRow(ctx, `SELECT lease_owner, coalesce(lease_expires_at > now(), false), attempts FROM tasker.steps WHERE task_uuid = $1`,
		sub.TaskUUID).Scan(&owner, &ahead, &attempts); err != nil {
		t.Fatal(err)
	}
	if owner == nil || *owner != "runner-a" || !ahead || attempts != 1 {
		t.Fatalf("while the handler runs: lease owner %v, lease in the future %v, attempt %d; want runner-a, true, 1", owner, ahead, attempts)
	}
	held.letGo()
	waitFor(t, 20*time.Second, "the task to complete", func() bool { return taskState(t, pool, sub.TaskUUID) == "complete" })

	var claims, rescues int
	if err := pool.QueryRow(ctx, `SELECT s.attempts,
		(SELECT count(*) FROM tasker.step_history x WHERE x.step_uuid = s.step_uuid AND x.to_state = 'in_progress'),
		(SELECT count(*) FROM tasker.step_history x WHERE x.step_uuid = s.step_uuid AND x.to_state = 'in_progress' AND x.from_state = 'in_progress')
		FROM tasker.steps s WHERE s.task_uuid = $1`, sub.TaskUUID).Scan(&attempts, &claims, &rescues); err != nil {
		t.Fatal(err)
	}
	sa, sb := a.Stats(), b.Stats()
	if attempts != 1 || claims != 1 || rescues != 0 || held.calls.Load() != 1 {
		t.Fatalf("attempts %d, claims in the audit %d, rescues %d, handler calls %d; want 1, 1, 0, 1", attempts, claims, rescues, held.calls.Load())
	}
	if sa.Completed != 1 || sa.Stale != 0 || sa.Rescued != 0 || sb.Claimed != 0 {
		t.Fatalf("runner a: %+v; runner b: %+v; want a to complete the step, b to claim nothing", sa, sb)
	}
}
