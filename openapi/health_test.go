package openapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/tasker-runner/tasker-runner/openapi"
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
}
