package runner_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts/webhook"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// waitingStep is what the test reads of a task's only step.
type waitingStep struct {
	state     string
	attempts  int
	lastError *string
}

func onlyStep(t *testing.T, pool *pgxpool.Pool, task uuid.UUID) waitingStep {
	t.Helper()
	var s waitingStep
	if err := pool.QueryRow(context.Background(),
		`SELECT state, attempts, last_error::text FROM tasker.steps WHERE task_uuid = $1`, task).Scan(&s.state, &s.attempts, &s.lastError); err != nil {
		t.Fatal(err)
	}
	return s
}

func endpointError(reg *callout.Registry, pattern string) (string, bool) {
	for _, e := range reg.Endpoints() {
		if e.Pattern == pattern {
			return e.Error, true
		}
	}
	return "", false
}

// A runner that cannot resolve one endpoint's secret_ref starts anyway:
// that endpoint is unusable (the reason logged once and shown in the
// registry's status), its steps wait in the queue without being called,
// failed or charged an attempt, and they do not fall through to a broader
// pattern (which would call them unsigned, elsewhere); the other endpoints
// keep working. It recovers on its own when the secret file appears, and
// when the endpoint is registered again with a secret that resolves.
func TestUnresolvableSecretMakesOnlyItsEndpointWait(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	register(t, client, "name: signed\nnamespace_name: sec\nversion: 1\nsteps:\n  - name: work\n    handler: {callable: signed.work}\n    retry: {max_attempts: 3}\n")
	register(t, client, "name: plain\nnamespace_name: sec\nversion: 1\nsteps:\n  - name: work\n    handler: {callable: plain.work}\n")

	secret := webhook.NewSecret()
	verifier, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	var signedCalls, badSignatures, strayCalls, plainCalls atomic.Int64
	signedSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := verifier.Verify(r.Header, body); err != nil {
			badSignatures.Add(1)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		signedCalls.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(signedSrv.Close)
	plainSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		plainCalls.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(plainSrv.Close)
	// The namespace default: a step of an unusable endpoint must not end up here.
	straySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		strayCalls.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(straySrv.Close)

	dir := t.TempDir()
	secretFile := filepath.Join(dir, "signed-hook") // not there yet
	now := time.Now()
	for _, row := range []store.HandlerEndpoint{
		{Pattern: "signed.*", URL: signedSrv.URL, Protocol: "http", SecretRef: "file:" + secretFile},
		{Pattern: "plain.*", URL: plainSrv.URL, Protocol: "http"},
		{Pattern: "*", URL: straySrv.URL, Protocol: "http"},
	} {
		if _, err := store.PutEndpoint(ctx, pool, row, now); err != nil {
			t.Fatal(err)
		}
	}

	logs := &lockedBuffer{}
	reg := callout.NewRegistry(callout.RegistryConfig{})
	t.Cleanup(reg.Close)
	const recheck = 100 * time.Millisecond
	eps := &runner.Endpoints{Registry: reg, DB: pool, SecretDirs: []string{dir}, RecheckInterval: recheck,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	r := startRunner(t, pool, runner.Config{Handlers: reg, Endpoints: eps, PollInterval: 50 * time.Millisecond})

	reason, ok := endpointError(reg, "signed.*")
	if !ok || !strings.Contains(reason, "cannot be resolved") {
		t.Fatalf("signed.* after start: error %q (registered %v), want the secret_ref failure", reason, ok)
	}
	if e, _ := endpointError(reg, "plain.*"); e != "" {
		t.Fatalf("plain.* is unusable too: %s", e)
	}

	signed, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "sec", Name: "signed"})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "sec", Name: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the task of the usable endpoint", func() bool { return taskState(t, pool, plain.TaskUUID) == "complete" })
	// The signed step is given back again and again (every recheck
	// interval), never called, never failed, never charged an attempt.
	released := r.Stats().Released
	waitFor(t, 10*time.Second, "the waiting step to be given back three more times", func() bool { return r.Stats().Released >= released+3 })
	if s := onlyStep(t, pool, signed.TaskUUID); (s.state != "enqueued" && s.state != "in_progress") || s.attempts > 1 || s.lastError != nil {
		t.Fatalf("the step of the unusable endpoint: %+v, want it waiting in the queue with no attempt used and no error", s)
	}
	if n := signedCalls.Load() + badSignatures.Load() + strayCalls.Load(); n != 0 {
		t.Fatalf("the unusable endpoint's step was called %d times (signed service %d, unsigned %d, namespace default %d)",
			n, signedCalls.Load(), badSignatures.Load(), strayCalls.Load())
	}
	if n := strings.Count(logs.String(), "handler endpoint unusable"); n != 1 {
		t.Errorf("the unusable endpoint was logged %d times over several rechecks, want once:\n%s", n, logs)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "signed-hook") {
		t.Errorf("the log does not say why (at error level):\n%s", l)
	}

	// The secret file appears (mounted late): the runner notices by itself.
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the waiting task to complete once its secret resolves", func() bool { return taskState(t, pool, signed.TaskUUID) == "complete" })
	if s := onlyStep(t, pool, signed.TaskUUID); s.attempts != 1 {
		t.Errorf("the step used %d attempts, want 1: waiting used none", s.attempts)
	}
	if e, _ := endpointError(reg, "signed.*"); e != "" {
		t.Errorf("signed.* still unusable: %s", e)
	}
	if signedCalls.Load() != 1 || badSignatures.Load() != 0 || strayCalls.Load() != 0 {
		t.Errorf("calls: signed %d, badly signed %d, namespace default %d; want 1, 0, 0", signedCalls.Load(), badSignatures.Load(), strayCalls.Load())
	}
	if !strings.Contains(logs.String(), "handler endpoint usable again") {
		t.Errorf("the recovery is not logged:\n%s", logs)
	}

	// Registered again (as another runner could) with a variable this one
	// lacks: unusable again at once (NOTIFY); registered with the file
	// again: usable, and the step submitted meanwhile completes.
	if _, err := store.PutEndpoint(ctx, pool, store.HandlerEndpoint{Pattern: "signed.*", URL: signedSrv.URL, Protocol: "http", SecretRef: "env:TASKER_TEST_NOT_SET_ANYWHERE"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "signed.* to be unusable again", func() bool {
		e, _ := endpointError(reg, "signed.*")
		return strings.Contains(e, "TASKER_TEST_NOT_SET_ANYWHERE")
	})
	again, err := client.Submit(ctx, runner.SubmitRequest{Namespace: "sec", Name: "signed"})
	if err != nil {
		t.Fatal(err)
	}
	released = r.Stats().Released
	waitFor(t, 10*time.Second, "the new step to be given back", func() bool { return r.Stats().Released > released })
	if _, err := store.PutEndpoint(ctx, pool, store.HandlerEndpoint{Pattern: "signed.*", URL: signedSrv.URL, Protocol: "http", SecretRef: "file:" + secretFile}, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the task to complete after the endpoint was put again", func() bool { return taskState(t, pool, again.TaskUUID) == "complete" })
	if s := onlyStep(t, pool, again.TaskUUID); s.attempts != 1 || strayCalls.Load() != 0 || badSignatures.Load() != 0 {
		t.Errorf("after the re-put: %+v, namespace default called %d times, badly signed %d", s, strayCalls.Load(), badSignatures.Load())
	}
}
