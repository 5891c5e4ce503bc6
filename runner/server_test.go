package runner_test

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// newServer makes a Server and stops it when the test ends.
func newServer(t testing.TB, pool *pgxpool.Pool, cfg runner.ServerConfig) *runner.Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	cfg.PollInterval = cmp.Or(cfg.PollInterval, 50*time.Millisecond)
	srv, err := runner.NewServer(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return srv
}

// Go handlers registered by name run the steps that call them, and see
// their dependencies' results.
func TestServerHandleFunc(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	srv := newServer(t, pool, runner.ServerConfig{})
	srv.HandleFunc("echo", echoHandler)
	var calls atomic.Int64
	srv.HandleFunc("count", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		calls.Add(1)
		return contracts.StepResult{Success: true}, nil
	})
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := srv.CheckEventLoop(t.Context()); err != nil {
		t.Fatalf("CheckEventLoop while running: %v", err)
	}
	waitFor(t, 10*time.Second, "the LISTEN connection", func() bool { return srv.CheckListener(t.Context()) == nil && srv.ListenerConnected() })
	register(t, srv.Client(), sprintf(diamondTemplate, "front"))
	register(t, srv.Client(), "name: counted\nnamespace_name: front\nversion: 1\nsteps:\n  - name: c\n    handler: {callable: count}\n")
	d, err := srv.Client().Submit(t.Context(), runner.SubmitRequest{Namespace: "front", Name: "diamond"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := srv.Client().Submit(t.Context(), runner.SubmitRequest{Namespace: "front", Name: "counted"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "both tasks", func() bool {
		return taskState(t, pool, d.TaskUUID) == "complete" && taskState(t, pool, c.TaskUUID) == "complete"
	})
	if n := calls.Load(); n != 1 {
		t.Fatalf("count handler called %d times, want 1", n)
	}
	if st := srv.Stats(); st.Completed != 5 {
		t.Fatalf("Stats().Completed = %d, want 5", st.Completed)
	}
}

// A static HTTP+JSON endpoint on loopback is called, under a URL policy
// that allows loopback, and is listed with its counters.
func TestServerStaticHTTPEndpoint(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	var calls atomic.Int64
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var env contracts.StepEnvelope
		if err := json.NewDecoder(r.Body).Decode(&env); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(contracts.StepResult{Success: true, Result: json.RawMessage(`{"called":"` + env.StepDefinition.Handler.Callable + `"}`)})
	}))
	t.Cleanup(svc.Close)
	srv := newServer(t, pool, runner.ServerConfig{
		Callout:   runner.CalloutConfig{URLPolicy: &callout.URLPolicy{AllowLoopback: true}},
		Endpoints: []runner.StaticEndpoint{{Pattern: "remote.*", URL: svc.URL + "/steps/{callable}"}},
	})
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	register(t, srv.Client(), "name: r\nnamespace_name: front\nversion: 1\nsteps:\n  - name: a\n    handler: {callable: remote.a}\n")
	s, err := srv.Client().Submit(t.Context(), runner.SubmitRequest{Namespace: "front", Name: "r"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the task", func() bool { return taskState(t, pool, s.TaskUUID) == "complete" })
	eps := srv.Endpoints()
	if calls.Load() != 1 || len(eps) != 1 || eps[0].Pattern != "remote.*" || eps[0].Calls != 1 {
		t.Fatalf("%d HTTP calls; endpoints %+v", calls.Load(), eps)
	}
	if ps := srv.PoolStats(); ps.MaxConns < 1 || ps.TotalConns < 1 {
		t.Fatalf("PoolStats() = %+v", ps)
	}
	if err := srv.CheckDatabase(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// Stop without Start closes the registry and returns; the Server cannot be
// started afterwards, and a second Stop does nothing.
func TestServerStopWithoutStart(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	srv, err := runner.NewServer(pool, runner.ServerConfig{Logger: testLogger(t), Endpoints: []runner.StaticEndpoint{{Pattern: "x.*", URL: "http://127.0.0.1:1/"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(t.Context()); err != nil {
		t.Fatalf("Stop without Start: %v", err)
	}
	if err := srv.Stop(t.Context()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := srv.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("Start after Stop: %v", err)
	}
	if err := srv.CheckEventLoop(t.Context()); err == nil {
		t.Fatal("CheckEventLoop of a stopped server: nil")
	}
}

// A second Start is refused; the running Server is not disturbed.
func TestServerDoubleStart(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	srv := newServer(t, pool, runner.ServerConfig{})
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "already started") {
		t.Fatalf("second Start: %v", err)
	}
	if err := srv.CheckEventLoop(t.Context()); err != nil {
		t.Fatalf("CheckEventLoop after a refused Start: %v", err)
	}
}

// A Start whose context is already done fails and leaves nothing running.
func TestServerStartCancelled(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	srv := newServer(t, pool, runner.ServerConfig{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := srv.Start(ctx); err == nil {
		t.Fatal("Start with a cancelled context: nil")
	}
	if err := srv.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "failed to start") {
		t.Fatalf("Start after a failed Start: %v", err)
	}
}

// Stop lets a running step finish (drain) and gives back the one that
// outlives ShutdownTimeout, without writing a failure.
func TestServerStopDrainsAndGivesBack(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	var (
		mu     sync.Mutex
		states = map[string]string{}
	)
	srv := newServer(t, pool, runner.ServerConfig{
		ShutdownTimeout: 500 * time.Millisecond,
		OnEvent: func(e runner.Event) {
			mu.Lock()
			states[e.Step.Name] = string(e.State)
			mu.Unlock()
		},
	})
	var running sync.WaitGroup
	running.Add(2)
	srv.HandleFunc("drain", func(ctx context.Context, _ *contracts.StepEnvelope) (contracts.StepResult, error) {
		running.Done()
		// Finish only once Stop has begun: the drain must wait for it.
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for srv.CheckEventLoop(ctx) == nil {
			select {
			case <-ctx.Done():
				return contracts.StepResult{}, ctx.Err()
			case <-tick.C:
			}
		}
		return contracts.StepResult{Success: true}, nil
	})
	srv.HandleFunc("stuck", func(ctx context.Context, _ *contracts.StepEnvelope) (contracts.StepResult, error) {
		running.Done()
		<-ctx.Done()
		return contracts.StepResult{}, ctx.Err()
	})
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	register(t, srv.Client(), "name: two\nnamespace_name: front\nversion: 1\nsteps:\n  - name: d\n    handler: {callable: drain}\n  - name: s\n    handler: {callable: stuck}\n")
	task, err := srv.Client().Submit(t.Context(), runner.SubmitRequest{Namespace: "front", Name: "two"})
	if err != nil {
		t.Fatal(err)
	}
	running.Wait()
	if err := srv.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := map[string]string{"d": states["d"], "s": states["s"]}
	mu.Unlock()
	if got["d"] != "complete" || got["s"] != "enqueued" {
		t.Fatalf("step outcomes at stop: %v, want d complete and s enqueued (given back)", got)
	}
	var state string
	var attempts int
	if err := pool.QueryRow(t.Context(), `SELECT state, attempts FROM tasker.steps WHERE task_uuid = $1 AND name = 's'`, task.TaskUUID).Scan(&state, &attempts); err != nil {
		t.Fatal(err)
	}
	if state != "enqueued" || attempts != 0 {
		t.Fatalf("given-back step: state %s, attempts %d; want enqueued, 0", state, attempts)
	}
	if st := srv.Stats(); st.Released != 1 || st.Completed != 1 {
		t.Fatalf("Stats() = %+v, want 1 released and 1 completed", st)
	}
}

// Every configuration error names its field; nothing is built.
func TestServerConfigErrors(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	strict := &callout.URLPolicy{}
	for _, tc := range []struct {
		name string
		cfg  runner.ServerConfig
		want []string
	}{
		{"no pattern", runner.ServerConfig{Endpoints: []runner.StaticEndpoint{{URL: "http://h.example/"}}}, []string{"Endpoints[0].Pattern is required"}},
		{"no URL", runner.ServerConfig{Endpoints: []runner.StaticEndpoint{{Pattern: "a.*"}}}, []string{"Endpoints[0].URL is required"}},
		{"refused URL", runner.ServerConfig{Callout: runner.CalloutConfig{URLPolicy: strict}, Endpoints: []runner.StaticEndpoint{{Pattern: "a.*", URL: "http://127.0.0.1:9/"}}}, []string{"Endpoints[0].URL", "loopback"}},
		{"bad protocol", runner.ServerConfig{Endpoints: []runner.StaticEndpoint{{Pattern: "a", URL: "http://h.example/", Protocol: "smtp"}}}, []string{"Endpoints[0] (a)", "smtp"}},
		{"duplicate", runner.ServerConfig{Endpoints: []runner.StaticEndpoint{{Pattern: "a", URL: "http://h.example/"}, {Pattern: "a", URL: "http://i.example/"}}}, []string{"Endpoints[1]", "Endpoints[0] already"}},
		{"bad secret", runner.ServerConfig{Endpoints: []runner.StaticEndpoint{{Pattern: "a", URL: "http://h.example/", Secrets: []string{"nope"}}}}, []string{"Endpoints[0] (a)"}},
		{"negative response bytes", runner.ServerConfig{Callout: runner.CalloutConfig{MaxResponseBytes: -1}}, []string{"Callout.MaxResponseBytes"}},
		{"negative idle conns", runner.ServerConfig{Callout: runner.CalloutConfig{MaxIdleConnsPerHost: -1}}, []string{"Callout.MaxIdleConnsPerHost"}},
		{"negative breaker", runner.ServerConfig{Callout: runner.CalloutConfig{Breaker: callout.BreakerSettings{OpenTimeout: -time.Second}}}, []string{"Callout.Breaker"}},
		{"runner setting", runner.ServerConfig{MaxConcurrentSteps: -1}, []string{"MaxConcurrentSteps"}},
		{"mode", runner.ServerConfig{Mode: "sometimes"}, []string{"mode", "sometimes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := runner.NewServer(pool, tc.cfg)
			if err == nil {
				_ = srv.Stop(context.Background())
				t.Fatal("NewServer: nil error")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := runner.NewServer(nil, runner.ServerConfig{}); err == nil || !strings.Contains(err.Error(), "pool") {
		t.Errorf("NewServer(nil): %v", err)
	}
}

// HandleFunc refuses what net/http's would: an empty name, a nil function,
// a name registered twice.
func TestServerHandleFuncPanics(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	srv := newServer(t, pool, runner.ServerConfig{})
	fn := func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		return contracts.StepResult{Success: true}, nil
	}
	srv.HandleFunc("a", fn)
	for name, call := range map[string]func(){
		"empty":     func() { srv.HandleFunc("", fn) },
		"nil":       func() { srv.HandleFunc("b", nil) },
		"duplicate": func() { srv.HandleFunc("a", fn) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("HandleFunc %s: no panic", name)
				}
			}()
			call()
		}()
	}
}

// Migrations reports every embedded migration applied on a migrated
// database; RedactURL hides passwords.
func TestServerMigrations(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	applied, err := runner.Migrate(t.Context(), pool)
	if err != nil || len(applied) != 0 {
		t.Fatalf("Migrate on a migrated database: %v, %v", applied, err)
	}
	status, err := runner.Migrations(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(status) == 0 || status[0].ID() != "0001_initial" {
		t.Fatalf("Migrations: %+v", status)
	}
	for _, s := range status {
		if s.AppliedAt == nil || s.Modified {
			t.Fatalf("migration %s: applied %v, modified %v", s.ID(), s.AppliedAt, s.Modified)
		}
	}
	if got := runner.RedactURL("postgres://u:secret@h/db"); strings.Contains(got, "secret") {
		t.Fatalf("RedactURL: %s", got)
	}
	if _, err := runner.OpenPool(t.Context(), runner.PoolConfig{}); err == nil {
		t.Fatal("OpenPool without a URL: nil error")
	}
}

// A Go handler registered after Start serves the steps claimed from then on.
func TestServerHandleFuncAfterStart(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	srv := newServer(t, pool, runner.ServerConfig{})
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.HandleFunc("late", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		return contracts.StepResult{Success: true}, nil
	})
	register(t, srv.Client(), "name: late\nnamespace_name: front\nversion: 1\nsteps:\n  - name: l\n    handler: {callable: late}\n")
	s, err := srv.Client().Submit(t.Context(), runner.SubmitRequest{Namespace: "front", Name: "late"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the task", func() bool { return taskState(t, pool, s.TaskUUID) == "complete" })
}
