package openapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/openapi"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// apiEnv is a management API served over real HTTP on a private database,
// optionally with a runner working in the same process.
type apiEnv struct {
	t      *testing.T
	pool   *pgxpool.Pool
	srv    *httptest.Server
	funcs  *callout.Funcs
	reg    *callout.Registry
	runner *runner.Runner
}

type envOptions struct {
	// runner starts a runner with in-process handlers (funcs) and the
	// database's handler endpoints.
	runner bool
	// maxRequestBytes overrides the body limit.
	maxRequestBytes int64
	env             map[string]string
	// auth, when set, serves the API as serve.go does: /metrics and the
	// API on one mux, all behind auth's middleware.
	auth *openapi.Authenticator
	// urlPolicy is the handler URL policy of the API and the runner.
	urlPolicy *callout.URLPolicy
	// client, when set, makes the runner's HTTP calls (made with urlPolicy).
	client *http.Client
}

func newAPIEnv(t *testing.T, opts envOptions) *apiEnv {
	t.Helper()
	e := &apiEnv{t: t, pool: pgtest.Pool(t), funcs: &callout.Funcs{}}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := openapi.Config{
		Version:           "test",
		Client:            runner.NewClient(e.pool, runner.ClientConfig{}),
		MaxRequestBytes:   opts.maxRequestBytes,
		HeartbeatInterval: time.Second,
		Logger:            log,
		LookupEnv: func(k string) (string, bool) {
			v, ok := opts.env[k]
			return v, ok
		},
		URLPolicy: opts.urlPolicy,
	}
	if opts.runner {
		e.reg = callout.NewRegistry(callout.RegistryConfig{Funcs: e.funcs, URLPolicy: opts.urlPolicy, Client: opts.client})
		t.Cleanup(e.reg.Close)
		r, err := runner.New(e.pool, runner.Config{
			WorkerID:          "runner-1",
			Handlers:          e.reg,
			Endpoints:         &runner.Endpoints{Registry: e.reg, DB: e.pool, LookupEnv: cfg.LookupEnv, Logger: log},
			PollInterval:      50 * time.Millisecond,
			HeartbeatInterval: time.Second,
			Logger:            log,
		})
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
				t.Errorf("stopping the runner: %v", err)
			}
			cancel()
			r.Wait()
		})
		e.runner = r
		cfg.Endpoints = e.reg.Endpoints
		cfg.RunnerStats = r.Stats
	}
	var h http.Handler = openapi.New(cfg).Handler()
	if opts.auth != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", openapi.NewMetrics(openapi.MetricsConfig{Queues: cfg.Client, Logger: log}).Handler())
		mux.Handle("/", h)
		h = opts.auth.Middleware(mux)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// call sends a request: body is sent as is when a string or []byte, else
// as JSON; headers alternate names and values.
func (e *apiEnv) call(method, path string, body any, headers ...string) (int, http.Header, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, out
}

// do calls and decodes a JSON answer into out, failing unless the status
// is want.
func (e *apiEnv) do(method, path string, body any, want int, out any, headers ...string) http.Header {
	e.t.Helper()
	code, h, b := e.call(method, path, body, headers...)
	if code != want {
		e.t.Fatalf("%s %s = %d, want %d: %s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return h
}

// problemDoc is an RFC 9457 problem document with huma's errors[].
type problemDoc struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
		Value    any    `json:"value"`
	} `json:"errors"`
}

func (p problemDoc) locations() []string {
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Location)
	}
	return out
}

func (p problemDoc) String() string {
	b, _ := json.Marshal(p)
	return string(b)
}

// problem calls and checks that the answer is a problem document of
// status want.
func (e *apiEnv) problem(method, path string, body any, want int, headers ...string) problemDoc {
	e.t.Helper()
	code, h, b := e.call(method, path, body, headers...)
	if code != want {
		e.t.Fatalf("%s %s = %d, want %d: %s", method, path, code, want, b)
	}
	if ct := h.Get("Content-Type"); ct != "application/problem+json" {
		e.t.Fatalf("%s %s: Content-Type %q, want application/problem+json (%s)", method, path, ct, b)
	}
	var p problemDoc
	if err := json.Unmarshal(b, &p); err != nil {
		e.t.Fatalf("%s %s: decoding problem %s: %v", method, path, b, err)
	}
	if p.Status != want || p.Title != http.StatusText(want) || p.Detail == "" {
		e.t.Fatalf("%s %s: problem %s lacks status, title or detail", method, path, b)
	}
	return p
}

