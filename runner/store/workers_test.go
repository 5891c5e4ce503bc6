package store_test

import (
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

func TestWorkerRegistry(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range []string{"a", "b", "c"} {
		if err := store.RegisterWorker(ctx, pool, store.Worker{WorkerID: id, Hostname: "h", Version: "v", StartedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	later := t0.Add(time.Minute)
	if err := store.HeartbeatWorker(ctx, pool, "a", later); err != nil {
		t.Fatal(err)
	}
	if err := store.StopWorker(ctx, pool, "c", later); err != nil {
		t.Fatal(err)
	}
	ws, err := store.ListWorkers(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, w := range ws {
		got[w.WorkerID] = w.Status(later, 10*time.Second)
	}
	want := map[string]string{"a": "alive", "b": "stale", "c": "stopped"}
	for id, s := range want {
		if got[id] != s {
			t.Errorf("worker %s: %s, want %s (all: %v)", id, got[id], s, got)
		}
	}
}
