package app

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// serve runs retention as [worker.retention] says: with the defaults, a
// task cancelled 40 days ago goes (logged and counted in /metrics), one
// cancelled today stays.
func TestServeRunsRetention(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := ephemeralConfig(t)
	cfg.Worker.Retention.IntervalSeconds = 1
	conn, err := pgx.Connect(ctx, cfg.Database.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	cancelled := func(created, at time.Time) uuid.UUID {
		return pgtest.CancelledTask(t, conn, "keep", created, at)
	}
	now := time.Now()
	old := cancelled(now.Add(-41*24*time.Hour), now.Add(-40*24*time.Hour))
	recent := cancelled(now.Add(-time.Hour), now)
	exists := func(id uuid.UUID) bool {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM tasker.tasks WHERE task_uuid = $1`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}

	addrs, logs := startServe(t, cfg)
	// The line is logged last, after the deletion and the metrics.
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(logs.String(), "retention deleted expired tasks") {
		if time.Now().After(deadline) {
			t.Fatalf("no retention run deleted anything within 30s\n%s", logs)
		}
		<-tick.C
	}
	if exists(old) {
		t.Error("the task cancelled 40 days ago is still there")
	}
	if !exists(recent) {
		t.Error("the task cancelled today was deleted")
	}
	if got := clitest.MetricValue(t, addrs.api, "tasker_retention_tasks_deleted_total", `state="cancelled"`); got != 1 {
		t.Errorf("tasker_retention_tasks_deleted_total{state=\"cancelled\"} = %v, want 1", got)
	}
}
