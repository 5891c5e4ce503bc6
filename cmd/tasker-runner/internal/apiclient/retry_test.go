package apiclient

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
	"github.com/tasker-runner/tasker-runner/openapi"
	"github.com/tasker-runner/tasker-runner/openapi/client"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

const retryTemplate = `
name: retried
namespace_name: ops
version: 1.0.0
steps:
  - name: only
    handler: {callable: ops.only}
`

// submitSeen is one submission that reached the API through a lossyProxy.
type submitSeen struct {
	key      string // its Idempotency-Key header
	status   int    // the API's answer
	taskUUID string
	lost     bool // the client got a 503 instead
}

// lossyProxy is a reverse proxy in front of the API that forwards every
// request, but loses the answers of the first submissions it sees: the
// task is created, and the client gets 503 (with Retry-After), as when a
// commit's answer is lost in an outage.
type lossyProxy struct {
	rp *httputil.ReverseProxy

	mu   sync.Mutex
	lose int
	seen []submitSeen
}

func newLossyProxy(t *testing.T, api string) (*lossyProxy, string) {
	t.Helper()
	target, err := url.Parse(api)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	p := &lossyProxy{rp: httputil.NewSingleHostReverseProxy(target)}
	p.rp.Transport = tr
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv.URL
}

// loseNext makes the proxy lose the answers of the next n submissions.
func (p *lossyProxy) loseNext(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lose, p.seen = n, nil
}

func (p *lossyProxy) submissions() []submitSeen {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]submitSeen(nil), p.seen...)
}

