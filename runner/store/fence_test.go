package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// fenceClaim claims the one claimable step of ns for w1, failing the test
// unless there is exactly one.
func fenceClaim(t *testing.T, pool *pgxpool.Pool, ns string, now time.Time) store.ClaimedStep {
	t.Helper()
	cs, err := store.Claim(t.Context(), pool, store.ClaimParams{WorkerID: "w1", Namespaces: []string{ns}, Limit: 1, Now: now, LeaseFor: time.Minute})
	if err != nil || len(cs) != 1 {
		t.Fatalf("claim in %s: %d steps, %v", ns, len(cs), err)
	}
	return cs[0]
}

func completionOf(c store.ClaimedStep, state contracts.StepState) store.Completion {
	comp := store.Completion{StepUUID: c.StepUUID, Attempt: c.Attempt, Epoch: c.Epoch, State: state}
	switch state {
	case contracts.StepStateComplete:
		comp.Results = []byte(`{"late":true}`)
	case contracts.StepStateWaitingForRetry, contracts.StepStateError:
		comp.Error = []byte(`{"message":"late"}`)
	}
	return comp
}

func countTransitions(t *testing.T, pool *pgxpool.Pool, step uuid.UUID, to string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM tasker.step_history WHERE step_uuid = $1 AND to_state = $2`, step, to).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The same runner gives a step back without using its attempt (a release
// at shutdown, a yield, an open breaker) and claims it again: same owner,
// same attempt number. A late write of the earlier claim (a re-send whose
// first commit's reply was lost, say) must not land on the new claim: the
// lease epoch tells the claims apart. Every kind of write of the earlier
// claim is refused and counted stale, and its lease is not extended.
func TestFenceRefusesEarlierClaimOfSameOwnerAndAttempt(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		// giveBack is how the first claim ends; the step is claimable
		// again at the time it returns.
		giveBack func(store.ClaimedStep) (store.Completion, time.Time)
	}{
		{"release", func(c store.ClaimedStep) (store.Completion, time.Time) {
			comp := completionOf(c, contracts.StepStateEnqueued)
			comp.RunAt = now
			return comp, now
		}},
		{"yield", func(c store.ClaimedStep) (store.Completion, time.Time) {
			comp := completionOf(c, contracts.StepStateEnqueued)
			comp.RunAt, comp.Checkpoint = now, []byte(`{"cursor":1}`)
			return comp, now
		}},
		{"breaker_open", func(c store.ClaimedStep) (store.Completion, time.Time) {
			comp := completionOf(c, contracts.StepStateEnqueued)
			comp.RunAt = now.Add(30 * time.Second)
			return comp, comp.RunAt
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			pool := pgtest.Pool(t)
			ns := "fence_" + tc.name
			task, steps := diamond(t, pool, ns, now)

			first := fenceClaim(t, pool, ns, now)
			give, again := tc.giveBack(first)
			if r, err := store.Complete(ctx, pool, "w1", now, []store.Completion{give}); err != nil || r.Applied[first.StepUUID] != contracts.StepStateEnqueued {
				t.Fatalf("giving the step back: %+v, %v", r, err)
			}
			second := fenceClaim(t, pool, ns, again)
			if second.StepUUID != first.StepUUID || second.Attempt != first.Attempt || second.Epoch <= first.Epoch {
				t.Fatalf("re-claim = step %s attempt %d epoch %d; want step %s, attempt %d again and an epoch above %d",
					second.StepUUID, second.Attempt, second.Epoch, first.StepUUID, first.Attempt, first.Epoch)
			}

			// The earlier claim's lease is not extended; the current one's is.
			until := again.Add(time.Hour)
			if n, err := store.ExtendLeases(ctx, pool, "w1", []store.Lease{{StepUUID: first.StepUUID, Epoch: first.Epoch}}, until, again); err != nil || n != 0 {
				t.Fatalf("extending the earlier claim's lease: %d, %v; want 0", n, err)
			}
			if st, err := store.GetStep(ctx, pool, first.StepUUID); err != nil || st.LeaseExpiresAt == nil || !st.LeaseExpiresAt.Equal(second.LeaseExpires) {
				t.Fatalf("lease after the stale extension = %v, %v; want %v", st.LeaseExpiresAt, err, second.LeaseExpires)
			}

			// Late writes of the earlier claim: each is stale.
			for _, state := range []contracts.StepState{contracts.StepStateComplete, contracts.StepStateWaitingForRetry, contracts.StepStateError, contracts.StepStateEnqueued} {
				late := completionOf(first, state)
				if state == contracts.StepStateWaitingForRetry || state == contracts.StepStateEnqueued {
					late.RunAt = again
				}
				r, err := store.Complete(ctx, pool, "w1", again, []store.Completion{late})
				if err != nil || r.Stale != 1 || len(r.Applied) != 0 || r.Enqueued != 0 || len(r.TasksFinished) != 0 {
					t.Errorf("late %s of the earlier claim = %+v, %v; want it stale", state, r, err)
				}
			}
			st, err := store.GetStep(ctx, pool, first.StepUUID)
			if err != nil || st.State != contracts.StepStateInProgress || st.LeaseOwner != "w1" || st.Attempts != second.Attempt || st.Results != nil || st.LastError != nil {
				t.Fatalf("step after the late writes = %+v, %v; want it in progress under the second claim", st, err)
			}
			if n := countTransitions(t, pool, first.StepUUID, string(contracts.StepStateComplete)); n != 0 {
				t.Fatalf("%d complete transitions after the late writes, want 0", n)
			}
			for _, child := range steps[1:3] {
				if c, err := store.GetStep(ctx, pool, child); err != nil || c.State != contracts.StepStatePending {
					t.Fatalf("child %s after the late writes: %s, %v; want pending", child, c.State, err)
				}
			}
			if tk, err := store.GetTask(ctx, pool, task); err != nil || tk.StepsDone != 0 {
				t.Fatalf("task after the late writes: %d done, %v; want 0", tk.StepsDone, err)
			}

			// The current claim's own write applies.
			r, err := store.Complete(ctx, pool, "w1", again, []store.Completion{completionOf(second, contracts.StepStateComplete)})
			if err != nil || r.Stale != 0 || r.Applied[second.StepUUID] != contracts.StepStateComplete || r.Enqueued != 2 {
				t.Fatalf("the current claim's completion = %+v, %v", r, err)
			}
		})
	}
}

// Each part of the fence refuses on its own: owner, attempt and epoch. (The
// epoch alone tells the claims apart; the attempt must still match the
// claim's, or the audit and the retry decision would be about another
// attempt.)
func TestFenceChecksOwnerAttemptAndEpoch(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, steps := diamond(t, pool, "fence_parts", now)
	c := fenceClaim(t, pool, "fence_parts", now)
	good := completionOf(c, contracts.StepStateComplete)
	for _, tc := range []struct {
		name   string
		worker string
		change func(*store.Completion)
	}{
		{"owner", "w2", func(*store.Completion) {}},
		{"attempt", "w1", func(x *store.Completion) { x.Attempt++ }},
		{"attempt_below", "w1", func(x *store.Completion) { x.Attempt-- }},
		{"epoch", "w1", func(x *store.Completion) { x.Epoch++ }},
		{"epoch_below", "w1", func(x *store.Completion) { x.Epoch-- }},
	} {
		bad := good
		tc.change(&bad)
		if r, err := store.Complete(ctx, pool, tc.worker, now, []store.Completion{bad}); err != nil || r.Stale != 1 || len(r.Applied) != 0 {
			t.Fatalf("wrong %s: %+v, %v; want stale", tc.name, r, err)
		}
		// An extension checks owner and epoch (the attempt is not sent).
		refused := tc.worker != "w1" || bad.Epoch != c.Epoch
		if n, err := store.ExtendLeases(ctx, pool, tc.worker, []store.Lease{{StepUUID: bad.StepUUID, Epoch: bad.Epoch}}, now.Add(time.Hour), now); err != nil || (n == 0) != refused {
			t.Fatalf("extension with the wrong %s: %d leases extended, %v", tc.name, n, err)
		}
	}
	if r, err := store.Complete(ctx, pool, "w1", now, []store.Completion{good}); err != nil || r.Applied[steps[0]] != contracts.StepStateComplete {
		t.Fatalf("the right completion: %+v, %v", r, err)
	}
}

// A write re-sent after its first send committed unseen (the connection
// died before the reply) finds the step finished: it changes nothing, so
// the step completes once, the task counts it once and its children are
// enqueued once. LandedCompletions then tells the writer that the first
// send landed, and only for the claim that wrote it.
func TestResentCompletionAppliesOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	task, steps := diamond(t, pool, "fence_resend", now)

	// a yields once, then completes; both writes are sent twice.
	first := fenceClaim(t, pool, "fence_resend", now)
	yield := completionOf(first, contracts.StepStateEnqueued)
	yield.RunAt, yield.Checkpoint = now, []byte(`{"cursor":1}`)
	for i := range 2 {
		r, err := store.Complete(ctx, pool, "w1", now, []store.Completion{yield})
		if err != nil || r.Stale != i {
			t.Fatalf("yield, send %d: %+v, %v", i+1, r, err)
		}
	}
	second := fenceClaim(t, pool, "fence_resend", now)
	// The yield's re-send arriving after the re-claim must not land either.
	if r, err := store.Complete(ctx, pool, "w1", now, []store.Completion{yield}); err != nil || r.Stale != 1 {
		t.Fatalf("yield re-sent after the re-claim: %+v, %v", r, err)
	}
	done := completionOf(second, contracts.StepStateComplete)
	for i := range 2 {
		r, err := store.Complete(ctx, pool, "w1", now, []store.Completion{done})
		want := 2 // children made ready by the first send only
		if i == 1 {
			want = 0
		}
		if err != nil || r.Stale != i || r.Enqueued != want {
			t.Fatalf("completion, send %d: %+v, %v", i+1, r, err)
		}
	}

	st, err := store.GetStep(ctx, pool, steps[0])
	if err != nil || st.State != contracts.StepStateComplete || st.Yields != 1 || string(st.Results) != `{"late": true}` {
		t.Fatalf("step = %+v, %v", st, err)
	}
	for to, want := range map[string]int{string(contracts.StepStateComplete): 1, string(contracts.StepStateEnqueued): 2, string(contracts.StepStateInProgress): 2} {
		if n := countTransitions(t, pool, steps[0], to); n != want {
			t.Fatalf("%d transitions to %s, want %d", n, to, want)
		}
	}
	for _, child := range steps[1:3] {
		if n := countTransitions(t, pool, child, string(contracts.StepStateEnqueued)); n != 1 {
			t.Fatalf("child %s enqueued %d times, want 1", child, n)
		}
		if c, err := store.GetStep(ctx, pool, child); err != nil || c.PendingParents != 0 {
			t.Fatalf("child %s pending_parents = %d, %v; want 0", child, c.PendingParents, err)
		}
	}
	if tk, err := store.GetTask(ctx, pool, task); err != nil || tk.StepsDone != 1 {
		t.Fatalf("task steps_done = %d, %v; want 1", tk.StepsDone, err)
	}

	landed, err := store.LandedCompletions(ctx, pool, []store.Completion{done, yield})
	if err != nil || len(landed) != 1 || landed[steps[0]] != contracts.StepStateComplete {
		t.Fatalf("landed = %v, %v; want only the completion of the second claim", landed, err)
	}
	other := done
	other.State = contracts.StepStateError
	if landed, err := store.LandedCompletions(ctx, pool, []store.Completion{other}); err != nil || len(landed) != 0 {
		t.Fatalf("landed for another outcome = %v, %v; want none", landed, err)
	}
}

// A database at the schema before the lease epoch migrates up: its steps,
// including one leased by a runner of the older release, get epoch 0, and
// the first claim of this release (a rescue here) starts the count.
func TestMigrateAddsLeaseEpoch(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := openPool(t, pgtest.EmptyURL(t))
	all, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	epoch := len(all) - len(migrateTo(t, pool, "lease_epoch"))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, steps := legacyDiamond(t, pool, "upgrade", now)
	// An older runner holds a's lease (attempt 1) when the upgrade runs.
	if _, err := pool.Exec(ctx, `UPDATE tasker.steps SET state = 'in_progress', attempts = 1, lease_owner = 'old', lease_expires_at = $2 WHERE step_uuid = $1`,
		steps[0], now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	applied, err := store.NewMigrator(pool).Up(ctx)
	if err != nil || len(applied) != len(all)-epoch || applied[0].Name != "lease_epoch" {
		t.Fatalf("Up applied %v, %v; want the lease_epoch migration and those after it", applied, err)
	}
	var n, zero int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE lease_epoch = 0) FROM tasker.steps`).Scan(&n, &zero); err != nil || n != 4 || zero != 4 {
		t.Fatalf("steps after the upgrade: %d, %d at epoch 0, %v", n, zero, err)
	}
	// The old lease expires and this release rescues the step.
	c := fenceClaim(t, pool, "upgrade", now.Add(2*time.Minute))
	if c.StepUUID != steps[0] || !c.Rescued || c.Attempt != 2 || c.Epoch != 1 {
		t.Fatalf("rescue after the upgrade = step %s rescued %v attempt %d epoch %d", c.StepUUID, c.Rescued, c.Attempt, c.Epoch)
	}
	if r, err := store.Complete(ctx, pool, "w1", now, []store.Completion{completionOf(c, contracts.StepStateComplete)}); err != nil || r.Applied[steps[0]] != contracts.StepStateComplete {
		t.Fatalf("completion after the upgrade: %+v, %v", r, err)
	}
}
