package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// ReadyQueues counts the steps claimable now, by namespace, with the age of
// the oldest; namespaces with nothing ready report zeros.
func TestReadyQueues(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	// Made ready a minute ago: three diamonds, whose roots are ready and
	// the rest pending.
	ready := time.Now().Add(-time.Minute)
	diamond(t, pool, "busy", ready)
	diamond(t, pool, "busy", ready)
	_, steps := diamond(t, pool, "busy", ready)
	// A retry not yet due is not ready.
	if _, err := pool.Exec(ctx, `UPDATE tasker.steps SET run_at = now() + interval '1 hour' WHERE step_uuid = $1`, steps[0]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.RegisterTemplate(ctx, pool, store.Template{Namespace: "idle", Name: "t", Version: "1", Definition: []byte(`{"name":"t"}`)}); err != nil {
		t.Fatal(err)
	}

	qs, err := store.ReadyQueues(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 2 || qs[0].Namespace != "busy" || qs[1] != (store.QueueStat{Namespace: "idle"}) {
		t.Fatalf("queues %+v, want busy then idle (empty)", qs)
	}
	if busy := qs[0]; busy.Ready != 2 || busy.OldestAge < 59*time.Second || busy.OldestAge > 2*time.Minute {
		t.Errorf("busy: %+v, want 2 ready, the oldest aged about a minute", busy)
	}

	// The statement honours its context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := store.ReadyQueues(cctx, pool); err == nil {
		t.Error("ReadyQueues with a cancelled context succeeded")
	}
}
