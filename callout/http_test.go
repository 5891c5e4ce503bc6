package callout_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
)

// httpTestEnvelope is a step envelope for the HTTP invoker tests.
func httpTestEnvelope(stepUUID, callable string) *contracts.StepEnvelope {
	return &contracts.StepEnvelope{
		EventID: "evt-" + stepUUID,
		Task: contracts.TaskInfo{
			TaskUUID: "0190d5a1-7a2b-7c3d-8e4f-0123456789ab", Namespace: "default", Name: "t", Version: "1.0.0",
			Context: json.RawMessage(`{}`),
		},
		Step: contracts.StepInfo{
			StepUUID: stepUUID, Name: "s", TemplateStepName: "s", Attempts: 1, MaxAttempts: 3, Retryable: true,
			Inputs: json.RawMessage(`{}`),
		},
		StepDefinition: contracts.StepDefinition{Handler: contracts.HandlerDefinition{Callable: callable}},
	}
}

// startHTTPHandler serves h on loopback until the test ends.
func startHTTPHandler(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newHTTPInvoker(t *testing.T, cfg callout.HTTPConfig) *callout.HTTPInvoker {
	t.Helper()
	inv, err := callout.NewHTTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// waitForClient blocks a handler until its client gives up (or a minute, as
// a safety net), so that server shutdown is never stuck on it. It reads the
// body first: the server notices a closed connection only after that.
func waitForClient(r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(time.Minute):
	}
}

// Every classification case of issue 4 against a real server on loopback.
func TestHTTPInvokerClassifiesResponses(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	write := func(status int, header map[string]string, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			for k, v := range header {
				w.Header().Set(k, v)
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}
	}
	for _, tc := range []struct {
		name      string
		handler   http.HandlerFunc
		success   bool
		result    string
		errType   string
		retryable bool
		status    int
		backoff   float64 // -1: none
		fragments []string
	}{
		{name: "200 with result", handler: write(200, nil, `{"success":true,"result":{"charged":42},"metadata":{"v":"1"}}`), success: true, result: `{"charged":42}`},
		{name: "200 with failure result", handler: write(200, nil, `{"success":false,"error":{"message":"card declined","error_type":"card_declined","retryable":false}}`),
			errType: "card_declined", backoff: -1, fragments: []string{"card declined"}},
		{name: "200 empty", handler: write(200, nil, ""), success: true},
		{name: "204", handler: write(204, nil, ""), success: true},
		{name: "400", handler: write(400, nil, `{"detail":"missing field amount"}`), errType: contracts.ErrorTypeHandler, status: 400, backoff: -1,
			fragments: []string{"400 Bad Request", "missing field amount"}},
		{name: "404", handler: write(404, nil, "404 page not found\n"), errType: contracts.ErrorTypeHandler, status: 404, backoff: -1,
			fragments: []string{"404 Not Found", "page not found"}},
		{name: "408", handler: write(408, nil, ""), errType: contracts.ErrorTypeHandler, retryable: true, status: 408, backoff: -1},
		{name: "422", handler: write(422, nil, `{"success":false,"error":{"message":"amount must be positive","error_type":"validation_error"}}`),
			errType: "validation_error", status: 422, backoff: -1, fragments: []string{"amount must be positive"}},
		{name: "429 without Retry-After", handler: write(429, nil, ""), errType: contracts.ErrorTypeHandler, retryable: true, status: 429, backoff: -1},
		{name: "429 Retry-After seconds", handler: write(429, map[string]string{"Retry-After": "7"}, ""),
			errType: contracts.ErrorTypeHandler, retryable: true, status: 429, backoff: 7},
		{name: "429 Retry-After HTTP-date", handler: write(429, map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, ""),
			errType: contracts.ErrorTypeHandler, retryable: true, status: 429, backoff: 90},
		{name: "500", handler: write(500, nil, "boom"), errType: contracts.ErrorTypeHandler, retryable: true, status: 500, backoff: -1,
			fragments: []string{"500 Internal Server Error", `"boom"`}},
		{name: "503", handler: write(503, map[string]string{"Retry-After": "2"}, ""), errType: contracts.ErrorTypeHandler, retryable: true, status: 503, backoff: 2},
		{name: "oversized body", handler: write(200, nil, `{"success":true,"result":"`+strings.Repeat("a", 5000)+`"}`),
			errType: contracts.ErrorTypeInvalidResponse, backoff: -1, fragments: []string{"larger than 1024 bytes"}},
		{name: "invalid JSON", handler: write(200, nil, `{"success": tru`), errType: contracts.ErrorTypeInvalidResponse, backoff: -1,
			fragments: []string{"not a step result", "invalid JSON", `"{\"success\": tru"`}},
		{name: "JSON that is not a result", handler: write(200, nil, `{"status":"ok"}`), errType: contracts.ErrorTypeInvalidResponse, backoff: -1,
			fragments: []string{`"success" (a boolean) is missing`}},
		{name: "redirect", handler: func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/other", http.StatusFound) },
			errType: contracts.ErrorTypeHandler, status: 302, backoff: -1, fragments: []string{"redirects are not followed"}},
		{name: "connection closed without response", handler: func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}, errType: contracts.ErrorTypeHandler, retryable: true, backoff: -1, fragments: []string{"closed the connection"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startHTTPHandler(t, tc.handler)
			inv := newHTTPInvoker(t, callout.HTTPConfig{URL: srv.URL + "/run", MaxResponseBytes: 1024, Now: func() time.Time { return now }})
			res := inv.Invoke(t.Context(), httpTestEnvelope("0190d5a1-0000-7000-8000-000000000001", "c"))
			if tc.success {
				if !res.Success || res.Status != contracts.StatusCompleted || res.Error != nil || string(res.Result) != tc.result {
					t.Fatalf("got %+v", res)
				}
				return
			}
			fragments := tc.fragments
			if res.Error != nil && res.Error.ErrorType != "card_declined" { // the handler's own failure is its own words
				fragments = append(fragments, srv.URL+"/run")
			}
			wantFailure(t, tc.name, res, tc.errType, tc.retryable, tc.status, fragments...)
			got, ok := backoffOf(res)
			if tc.backoff < 0 && ok {
				t.Errorf("unexpected backoff %v", got)
			}
			if tc.backoff >= 0 && (!ok || got != tc.backoff) {
				t.Errorf("backoff %v (%v), want %v", got, ok, tc.backoff)
			}
		})
	}
}

func TestHTTPInvokerConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	inv := newHTTPInvoker(t, callout.HTTPConfig{URL: "http://" + addr + "/run"})
	res := inv.Invoke(t.Context(), httpTestEnvelope("0190d5a1-0000-7000-8000-000000000002", "c"))
	wantFailure(t, "refused", res, contracts.ErrorTypeHandler, true, 0, "connection refused", addr)
}

func TestHTTPInvokerTimeouts(t *testing.T) {
	t.Parallel()
	srv := startHTTPHandler(t, func(w http.ResponseWriter, r *http.Request) { waitForClient(r) })
	env := httpTestEnvelope("0190d5a1-0000-7000-8000-000000000003", "c")

	t.Run("step deadline", func(t *testing.T) {
		t.Parallel()
		inv := newHTTPInvoker(t, callout.HTTPConfig{URL: srv.URL})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		res := inv.Invoke(ctx, env)
		wantFailure(t, "deadline", res, contracts.ErrorTypeTimeout, true, 0, "before the step deadline", srv.URL)
	})
	t.Run("call timeout", func(t *testing.T) {
		t.Parallel()
		inv := newHTTPInvoker(t, callout.HTTPConfig{URL: srv.URL, Timeout: 100 * time.Millisecond})
		res := inv.Invoke(t.Context(), env)
		wantFailure(t, "call timeout", res, contracts.ErrorTypeTimeout, true, 0, "call timeout of 100ms")
	})
	t.Run("body never finishes", func(t *testing.T) {
		t.Parallel()
		slow := startHTTPHandler(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			_, _ = io.WriteString(w, `{"success":`)
			http.NewResponseController(w).Flush()
			waitForClient(r)
		})
		inv := newHTTPInvoker(t, callout.HTTPConfig{URL: slow.URL})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		wantFailure(t, "slow body", inv.Invoke(ctx, env), contracts.ErrorTypeTimeout, true, 0, "before the step deadline")
	})
}

var traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$`)

func TestHTTPInvokerSendsHeaders(t *testing.T) {
	t.Parallel()
	type seen struct {
		method, path, query string
		header              http.Header
		body                []byte
	}
	got := make(chan seen, 4)
	srv := startHTTPHandler(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), body}
		_, _ = io.WriteString(w, `{"success":true}`)
	})
	var signed struct {
		sync.Mutex
		id   string
		body []byte
	}
	inv := newHTTPInvoker(t, callout.HTTPConfig{
		URL:     srv.URL + "/steps/{callable}/run?region=eu",
		Headers: map[string]string{"X-Api-Key": "k-123", "authorization": "Bearer tok"},
		Sign: func(h http.Header, id string, ts time.Time, body []byte) error {
			signed.Lock()
			defer signed.Unlock()
			signed.id, signed.body = id, bytes.Clone(body)
			h.Set("Webhook-Id", id)
			return nil
		},
	})
	env := httpTestEnvelope("0190d5a1-0000-7000-8000-000000000004", "payments.charge card/v2")
	env.Step.Attempts = 3
	deadline := time.Now().Add(30 * time.Second)
	ctx, cancel := context.WithDeadline(t.Context(), deadline)
	defer cancel()

	if res := inv.Invoke(ctx, env); !res.Success {
		t.Fatalf("invoke: %+v", res.Error)
	}
	first := <-got
	if first.method != http.MethodPost || first.path != "/steps/payments.charge%20card%2Fv2/run" || first.query != "region=eu" {
		t.Errorf("request %s %s?%s", first.method, first.path, first.query)
	}
	h := first.header
	for name, want := range map[string]string{
		"Content-Type":    "application/json",
		"Accept":          "application/json",
		"User-Agent":      "tasker-runner",
		"Idempotency-Key": env.Step.StepUUID,
		"Tasker-Attempt":  "3",
		"X-Api-Key":       "k-123",
		"Authorization":   "Bearer tok",
		"Webhook-Id":      env.EventID,
	} {
		if h.Get(name) != want {
			t.Errorf("%s = %q, want %q", name, h.Get(name), want)
		}
	}
	dl, err := time.Parse(time.RFC3339, h.Get("Tasker-Deadline"))
	if err != nil {
		t.Errorf("Tasker-Deadline %q: %v", h.Get("Tasker-Deadline"), err)
	} else if d := dl.Sub(deadline); d > time.Millisecond || d < -time.Millisecond {
		t.Errorf("Tasker-Deadline %s is %s away from the context deadline", dl, d)
	}
	m := traceparentRE.FindStringSubmatch(h.Get("Traceparent"))
	if m == nil {
		t.Fatalf("traceparent %q", h.Get("Traceparent"))
	}
	if m[1] != strings.ReplaceAll(env.Task.TaskUUID, "-", "") || m[3] != "01" {
		t.Errorf("traceparent %q: want the task's uuid as trace id, sampled", m[0])
	}
	var sent contracts.StepEnvelope
	if err := json.Unmarshal(first.body, &sent); err != nil || sent.Step.StepUUID != env.Step.StepUUID || sent.StepDefinition.Handler.Callable != "payments.charge card/v2" {
		t.Errorf("body %s: %v", first.body, err)
	}
	signed.Lock()
	if signed.id != env.EventID || !bytes.Equal(signed.body, first.body) {
		t.Errorf("signed id %q body %s; sent %s", signed.id, signed.body, first.body)
	}
	signed.Unlock()

	// The next attempt: same key, new attempt, new span; no deadline, no header.
	env.Step.Attempts = 4
	env.EventID = "evt-2"
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	if res := inv.Invoke(callout.WithTraceparent(t.Context(), tp), env); !res.Success {
		t.Fatalf("invoke: %+v", res.Error)
	}
	second := <-got
	if second.header.Get("Idempotency-Key") != env.Step.StepUUID || second.header.Get("Tasker-Attempt") != "4" {
		t.Errorf("second attempt headers %v", second.header)
	}
	if v, ok := second.header["Tasker-Deadline"]; ok {
		t.Errorf("Tasker-Deadline %q sent without a deadline", v)
	}
	m2 := traceparentRE.FindStringSubmatch(second.header.Get("Traceparent"))
	if m2 == nil || m2[1] != "4bf92f3577b34da6a3ce929d0e0e4736" || m2[2] == "00f067aa0ba902b7" || m2[2] == m[2] || m2[3] != "00" {
		t.Errorf("traceparent %q with context %q", second.header.Get("Traceparent"), tp)
	}
}

func TestNewHTTPValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  callout.HTTPConfig
		frag string
	}{
		{"empty", callout.HTTPConfig{}, "handler URL is empty"},
		{"scheme", callout.HTTPConfig{URL: "ftp://h/x"}, "scheme must be http or https"},
		{"relative", callout.HTTPConfig{URL: "/run/{callable}"}, "scheme must be http or https"},
		{"no host", callout.HTTPConfig{URL: "http:///run"}, "must be absolute"},
		{"other placeholder", callout.HTTPConfig{URL: "http://h/{namespace}/{callable}"}, "only the {callable} placeholder"},
		{"placeholder in host", callout.HTTPConfig{URL: "http://{callable}.h/run"}, "may only appear in the path"},
		{"placeholder in query", callout.HTTPConfig{URL: "http://h/run?c={callable}"}, "may only appear in the path"},
		{"bad URL", callout.HTTPConfig{URL: "http://h:port/"}, "not a valid URL"},
		{"negative timeout", callout.HTTPConfig{URL: "http://h/", Timeout: -time.Second}, "must not be negative"},
		{"reserved header", callout.HTTPConfig{URL: "http://h/", Headers: map[string]string{"idempotency-key": "x"}}, `"idempotency-key" is set by the runner`},
		{"bad header name", callout.HTTPConfig{URL: "http://h/", Headers: map[string]string{"X Key": "x"}}, "not a valid HTTP header name"},
		{"bad header value", callout.HTTPConfig{URL: "http://h/", Headers: map[string]string{"X-Key": "hunter2\r\nX-Evil: 1"}}, "control characters"},
		{"secret in URL", callout.HTTPConfig{URL: "ftp://user:hunter2@h/x?token=hunter2"}, "ftp://h/x?..."},
	} {
		_, err := callout.NewHTTP(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.frag) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.frag)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error leaks a secret: %v", tc.name, err)
		}
	}
	if _, err := callout.NewHTTP(callout.HTTPConfig{URL: "https://user:pw@h.example:8443/a/{callable}/{callable}?k=v", Headers: map[string]string{"X-Key": "v"}}); err != nil {
		t.Errorf("valid config rejected: %v", err)
	}
}

// Failure messages name the endpoint but not its credentials or query.
func TestHTTPInvokerRedactsURL(t *testing.T) {
	t.Parallel()
	srv := startHTTPHandler(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	u := strings.Replace(srv.URL, "http://", "http://user:pa55@", 1) + "/run/{callable}?token=s3cret"
	inv := newHTTPInvoker(t, callout.HTTPConfig{URL: u})
	res := inv.Invoke(t.Context(), httpTestEnvelope("0190d5a1-0000-7000-8000-000000000005", "x.y"))
	wantFailure(t, "500", res, contracts.ErrorTypeHandler, true, 500, srv.URL+"/run/x.y?...")
	if strings.Contains(res.Error.Message, "pa55") || strings.Contains(res.Error.Message, "s3cret") {
		t.Errorf("message leaks a secret: %q", res.Error.Message)
	}
}

// One keep-alive connection serves sequential calls; HTTP/2 is used when a
// TLS endpoint offers it.
func TestHTTPInvokerReusesConnectionsAndSpeaksHTTP2(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	h1 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"success":true,"result":"`+r.Proto+`"}`)
	}))
	h1.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	h1.Start()
	t.Cleanup(h1.Close)
	inv := newHTTPInvoker(t, callout.HTTPConfig{URL: h1.URL})
	for i := range 10 {
		if res := inv.Invoke(t.Context(), httpTestEnvelope("0190d5a1-0000-7000-8000-000000000006", "c")); !res.Success || string(res.Result) != `"HTTP/1.1"` {
			t.Fatalf("call %d: %+v", i, res)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("10 sequential calls opened %d connections, want 1", n)
	}

	h2 := httptest.NewUnstartedServer(h1.Config.Handler)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	t.Cleanup(h2.Close)
	roots := x509.NewCertPool()
	roots.AddCert(h2.Certificate())
	tr := callout.NewTransport(callout.TransportOptions{TLSClientConfig: &tls.Config{RootCAs: roots}})
	t.Cleanup(tr.CloseIdleConnections)
	inv2 := newHTTPInvoker(t, callout.HTTPConfig{URL: h2.URL, Client: callout.NewClient(tr)})
	if res := inv2.Invoke(t.Context(), httpTestEnvelope("0190d5a1-0000-7000-8000-000000000007", "c")); !res.Success || string(res.Result) != `"HTTP/2.0"` {
		t.Fatalf("TLS call: %+v", res)
	}
}

// A signing failure is permanent and names the endpoint, not the secret.
func TestHTTPInvokerSignError(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	srv := startHTTPHandler(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	inv := newHTTPInvoker(t, callout.HTTPConfig{URL: srv.URL, Sign: func(http.Header, string, time.Time, []byte) error {
		return io.ErrShortBuffer
	}})
	res := inv.Invoke(t.Context(), httpTestEnvelope("0190d5a1-0000-7000-8000-000000000008", "c"))
	wantFailure(t, "sign", res, contracts.ErrorTypeHandler, false, 0, "cannot sign the request to "+srv.URL)
	if calls.Load() != 0 {
		t.Error("an unsigned request was sent")
	}
	if res := inv.Invoke(t.Context(), nil); res.Success || res.Error == nil {
		t.Errorf("nil envelope: %+v", res)
	}
}
