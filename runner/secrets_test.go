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
	rig := newSecretRig(t)
	rig.start(t)
	signed := rig.submitWhileUnusable(t)
	rig.secretAppears(t, signed)
	rig.reput(t)
}

// secretRig is a runner whose signed.* endpoint's secret file is missing at
// start, beside a usable plain.* endpoint and the namespace default (which
// a step of an unusable endpoint must not reach).
type secretRig struct {
	ctx        context.Context
	pool       *pgxpool.Pool
	client     *runner.Client
	reg        *callout.Registry
	r          *runner.Runner
	logs       *lockedBuffer
	dir        string
	secret     string
	secretFile string
	signedURL  string
	// calls of the signed service (well and badly signed), the namespace
	// default and the plain service.
	signedCalls, badSignatures, strayCalls, plainCalls atomic.Int64
}

func newSecretRig(t *testing.T) *secretRig {
	rig := &secretRig{ctx: t.Context(), pool: pgtest.Pool(t), secret: webhook.NewSecret(), dir: t.TempDir()}
	rig.client = runner.NewClient(rig.pool, runner.ClientConfig{})
	register(t, rig.client, "name: signed\nnamespace_name: sec\nversion: 1\nsteps:\n  - name: work\n    handler: {callable: signed.work}\n    retry: {max_attempts: 3}\n")
	register(t, rig.client, "name: plain\nnamespace_name: sec\nversion: 1\nsteps:\n  - name: work\n    handler: {callable: plain.work}\n")
	verifier, err := webhook.NewVerifier(rig.secret)
	if err != nil {
		t.Fatal(err)
	}
	signedSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := verifier.Verify(r.Header, body); err != nil {
			rig.badSignatures.Add(1)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		rig.signedCalls.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(signedSrv.Close)
	rig.signedURL = signedSrv.URL
	counting := func(n *atomic.Int64) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			n.Add(1)
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	plainURL, strayURL := counting(&rig.plainCalls), counting(&rig.strayCalls)
	rig.secretFile = filepath.Join(rig.dir, "signed-hook") // not there yet
	now := time.Now()
	for _, row := range []store.HandlerEndpoint{
		{Pattern: "signed.*", URL: rig.signedURL, Protocol: "http", SecretRef: "file:" + rig.secretFile},
		{Pattern: "plain.*", URL: plainURL, Protocol: "http"},
		{Pattern: "*", URL: strayURL, Protocol: "http"},
	} {
		if _, err := store.PutEndpoint(rig.ctx, rig.pool, row, now); err != nil {
			t.Fatal(err)
		}
	}
	return rig
}

// start starts the runner: signed.* is unusable, plain.* is not.
func (rig *secretRig) start(t *testing.T) {
	rig.logs = &lockedBuffer{}
	rig.reg = callout.NewRegistry(callout.RegistryConfig{})
	t.Cleanup(rig.reg.Close)
	const recheck = 100 * time.Millisecond
	eps := &runner.Endpoints{Registry: rig.reg, DB: rig.pool, SecretDirs: []string{rig.dir}, RecheckInterval: recheck,
		Logger: slog.New(slog.NewTextHandler(rig.logs, nil))}
	rig.r = startRunner(t, rig.pool, runner.Config{Handlers: rig.reg, Endpoints: eps, PollInterval: 50 * time.Millisecond})

	reason, ok := endpointError(rig.reg, "signed.*")
	if !ok || !strings.Contains(reason, "cannot be resolved") {
		t.Fatalf("signed.* after start: error %q (registered %v), want the secret_ref failure", reason, ok)
	}
	if e, _ := endpointError(rig.reg, "plain.*"); e != "" {
		t.Fatalf("plain.* is unusable too: %s", e)
	}
}

func (rig *secretRig) submit(t *testing.T, name string) uuid.UUID {
	t.Helper()
	task, err := rig.client.Submit(rig.ctx, runner.SubmitRequest{Namespace: "sec", Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return task.TaskUUID
}

// submitWhileUnusable submits a task of each endpoint: the plain one
// completes, the signed one waits (logged once, at error level) and is
// returned.
func (rig *secretRig) submitWhileUnusable(t *testing.T) uuid.UUID {
	signed, plain := rig.submit(t, "signed"), rig.submit(t, "plain")
	waitFor(t, 10*time.Second, "the task of the usable endpoint", func() bool { return taskState(t, rig.pool, plain) == "complete" })
	// The signed step is given back again and again (every recheck
	// interval), never called, never failed, never charged an attempt.
	released := rig.r.Stats().Released
	waitFor(t, 10*time.Second, "the waiting step to be given back three more times", func() bool { return rig.r.Stats().Released >= released+3 })
	if s := onlyStep(t, rig.pool, signed); (s.state != "enqueued" && s.state != "in_progress") || s.attempts > 1 || s.lastError != nil {
		t.Fatalf("the step of the unusable endpoint: %+v, want it waiting in the queue with no attempt used and no error", s)
	}
	if n := rig.signedCalls.Load() + rig.badSignatures.Load() + rig.strayCalls.Load(); n != 0 {
		t.Fatalf("the unusable endpoint's step was called %d times (signed service %d, unsigned %d, namespace default %d)",
			n, rig.signedCalls.Load(), rig.badSignatures.Load(), rig.strayCalls.Load())
	}
	if n := strings.Count(rig.logs.String(), "handler endpoint unusable"); n != 1 {
		t.Errorf("the unusable endpoint was logged %d times over several rechecks, want once:\n%s", n, rig.logs)
	}
	if l := rig.logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "signed-hook") {
		t.Errorf("the log does not say why (at error level):\n%s", l)
	}
	return signed
}

// secretAppears mounts the secret file late: the runner notices by
// itself and the waiting task completes with one attempt.
func (rig *secretRig) secretAppears(t *testing.T, signed uuid.UUID) {
	if err := os.WriteFile(rig.secretFile, []byte(rig.secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the waiting task to complete once its secret resolves", func() bool { return taskState(t, rig.pool, signed) == "complete" })
	if s := onlyStep(t, rig.pool, signed); s.attempts != 1 {
		t.Errorf("the step used %d attempts, want 1: waiting used none", s.attempts)
	}
	if e, _ := endpointError(rig.reg, "signed.*"); e != "" {
		t.Errorf("signed.* still unusable: %s", e)
	}
	if rig.signedCalls.Load() != 1 || rig.badSignatures.Load() != 0 || rig.strayCalls.Load() != 0 {
		t.Errorf("calls: signed %d, badly signed %d, namespace default %d; want 1, 0, 0", rig.signedCalls.Load(), rig.badSignatures.Load(), rig.strayCalls.Load())
	}
	if !strings.Contains(rig.logs.String(), "handler endpoint usable again") {
		t.Errorf("the recovery is not logged:\n%s", rig.logs)
	}
}

// reput registers signed.* again (as another runner could) with a
// variable this one lacks: unusable again at once (NOTIFY); registered
// with the file again: usable, and the step submitted meanwhile completes.
func (rig *secretRig) reput(t *testing.T) {
	put := func(ref string) {
		t.Helper()
		if _, err := store.PutEndpoint(rig.ctx, rig.pool, store.HandlerEndpoint{Pattern: "signed.*", URL: rig.signedURL, Protocol: "http", SecretRef: ref}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	put("env:TASKER_TEST_NOT_SET_ANYWHERE")
	waitFor(t, 10*time.Second, "signed.* to be unusable again", func() bool {
		e, _ := endpointError(rig.reg, "signed.*")
		return strings.Contains(e, "TASKER_TEST_NOT_SET_ANYWHERE")
	})
	again := rig.submit(t, "signed")
	released := rig.r.Stats().Released
	waitFor(t, 10*time.Second, "the new step to be given back", func() bool { return rig.r.Stats().Released > released })
	put("file:" + rig.secretFile)
	waitFor(t, 10*time.Second, "the task to complete after the endpoint was put again", func() bool { return taskState(t, rig.pool, again) == "complete" })
	if s := onlyStep(t, rig.pool, again); s.attempts != 1 || rig.strayCalls.Load() != 0 || rig.badSignatures.Load() != 0 {
		t.Errorf("after the re-put: %+v, namespace default called %d times, badly signed %d", s, rig.strayCalls.Load(), rig.badSignatures.Load())
	}
}
