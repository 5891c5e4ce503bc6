package openapi_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/structpb"

	adminv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/admin/v1"
	"github.com/tasker-runner/tasker-runner/contracts/gen/tasker/admin/v1/adminv1connect"
	"github.com/tasker-runner/tasker-runner/openapi"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"

	"github.com/tasker-runner/tasker-runner/runner"
)

const outageTemplate = `
name: outage
namespace_name: ops
version: 1.0.0
steps:
  - name: only
    handler: {callable: ops.only}
`

// TestDatabaseOutageAnswers503 cuts the database away from a running API
// (open connections reset, new ones refused): every operation that needs
// it answers 503 problem JSON with Retry-After, not 500, and the Connect
// mirror answers Unavailable. Once the database is back, a resubmission
// under the same idempotency key returns the task created before.
func TestDatabaseOutageAnswers503(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e, proxy, mirror := newOutageEnv(t)
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": outageTemplate}, http.StatusCreated, nil)
	submit := map[string]any{"namespace": "ops", "name": "outage", "idempotency_key": "before-the-outage"}
	var before apiTask
	e.do(http.MethodPost, "/v1/tasks", submit, http.StatusCreated, &before)

	proxy.Cut()

	unavailable := func(method, path string, body any) {
		t.Helper()
		checkUnavailable(t, e, method, path, body)
	}
	unavailable(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "ops", "name": "outage", "idempotency_key": "during-the-outage"})
	unavailable(http.MethodPost, "/v1/tasks", submit)
	unavailable(http.MethodGet, "/v1/tasks/"+before.TaskUUID, nil)
	unavailable(http.MethodGet, "/v1/tasks", nil)
	unavailable(http.MethodPost, "/v1/tasks/"+before.TaskUUID+"/cancel", nil)
	unavailable(http.MethodGet, "/v1/templates", nil)
	unavailable(http.MethodGet, "/v1/status", nil)
	// Readiness reports the failed check as it always has.
	if code, _, b := e.call(http.MethodGet, "/health/ready", nil); code != http.StatusServiceUnavailable {
		t.Errorf("/health/ready during the outage = %d: %s", code, b)
	}

	// The mirror: Unavailable, saying when to retry.
	c, _ := structpb.NewStruct(map[string]any{})
	_, err := mirror.SubmitTask(ctx, connect.NewRequest(&adminv1.SubmitTaskRequest{Namespace: "ops", Name: "outage", Context: c}))
	checkConnectUnavailable(t, "SubmitTask", err)
	_, err = mirror.GetTask(ctx, connect.NewRequest(&adminv1.GetTaskRequest{TaskUuid: before.TaskUUID}))
	checkConnectUnavailable(t, "GetTask", err)
	_, err = mirror.ListTasks(ctx, connect.NewRequest(&adminv1.ListTasksRequest{}))
	checkConnectUnavailable(t, "ListTasks", err)

	// Back: the resubmission finds the task created before the outage.
	proxy.Restore()
	var again apiTask
	e.do(http.MethodPost, "/v1/tasks", submit, http.StatusOK, &again)
	if again.TaskUUID != before.TaskUUID {
		t.Errorf("resubmitted under the same key: task %s, want %s", again.TaskUUID, before.TaskUUID)
	}
	var page apiPage[apiTask]
	e.do(http.MethodGet, "/v1/tasks", nil, http.StatusOK, &page)
	if len(page.Items) != 1 {
		t.Errorf("tasks after the outage: %d, want 1 (nothing was created during it)", len(page.Items))
	}
	if _, err := uuid.Parse(again.TaskUUID); err != nil {
		t.Error(err)
	}
}

// newOutageEnv serves the API and its Connect mirror on a pool that goes
// through a proxy the test can cut.
func newOutageEnv(t *testing.T) (*apiEnv, *pgtest.Proxy, adminv1connect.AdminServiceClient) {
	t.Helper()
	ctx := t.Context()
	proxy := pgtest.NewProxy(t, pgtest.URL(t))
	pc, err := pgxpool.ParseConfig(proxy.URL())
	if err != nil {
		t.Fatal(err)
	}
	pc.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := openapi.Config{
		Version: "test", Client: runner.NewClient(pool, runner.ClientConfig{}), Logger: log,
		Checks: []openapi.Check{{Name: "database", Run: pool.Ping}},
	}
	srv := httptest.NewServer(openapi.New(cfg).Handler())
	t.Cleanup(srv.Close)
	e := &apiEnv{t: t, pool: pool, srv: srv}

	// The Connect mirror on the same pool.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	msrv := &http.Server{Handler: openapi.NewMirror(cfg, nil).Handler(), ReadHeaderTimeout: time.Minute}
	served := make(chan struct{})
	go func() { defer close(served); _ = msrv.Serve(ln) }()
	t.Cleanup(func() { _ = msrv.Close(); <-served })
	mirror := adminv1connect.NewAdminServiceClient(http.DefaultClient, "http://"+ln.Addr().String())
	return e, proxy, mirror
}

// checkUnavailable asserts the 503 problem of a request during an outage.
func checkUnavailable(t *testing.T, e *apiEnv, method, path string, body any) {
	t.Helper()
	code, h, b := e.call(method, path, body)
	if code != http.StatusServiceUnavailable {
		t.Errorf("%s %s during the outage = %d, want 503: %s", method, path, code, b)
		return
	}
	if ct := h.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s %s: Content-Type %q, want application/problem+json", method, path, ct)
	}
	if secs, err := strconv.Atoi(h.Get("Retry-After")); err != nil || secs < 1 || secs > 5 {
		t.Errorf("%s %s: Retry-After %q, want 1 to 5 seconds", method, path, h.Get("Retry-After"))
	}
	var p problemDoc
	if err := json.Unmarshal(b, &p); err != nil || p.Status != http.StatusServiceUnavailable || p.Title != "Service Unavailable" ||
		p.Detail != "the database is unavailable; retry later" {
		t.Errorf("%s %s: problem %s (%v)", method, path, b, err)
	}
}

func checkConnectUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeUnavailable {
		t.Errorf("%s during the outage: %v, want Unavailable", what, err)
		return
	}
	if ra := ce.Meta().Get("Retry-After"); ra == "" {
		t.Errorf("%s: no Retry-After metadata", what)
	}
	var delay time.Duration
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if ri, ok := v.(*errdetails.RetryInfo); ok {
				delay = ri.GetRetryDelay().AsDuration()
			}
		}
	}
	if delay < time.Second || delay > 5*time.Second {
		t.Errorf("%s: RetryInfo delay %s, want 1s to 5s", what, delay)
	}
}