// snapshot fingerprints everything the API may write, to prove a refused
// request wrote nothing.
func (e *apiEnv) snapshot() string {
	e.t.Helper()
	var s string
	err := e.pool.QueryRow(context.Background(), `
		SELECT concat_ws(' ',
			(SELECT count(*) FROM tasker.namespaces),
			(SELECT count(*) FROM tasker.templates),
			(SELECT count(*) FROM tasker.tasks),
			(SELECT count(*) FROM tasker.steps),
			(SELECT count(*) FROM tasker.step_history),
			(SELECT count(*) FROM tasker.task_history),
			(SELECT count(*) FROM tasker.handler_endpoints),
			(SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY task_uuid), '')) FROM tasker.tasks t),
			(SELECT md5(coalesce(string_agg(s::text, '|' ORDER BY step_uuid), '')) FROM tasker.steps s),
			(SELECT md5(coalesce(string_agg(h::text, '|' ORDER BY endpoint_id), '')) FROM tasker.handler_endpoints h))`).Scan(&s)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// unchanged fails when the database changed since before.
func (e *apiEnv) unchanged(before, what string) {
	e.t.Helper()
	if after := e.snapshot(); after != before {
		e.t.Fatalf("%s wrote to the database: %s -> %s", what, before, after)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The API's answer types, as a client sees them (decoded from JSON).
type (
	apiStep struct {
		StepUUID    string          `json:"step_uuid"`
		Name        string          `json:"name"`
		Handler     string          `json:"handler"`
		State       string          `json:"state"`
		DependsOn   []string        `json:"depends_on"`
		Attempts    int             `json:"attempts"`
		MaxAttempts int             `json:"max_attempts"`
		Yields      int             `json:"yields"`
		Results     json.RawMessage `json:"results"`
		LastError   json.RawMessage `json:"last_error"`
		Transitions []apiTransition `json:"transitions"`
	}
	apiTransition struct {
		StepUUID  string          `json:"step_uuid"`
		FromState string          `json:"from_state"`
		ToState   string          `json:"to_state"`
		WorkerID  string          `json:"worker_id"`
		Metadata  json.RawMessage `json:"metadata"`
	}
	apiTask struct {
		TaskUUID       string          `json:"task_uuid"`
		Namespace      string          `json:"namespace"`
		Name           string          `json:"name"`
		Version        string          `json:"version"`
		State          string          `json:"state"`
		IdempotencyKey string          `json:"idempotency_key"`
		StepsTotal     int             `json:"steps_total"`
		StepsDone      int             `json:"steps_done"`
		Context        json.RawMessage `json:"context"`
		Steps          []apiStep       `json:"steps"`
		Transitions    []apiTransition `json:"transitions"`
	}
	apiPage[T any] struct {
		Items      []T    `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
)

func (t apiTask) step(name string) apiStep {
	for _, s := range t.Steps {
		if s.Name == name {
			return s
		}
	}
	panic(fmt.Sprintf("task %s has no step %q", t.TaskUUID, name))
}

func (e *apiEnv) task(id string, query string) apiTask {
	e.t.Helper()
	var t apiTask
	e.do(http.MethodGet, "/v1/tasks/"+id+query, nil, http.StatusOK, &t)
	return t
}

// waitTask polls the API until the task is in state.
func (e *apiEnv) waitTask(id, state string) apiTask {
	e.t.Helper()
	var t apiTask
	waitFor(e.t, 20*time.Second, "task "+id+" to be "+state, func() bool {
		t = e.task(id, "")
		return t.State == state
	})
	return t
}

// waitEndpoint waits until the runner's registry holds the endpoint of
// pattern: a registration reaches the runner through a notification, so a
// task submitted right after it could otherwise be claimed first and fail
// with handler_not_found.
func (e *apiEnv) waitEndpoint(pattern string) {
	e.t.Helper()
	waitFor(e.t, 20*time.Second, "the runner to load endpoint "+pattern, func() bool {
		for _, ep := range e.reg.Endpoints() {
			if ep.Pattern == pattern {
				return true
			}
		}
		return false
	})
}

// result decodes a step's handler result (the "result" of its step result).
func (s apiStep) result(t *testing.T) map[string]any {
	t.Helper()
	var doc struct {
		Result map[string]any `json:"result"`
	}
	if err := json.Unmarshal(s.Results, &doc); err != nil {
		t.Fatalf("step %s results %s: %v", s.Name, s.Results, err)
	}
	return doc.Result
}

// callURL is call against another server's base URL.
func (e *apiEnv) callURL(base, method, path string, body any, headers ...string) (int, http.Header, []byte) {
	e.t.Helper()
	saved := e.srv.URL
	e.srv.URL = base
	defer func() { e.srv.URL = saved }()
	return e.call(method, path, body, headers...)
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
}
