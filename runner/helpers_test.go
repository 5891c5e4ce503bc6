package runner_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startRunner starts a runner and stops it gracefully when the test ends.
func startRunner(t testing.TB, pool *pgxpool.Pool, cfg runner.Config) *runner.Runner {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	r, err := runner.New(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
		cancel()
		r.Wait()
	})
	return r
}

func register(t testing.TB, c *runner.Client, doc string) runner.TemplateInfo {
	t.Helper()
	info, err := c.RegisterTemplate(context.Background(), []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func taskState(t testing.TB, pool *pgxpool.Pool, task uuid.UUID) string {
	t.Helper()
	var s string
	if err := pool.QueryRow(context.Background(), `SELECT state FROM tasker.tasks WHERE task_uuid = $1`, task).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// echoHandler returns its step name and the names of the dependency results it saw.
func echoHandler(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
	seen := make([]string, 0, len(env.DependencyResults))
	for name, r := range env.DependencyResults {
		var got struct{ Step string }
		if err := json.Unmarshal(r.Result, &got); err != nil || got.Step != name {
			return contracts.StepResult{}, callout.Permanent(fmt.Errorf("dependency %s has result %s", name, r.Result))
		}
		seen = append(seen, name)
	}
	b, _ := json.Marshal(map[string]any{"step": env.Step.Name, "seen": seen})
	return contracts.StepResult{Success: true, Result: b}, nil
}

func linearTemplate(ns string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: linear\nnamespace_name: %s\nversion: 1.0.0\nsteps:\n", ns)
	for i := range n {
		fmt.Fprintf(&b, "  - name: s%d\n    handler: {callable: echo}\n", i)
		if i > 0 {
			fmt.Fprintf(&b, "    dependencies: [s%d]\n", i-1)
		}
	}
	return b.String()
}

const diamondTemplate = `
name: diamond
namespace_name: %s
version: 1.0.0
steps:
  - name: a
    handler: {callable: echo}
  - name: b
    dependencies: [a]
    handler: {callable: echo}
  - name: c
    dependencies: [a]
    handler: {callable: echo}
  - name: d
    dependencies: [b, c]
    handler: {callable: echo}
`

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// lockedBuffer is a bytes.Buffer safe for a logger and a test at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
