package runner_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// countingHandler passes records to next and counts those whose message
// contains match.
type countingHandler struct {
	slog.Handler
	match string
	n     *atomic.Int64
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.match) {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return countingHandler{h.Handler.WithAttrs(as), h.match, h.n}
}

func (h countingHandler) WithGroup(g string) slog.Handler {
	return countingHandler{h.Handler.WithGroup(g), h.match, h.n}
}

// TestCompleterRetriesAfterDroppedConnection: while a handler runs, the test
// terminates every backend of the runner's pool (pg_terminate_backend, as a
// database restart or a proxy would). The pool hands the dead connection to
// the completer's write (it does not ping connections on acquire), the
// write fails and is retried on a new connection: the outcome is written
// after all, exactly once.
func TestCompleterRetriesAfterDroppedConnection(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := pgtest.URL(t)
	admin, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	app := "i16-completer-" + uuid.NewString()[:8]
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	pcfg.ConnConfig.RuntimeParams["application_name"] = app
	// Hand out idle connections unchecked, so that the write after the
	// kill meets a dead one rather than a replacement made on acquire.
	pcfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close) // after the runner stops (cleanups run last first)

	client := runner.NewClient(admin, runner.ClientConfig{})
	register(t, client, "name: one\nnamespace_name: drop\nversion: 1\nsteps:\n  - name: only\n    handler: {callable: work}\n")

	var handlers callout.Funcs
	held := holdHandler(&handlers, "work")
	// Submitted before the runner starts: its one claim, at start, takes it.
	sub, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "drop", Name: "one"})
	if err != nil {
		t.Fatal(err)
	}
	var retries atomic.Int64
	logger := slog.New(countingHandler{testLogger(t).Handler(), "writing step outcomes; retrying", &retries})
	// Nothing else touches the pool while the handler runs: no poll after
	// the first claim, no heartbeat, no lease extension, no listener.
	r := startRunner(t, pool, runner.Config{
		WorkerID: "w", Handlers: &handlers, Logger: logger, Mode: runner.ModePollingOnly,
		PollInterval: time.Hour, HeartbeatInterval: time.Hour, LeaseFor: time.Hour,
	})
	t.Cleanup(held.letGo)

	select {
	case <-held.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the handler was never called")
	}

	var killed int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) k`, app).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("the runner's pool had no connection to drop")
	}
	waitFor(t, 20*time.Second, "the runner's backends to end", func() bool {
		var n int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	held.letGo()
	waitFor(t, 30*time.Second, "the task to complete", func() bool { return taskState(t, admin, sub.TaskUUID) == "complete" })
	waitFor(t, 30*time.Second, "the runner to count the write", func() bool { return r.Stats().Flushes > 0 })

	var state string
	var attempts, completes int
	if err := admin.QueryRow(ctx, `SELECT s.state, s.attempts,
		(SELECT count(*) FROM tasker.step_history x WHERE x.step_uuid = s.step_uuid AND x.to_state = 'complete')
		FROM tasker.steps s WHERE s.task_uuid = $1`, sub.TaskUUID).Scan(&state, &attempts, &completes); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if state != "complete" || attempts != 1 || completes != 1 || held.calls.Load() != 1 || st.Completed != 1 || st.Stale != 0 {
		t.Fatalf("step %s, attempt %d, %d complete transitions, %d handler calls; stats %+v; want complete, 1, 1, 1, one completed and none stale",
			state, attempts, completes, held.calls.Load(), st)
	}
	if retries.Load() == 0 {
		t.Fatalf("the completer's write never failed (%d connections dropped): the test did not exercise the retry", killed)
	}
	t.Logf("%d connections dropped; the write was retried %d times", killed, retries.Load())
}