func (p *lossyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/tasks" {
		p.rp.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	p.rp.ServeHTTP(rec, r)
	var task struct {
		TaskUUID string `json:"task_uuid"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &task)
	p.mu.Lock()
	lost := p.lose > 0
	if lost {
		p.lose--
	}
	p.seen = append(p.seen, submitSeen{key: r.Header.Get("Idempotency-Key"), status: rec.Code, taskUUID: task.TaskUUID, lost: lost})
	p.mu.Unlock()
	if lost {
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"title":"Service Unavailable","status":503,"detail":"the database is unavailable; retry later"}`)
		return
	}
	maps.Copy(w.Header(), rec.Header())
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// TestSubmitRetryAfterLostAnswer submits through a proxy that lets the
// first submission create its task, then answers 503: the Go client (with
// WithRetry) and the CLI retry, and get the task the first attempt
// created, under the caller's idempotency key or one they generated;
// exactly one task exists for each submission.
func TestSubmitRetryAfterLostAnswer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	api := httptest.NewServer(openapi.New(openapi.Config{Version: "test", Client: runner.NewClient(pool, runner.ClientConfig{}), Logger: log}).Handler())
	t.Cleanup(api.Close)
	proxy, proxyURL := newLossyProxy(t, api.URL)

	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	var retries []client.RetryEvent
	c, err := client.New(proxyURL, "", client.WithRetry(&http.Client{Transport: tr},
		client.RetryPolicy{OnRetry: func(e client.RetryEvent) { retries = append(retries, e) }}))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := c.RegisterTemplateWithResponse(ctx, client.TemplateDocument{Template: retryTemplate})
	must(t, "registerTemplate", err, reg.HTTPResponse, reg.Body)

	checkOnce := func(what, key, gotUUID string) {
		t.Helper()
		checkSubmittedOnce(t, proxy, pool, what, key, gotUUID)
	}

	// The Go client with the caller's key.
	proxy.loseNext(1)
	res, err := c.SubmitTaskWithResponse(ctx, &client.SubmitTaskParams{IdempotencyKey: client.Ptr("caller-key")},
		client.SubmitTaskRequest{Namespace: "ops", Name: "retried"})
	must(t, "submitTask", err, res.HTTPResponse, res.Body)
	if res.JSON200 == nil {
		t.Fatalf("submitTask = %s %s, want 200 with the task created first", res.Status(), res.Body)
	}
	checkOnce("Go client, caller's key", "caller-key", res.JSON200.TaskUuid.String())
	if len(retries) != 1 || retries[0].Wait < time.Second || !strings.Contains(retries[0].Reason, "503") {
		t.Errorf("retries %+v, want one after the 503, waiting its Retry-After (1s)", retries)
	}

	// The Go client without a key: it generated one and the retry reused it.
	proxy.loseNext(1)
	res, err = c.SubmitTaskWithResponse(ctx, nil, client.SubmitTaskRequest{Namespace: "ops", Name: "retried"})
	must(t, "submitTask", err, res.HTTPResponse, res.Body)
	if res.JSON200 == nil || res.JSON200.IdempotencyKey == nil || *res.JSON200.IdempotencyKey == "" {
		t.Fatalf("submitTask without a key = %s %s, want 200 with the generated key", res.Status(), res.Body)
	}
	checkOnce("Go client, generated key", *res.JSON200.IdempotencyKey, res.JSON200.TaskUuid.String())

	// The CLI, without a key.
	proxy.loseNext(1)
	r := clitest.Run(t, map[string]string{"TASKER_API_URL": proxyURL}, "submit", "--namespace", "ops", "--name", "retried", "--json")
	var task client.Task
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &task) != nil || task.IdempotencyKey == nil {
		t.Fatalf("submit through a lossy proxy: %v", r)
	}
	if !strings.Contains(r.Stderr, "503 Service Unavailable; retrying in 1s") {
		t.Errorf("submit: stderr does not tell of the retry: %v", r)
	}
	checkOnce("CLI, generated key", *task.IdempotencyKey, task.TaskUuid.String())

	// The CLI with --idempotency-key.
	proxy.loseNext(1)
	r = clitest.Run(t, map[string]string{"TASKER_API_URL": proxyURL}, "submit", "--namespace", "ops", "--name", "retried", "--idempotency-key", "cli-key")
	seen := proxy.submissions()
	if r.Code != 0 || len(seen) != 2 || !strings.Contains(r.Stdout, "submitted task "+seen[0].taskUUID) {
		t.Fatalf("submit --idempotency-key through a lossy proxy: %v (seen %+v)", r, seen)
	}
	checkOnce("CLI, caller's key", "cli-key", seen[0].taskUUID)

	if n := countTasks(t, pool, ""); n != 4 {
		t.Errorf("%d tasks in all, want 4", n)
	}
}

// countTasks counts the tasks with idempotency key key, or all of them
// for "".
func countTasks(t *testing.T, pool *pgxpool.Pool, key string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(),
		`SELECT count(*) FROM tasker.tasks WHERE $1 = '' OR idempotency_key = $1`, key).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkSubmittedOnce checks that the proxy saw the lost submission and its
// retry under one key, and that one task holds that key.
func checkSubmittedOnce(t *testing.T, proxy *lossyProxy, pool *pgxpool.Pool, what, key, gotUUID string) {
	t.Helper()
	seen := proxy.submissions()
	if len(seen) != 2 || !seen[0].lost || seen[0].status != http.StatusCreated || seen[1].lost || seen[1].status != http.StatusOK {
		t.Fatalf("%s: submissions seen %+v, want one created (answer lost) and one retry answered 200", what, seen)
	}
	if seen[0].key != key || seen[1].key != key {
		t.Errorf("%s: keys sent %q and %q, want %q for both", what, seen[0].key, seen[1].key, key)
	}
	if gotUUID != seen[0].taskUUID || seen[1].taskUUID != seen[0].taskUUID {
		t.Errorf("%s: got task %s, created %s, retry answered %s", what, gotUUID, seen[0].taskUUID, seen[1].taskUUID)
	}
	if n := countTasks(t, pool, key); n != 1 {
		t.Errorf("%s: %d tasks with idempotency key %q, want 1", what, n, key)
	}
}
