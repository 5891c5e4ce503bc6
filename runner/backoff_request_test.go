package runner_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// TestRunnerHonoursRequestedDelay: a failed attempt is retried after the
// delay its handler asked for (README: retries): a result's
// orchestration_metadata.backoff_request_seconds, else its backoff_hint,
// else a Retry-After header; the request wins over the template's backoff
// (even over its max_backoff_ms) and is capped at 24 hours (Retry-After at
// callout.MaxRetryAfter). The handlers answer over real HTTP; the runner's
// and the registry's clock is frozen, so each step's run_at must be exactly
// that instant plus the delay.
func TestRunnerHonoursRequestedDelay(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	cases := delayCases()
	srvURL := delayServer(t, cases)

	// The frozen clock is ahead of the database's, so that the steps,
	// enqueued at the database's now(), are due.
	frozen := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	now := func() time.Time { return frozen }
	reg := callout.NewRegistry(callout.RegistryConfig{Now: now})
	t.Cleanup(reg.Close)
	if err := reg.Set([]callout.Endpoint{{Pattern: "*", URL: srvURL + "/{callable}"}}); err != nil {
		t.Fatal(err)
	}
	tasks := make([]uuid.UUID, len(cases))
	for i, c := range cases {
		register(t, client, fmt.Sprintf("name: t%d\nnamespace_name: delays\nversion: 1\nsteps:\n  - name: only\n    handler: {callable: %s}\n"+
			"    retry: {max_attempts: 5, backoff: fixed, backoff_base_ms: 200, max_backoff_ms: 1000}\n", i, c.callable))
		s, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "delays", Name: fmt.Sprintf("t%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		tasks[i] = s.TaskUUID
	}
	startRunner(t, pool, runner.Config{Handlers: reg, Now: now, Rand: func() float64 { return 0.5 }, Mode: runner.ModePollingOnly, PollInterval: 50 * time.Millisecond})

	type stepRow struct {
		state    string
		attempts int
		runAt    time.Time
	}
	read := func(task uuid.UUID) stepRow {
		var r stepRow
		if err := pool.QueryRow(ctx, `SELECT state, attempts, run_at FROM tasker.steps WHERE task_uuid = $1`, task).Scan(&r.state, &r.attempts, &r.runAt); err != nil {
			t.Fatal(err)
		}
		return r
	}
	waitFor(t, 30*time.Second, "every step to fail its first attempt", func() bool {
		for _, task := range tasks {
			if read(task).state != "waiting_for_retry" {
				return false
			}
		}
		return true
	})
	var bad []string
	for i, c := range cases {
		r := read(tasks[i])
		if r.attempts != 1 || !r.runAt.Equal(frozen.Add(c.want)) {
			bad = append(bad, fmt.Sprintf("%s: attempts %d, run_at = failure + %s, want 1 and + %s", c.callable, r.attempts, r.runAt.Sub(frozen), c.want))
		}
	}
	if len(bad) > 0 {
		t.Fatal(strings.Join(bad, "\n"))
	}
}

// delayCase is a handler's way of asking for a retry delay, and the delay
// it must get.
type delayCase struct {
	callable string
	status   int
	header   string // Retry-After
	meta     string // orchestration_metadata, if any
	want     time.Duration
}

func delayCases() []delayCase {
	return []delayCase{
		{callable: "request", meta: `{"backoff_request_seconds":30}`, want: 30 * time.Second},
		{callable: "fraction", meta: `{"backoff_request_seconds":1.5}`, want: 1500 * time.Millisecond},
		{callable: "hint", meta: `{"backoff_hint":{"delay_seconds":45,"backoff_type":"server_requested"}}`, want: 45 * time.Second},
		{callable: "both", meta: `{"backoff_request_seconds":20,"backoff_hint":{"delay_seconds":90}}`, want: 20 * time.Second},
		{callable: "request-over-cap", meta: `{"backoff_request_seconds":1000000}`, want: 24 * time.Hour},
		{callable: "hint-over-cap", meta: `{"backoff_hint":{"delay_seconds":1000000}}`, want: 24 * time.Hour},
		{callable: "retry-after", status: http.StatusServiceUnavailable, header: "120", want: 120 * time.Second},
		{callable: "retry-after-over-cap", status: http.StatusTooManyRequests, header: "99999999", want: callout.MaxRetryAfter},
		// No request: the template's fixed backoff of 200ms, jitter at its
		// middle (Rand 0.5): 150ms.
		{callable: "none", want: 150 * time.Millisecond},
	}
}

// delayServer serves each case's failure at /{callable}.
func delayServer(t *testing.T, cases []delayCase) string {
	failure := `{"success":false,"error":{"message":"later","retryable":true}%s}`
	byPath := map[string]int{}
	for i, c := range cases {
		byPath["/"+c.callable] = i
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, ok := byPath[r.URL.Path]
		if !ok {
			http.Error(w, "unknown", http.StatusNotFound)
			return
		}
		c := cases[i]
		if c.status != 0 {
			w.Header().Set("Retry-After", c.header)
			http.Error(w, "busy", c.status)
			return
		}
		meta := ""
		if c.meta != "" {
			meta = `,"orchestration_metadata":` + c.meta
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, failure, meta)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
