package openapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/openapi"
	"github.com/tasker-runner/tasker-runner/runner"
)

func TestHealth(t *testing.T) {
	t.Parallel()
	failing := errors.New("connection refused")
	var dbErr atomic.Pointer[error]
	srv := httptest.NewServer(openapi.New(openapi.Config{
		Version: "1.2.3",
		Checks: []openapi.Check{{Name: "database", Run: func(context.Context) error {
			if e := dbErr.Load(); e != nil {
				return *e
			}
			return nil
		}}},
	}).Handler())
	t.Cleanup(srv.Close)

	get := func(path string) (int, openapi.HealthBody) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body openapi.HealthBody
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("GET %s: decoding: %v", path, err)
		}
		return resp.StatusCode, body
	}

	for _, path := range []string{"/health", "/health/ready"} {
		code, body := get(path)
		if code != http.StatusOK || body.Status != openapi.StatusHealthy || body.Version != "1.2.3" {
			t.Fatalf("GET %s = %d %+v, want 200 healthy", path, code, body)
		}
		if c := body.Checks["database"]; c.Status != openapi.StatusHealthy || c.DurationMs < 0 {
			t.Fatalf("GET %s database check = %+v", path, c)
		}
	}

	dbErr.Store(&failing)
	code, body := get("/health/ready")
	if code != http.StatusServiceUnavailable || body.Status != openapi.StatusUnhealthy {
		t.Fatalf("GET /health/ready with failing db = %d %+v, want 503 unhealthy", code, body)
	}
	if c := body.Checks["database"]; c.Status != openapi.StatusUnhealthy || c.Message != "connection refused" {
		t.Fatalf("database check = %+v, want unhealthy with message", c)
	}

	// Liveness does not depend on the checks.
	code, body = get("/health/live")
	if code != http.StatusOK || body.Status != openapi.StatusHealthy {
		t.Fatalf("GET /health/live = %d %+v, want 200", code, body)
	}

	// The 4xx the document lists on the health operations: an unknown query
	// parameter answers 422 problem details.
	for _, path := range []string{"/health", "/health/live", "/health/ready", "/health/detailed"} {
		resp, err := http.Get(srv.URL + path + "?verbose=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnprocessableEntity || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s?verbose=1 = %d %s, want 422 application/problem+json", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

func TestHealthDetailed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(openapi.New(openapi.Config{
		Checks: []openapi.Check{{Name: "database", Run: func(context.Context) error { return nil }}},
		PoolStats: func() openapi.PoolStats {
			return openapi.PoolStats{MaxConns: 20, TotalConns: 3, AcquiredConns: 1, IdleConns: 2}
		},
		Endpoints: func() []callout.EndpointStatus {
			return []callout.EndpointStatus{{Pattern: "payments.*", Protocol: "http", BreakerState: "open", ConsecutiveFailures: 5}}
		},
		RunnerStats: func() runner.Stats { return runner.Stats{Capacity: 500, Active: 7, InFlight: 9} },
	}).Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/health/detailed")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body openapi.DetailedHealthBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || body.Status != openapi.StatusHealthy || len(body.Breakers) != 1 ||
		body.Breakers[0].State != "open" || body.Pool == nil || body.Pool.AcquiredConns != 1 ||
		body.Semaphore == nil || body.Semaphore.Capacity != 500 || body.Semaphore.InFlight != 9 {
		t.Fatalf("GET /health/detailed = %d %+v", resp.StatusCode, body)
	}
}
