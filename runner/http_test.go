package runner_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// A handler service that fails hard opens its breaker: its steps are not
// burned while the breaker is open, steps of other endpoints keep running,
// and once the service recovers the breaker closes and the work finishes.
func TestBreakerDoesNotBurnAttempts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, "name: pay\nnamespace_name: http\nversion: 1\nsteps:\n  - name: charge\n    handler: {callable: payments.charge}\n    retry: {max_attempts: 20, backoff_base_ms: 50}\n")
	register(t, client, "name: mail\nnamespace_name: http\nversion: 1\nsteps:\n  - name: send\n    handler: {callable: mail.send}\n")

	var healthy atomic.Bool
	var paymentCalls atomic.Int64
	payments := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paymentCalls.Add(1)
		if !healthy.Load() {
			http.Error(w, "database down", http.StatusServiceUnavailable)
			return
		}
		var env contracts.StepEnvelope
		_ = json.NewDecoder(r.Body).Decode(&env)
		_ = json.NewEncoder(w).Encode(contracts.StepResult{Success: true, Result: json.RawMessage(`{"charged":true}`)})
	}))
	t.Cleanup(payments.Close)
	mail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(mail.Close)

	reg := callout.NewRegistry(callout.RegistryConfig{})
	t.Cleanup(reg.Close)
	if err := reg.Set([]callout.Endpoint{
		{Pattern: "payments.*", URL: payments.URL, Breaker: callout.BreakerSettings{ConsecutiveFailures: 2, OpenTimeout: 300 * time.Millisecond}},
		{Pattern: "mail.*", URL: mail.URL},
	}); err != nil {
		t.Fatal(err)
	}
	startRunner(t, pool, runner.Config{Handlers: reg, PollInterval: 50 * time.Millisecond})

	var charges []uuid.UUID
	for range 6 {
		s, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "http", Name: "pay"})
		if err != nil {
			t.Fatal(err)
		}
		charges = append(charges, s.TaskUUID)
	}
	waitFor(t, 10*time.Second, "the payments breaker to open", func() bool {
		st := reg.Endpoints()
		return st[1].BreakerState == "open" && st[1].Rejected > 0
	})
	// Mail keeps working while payments is open.
	m, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "http", Name: "mail"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the mail task", func() bool { return taskState(t, pool, m.TaskUUID) == "complete" })

	// While open, no step was burned: at most the two tripping calls
	// consumed attempts (each of those steps has attempts left).
	var errored, maxAttempts int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'error'), coalesce(max(attempts), 0) FROM tasker.steps WHERE handler = 'payments.charge'`).Scan(&errored, &maxAttempts); err != nil {
		t.Fatal(err)
	}
	if errored != 0 {
		t.Fatalf("while the breaker was open: %d steps dead-lettered, max attempts %d", errored, maxAttempts)
	}

	healthy.Store(true)
	for _, task := range charges {
		waitFor(t, 15*time.Second, "payment tasks after recovery", func() bool { return taskState(t, pool, task) == "complete" })
	}
	if st := reg.Endpoints()[1]; st.BreakerState != "closed" {
		t.Fatalf("payments breaker after recovery: %+v", st)
	}
	var burned int
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(attempts), 0) FROM tasker.steps WHERE handler = 'payments.charge'`).Scan(&burned); err != nil {
		t.Fatal(err)
	}
	// Every consumed attempt is a call that reached the service (failed
	// tripping or half-open probes, and the 6 successes); the calls the open
	// breaker refused consumed none.
	if int64(burned) != paymentCalls.Load() || reg.Endpoints()[1].Rejected == 0 {
		t.Fatalf("%d attempts consumed for %d HTTP calls (breaker refused %d)", burned, paymentCalls.Load(), reg.Endpoints()[1].Rejected)
	}
	t.Logf("payments: %d HTTP calls, %d attempts consumed, breaker refused %d", paymentCalls.Load(), burned, reg.Endpoints()[1].Rejected)
}

// Endpoints registered in the database take effect in running runners
// without a restart; a callable that matches nothing fails with
// handler_not_found until then.
func TestDatabaseEndpointsTakeEffect(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, "name: late\nnamespace_name: dyn\nversion: 1\nsteps:\n  - name: only\n    handler: {callable: svc.work}\n    retry: {max_attempts: 5, backoff: fixed, backoff_base_ms: 100}\n")
	var signed atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		signed.Store(r.Header.Get("webhook-signature") != "")
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	reg := callout.NewRegistry(callout.RegistryConfig{})
	t.Cleanup(reg.Close)
	eps := &runner.Endpoints{Registry: reg, DB: pool, LookupEnv: func(k string) (string, bool) {
		return "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", k == "PAY_SECRET"
	}}
	startRunner(t, pool, runner.Config{Handlers: reg, Endpoints: eps, PollInterval: 50 * time.Millisecond})

	s, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "dyn", Name: "late"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a handler_not_found failure", func() bool {
		var errType *string
		_ = pool.QueryRow(ctx, `SELECT last_error->'error'->>'error_type' FROM tasker.steps WHERE task_uuid = $1`, s.TaskUUID).Scan(&errType)
		return errType != nil && *errType == contracts.ErrorTypeNotFound
	})
	if _, err := store.PutEndpoint(ctx, pool, store.HandlerEndpoint{Pattern: "svc.*", URL: srv.URL, Protocol: "http", SecretRef: "env:PAY_SECRET"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the task to complete through the new endpoint", func() bool { return taskState(t, pool, s.TaskUUID) == "complete" })
	if !signed.Load() {
		t.Error("the endpoint's secret was not used to sign the call")
	}
}
