package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The service migrates an empty database, serves the management API, runs
// a task submitted through it to completion (two Go steps, one HTTP step)
// and stops cleanly when its context ends, as on SIGTERM.
func TestRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, pgtest.EmptyURL(t), ln) }()
	base := "http://" + ln.Addr().String()

	// The template is registered at start: submit until it is there.
	var task struct {
		TaskUUID string `json:"task_uuid"`
		State    string `json:"state"`
		Steps    []struct {
			Name    string          `json:"name"`
			Results json.RawMessage `json:"results"`
		} `json:"steps"`
	}
	waitFor(t, "the task to be accepted", func() bool {
		body := `{"namespace": "shop", "name": "order", "context": {"order_id": "o-7", "amount_cents": 1999}, "idempotency_key": "o-7"}`
		return call(t, http.MethodPost, base+"/v1/tasks", body, &task) == http.StatusCreated
	})
	waitFor(t, "the task to complete", func() bool {
		call(t, http.MethodGet, base+"/v1/tasks/"+task.TaskUUID, "", &task)
		return task.State == "complete"
	})
	for _, s := range task.Steps {
		if s.Name == "confirm" && !strings.Contains(string(s.Results), "receipt r-o-7") {
			t.Errorf("the HTTP step's result: %s", s.Results)
		}
	}
	var status map[string]any
	if code := call(t, http.MethodGet, base+"/v1/status", "", &status); code != http.StatusOK || !strings.Contains(sprint(status), "mail.*") {
		t.Errorf("GET /v1/status: %d %v", code, status)
	}

	apiClient.CloseIdleConnections()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("run did not stop")
	}
}

var apiClient = &http.Client{Timeout: 10 * time.Second}

// call sends a request and decodes a JSON answer into out; it returns the
// status code (0 when the service is not answering yet).
func call(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := apiClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode < 300 {
		if err := json.NewDecoder(bytes.NewReader(b)).Decode(out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	}
	return resp.StatusCode
}

func sprint(v any) string { b, _ := json.Marshal(v); return string(b) }

// waitFor polls cond until it holds, failing the test after 30 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
