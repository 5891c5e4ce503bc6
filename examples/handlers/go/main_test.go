package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/contracts/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// server is the command running in-process.
type server struct {
	url  string
	logs *lockedBuffer
	stop func() error // cancels run's context and returns what run returned
}

func startServer(t *testing.T, env map[string]string, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	logs := &lockedBuffer{}
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, func(k string) string { return env[k] }, logs, func(a net.Addr) { addrs <- a })
	}()
	s := &server{logs: logs}
	var once sync.Once
	var runErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() { _ = s.stop() })
	select {
	case a := <-addrs:
		s.url = "http://" + a.String()
	case err := <-done:
		t.Fatalf("run returned before listening: %v\n%s", err, logs)
	case <-time.After(10 * time.Second):
		t.Fatal("not listening after 10s")
	}
	return s
}

// noKeepAlive leaves no idle connection behind for goleak.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

func call(t *testing.T, url string, body []byte, h http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := noKeepAlive.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

const chargeEnvelope = `{"event_id":"e1","task":{"task_uuid":"t1","namespace":"order_fulfillment","name":"order_fulfillment","version":"1.0.0",
"context":{"order":{"total":42.5}},"correlation_id":"c1","priority":0,"tags":[]},
"step":{"step_uuid":"s1","name":"charge","template_step_name":"charge","attempts":1,"max_attempts":3,"retryable":true,"inputs":{}},
"step_definition":{"handler":{"callable":"order_fulfillment.charge"},"dependencies":["validate_order"]},
"dependency_results":{"validate_order":{"success":true,"status":"completed","result":{"valid":true}}}}`

func TestServesAndStopsGracefully(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil, "--addr", "127.0.0.1:0")
	code, body := call(t, s.url+"/order_fulfillment.charge", []byte(chargeEnvelope), nil)
	var res contracts.StepResult
	if err := json.Unmarshal(body, &res); err != nil || code != 200 || !res.Success || !strings.Contains(string(res.Result), `"amount":42.5`) {
		t.Fatalf("charge answered %d %s (%v)", code, body, err)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if logs := s.logs.String(); !strings.Contains(logs, "listening") || !strings.Contains(logs, "shutting down") || !strings.Contains(logs, "step completed") {
		t.Errorf("logs:\n%s", logs)
	}
}

func TestSignedWithSecretFromEnvironment(t *testing.T) {
	t.Parallel()
	secret := webhook.NewSecret()
	s := startServer(t, map[string]string{"TASKER_WEBHOOK_SECRET": secret}, "--addr=127.0.0.1:0")
	if code, body := call(t, s.url, []byte(chargeEnvelope), nil); code != http.StatusUnauthorized {
		t.Errorf("unsigned: %d %s, want 401", code, body)
	}
	signer, err := webhook.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	signer.SetHeaders(h, "e1", time.Now(), []byte(chargeEnvelope))
	if code, body := call(t, s.url, []byte(chargeEnvelope), h); code != 200 {
		t.Errorf("signed: %d %s, want 200", code, body)
	}
	if code, _ := call(t, s.url, []byte(strings.Replace(chargeEnvelope, "42.5", "4200", 1)), h); code != http.StatusUnauthorized {
		t.Errorf("tampered: %d, want 401", code)
	}
}

func TestPortFromEnvironment(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	_ = ln.Close()
	s := startServer(t, map[string]string{"PORT": port})
	if !strings.HasSuffix(s.url, ":"+port) {
		t.Errorf("listening at %s, want port %s", s.url, port)
	}
}

func TestBadArguments(t *testing.T) {
	t.Parallel()
	getenv := func(k string) string {
		if k == "TASKER_WEBHOOK_SECRET" {
			return "whsec_short"
		}
		return ""
	}
	if err := run(t.Context(), []string{"--addr", "127.0.0.1:0"}, getenv, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "secret") {
		t.Errorf("bad secret: %v", err)
	}
	if err := run(t.Context(), []string{"--nope"}, func(string) string { return "" }, io.Discard, nil); err == nil {
		t.Error("unknown flag accepted")
	}
	if err := run(t.Context(), []string{"-h"}, func(string) string { return "" }, io.Discard, nil); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	if err := run(t.Context(), []string{"--addr", "256.0.0.1:1"}, func(string) string { return "" }, io.Discard, nil); err == nil {
		t.Error("bad address accepted")
	}
}
