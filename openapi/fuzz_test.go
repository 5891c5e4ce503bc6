package openapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/openapi"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"

	"github.com/tasker-runner/tasker-runner/runner"
)

// FuzzAPIRequest sends fuzzed requests (method, path with query,
// Content-Type, body) to the real API handler, in process, on a private
// migrated database holding a template, a task and a handler endpoint.
// Properties: no panic, no 5xx (any: a 500 is a bug, and so is a 503 from
// a database that is up), and every error under /v1 is a problem document
// (application/problem+json) carrying its status.
//
// Each fuzzing process starts its own throwaway PostgreSQL (pgtest), so
// the first seconds of a run go to that.
func FuzzAPIRequest(f *testing.F) {
	pool := pgtest.Pool(f)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := openapi.New(openapi.Config{
		Version: "fuzz", Client: runner.NewClient(pool, runner.ClientConfig{}), MaxRequestBytes: 64 << 10, HeartbeatInterval: time.Second, Logger: log,
		LookupEnv: func(k string) (string, bool) {
			if k == "FUZZ_SECRET" {
				return "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", true
			}
			return "", false
		},
	}).Handler()

	// Something to find: a template, a task with steps, an endpoint.
	send := func(method, target, body string) []byte {
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 300 {
			f.Fatalf("setup: %s %s = %d: %s", method, target, rec.Code, rec.Body)
		}
		return rec.Body.Bytes()
	}
	send(http.MethodPost, "/v1/templates", mustJSONString(map[string]string{"template": orderTemplate}))
	var task apiTask
	if err := json.Unmarshal(send(http.MethodPost, "/v1/tasks", `{"namespace":"shop","name":"order","context":{"order_id":1}}`), &task); err != nil {
		f.Fatal(err)
	}
	send(http.MethodPut, "/v1/handlers/remote.*?namespace=shop", `{"url":"http://remote:8080/{callable}","secret_ref":"env:FUZZ_SECRET"}`)
	stepID := task.Steps[0].StepUUID

	type seed struct{ method, target, contentType, body string }
	for _, s := range []seed{
		{"GET", "/health", "", ""},
		{"GET", "/health/ready", "", ""},
		{"GET", "/health/detailed", "", ""},
		{"GET", "/v1/status", "", ""},
		{"GET", "/openapi.yaml", "", ""},
		{"GET", "/v1/templates?limit=2", "", ""},
		{"GET", "/v1/templates/shop/order?version=1.0.0", "", ""},
		{"POST", "/v1/templates", "application/json", mustJSONString(map[string]string{"template": orderTemplate})},
		{"POST", "/v1/templates/validate", "application/json", mustJSONString(map[string]string{"template": brokenTemplate})},
		{"POST", "/v1/templates", "application/yaml", taskerTemplate},
		{"POST", "/v1/templates/validate", "text/yaml; charset=utf-8", brokenTemplate},
		{"POST", "/v1/templates/validate", "application/x-yaml", "name: x\x01\n"},
		{"POST", "/v1/tasks", "application/json", `{"namespace":"shop","name":"order","context":{"order_id":2},"priority":3,"tags":["a"],"idempotency_key":"k1"}`},
		{"GET", "/v1/tasks?state=pending,complete&namespace=shop&limit=5", "", ""},
		{"GET", "/v1/tasks/" + task.TaskUUID + "?include=transitions", "", ""},
		{"POST", "/v1/tasks/" + task.TaskUUID + "/cancel", "application/json", `{"reason":"fuzz"}`},
		{"GET", "/v1/steps/" + stepID + "?include=transitions", "", ""},
		{"POST", "/v1/steps/" + stepID + "/retry", "application/json", `{}`},
		{"POST", "/v1/steps/" + stepID + "/resolve", "application/json", `{"result":{"ok":true},"reason":"by hand"}`},
		{"GET", "/v1/dead-letters?namespace=shop&limit=10", "", ""},
		{"POST", "/v1/dead-letters/redrive", "application/json", `{"step_uuids":["` + stepID + `"]}`},
		{"GET", "/v1/handlers?namespace=shop", "", ""},
		{"GET", "/v1/handlers/remote.*?namespace=shop", "", ""},
		{"PUT", "/v1/handlers/pay?namespace=shop", "application/json", `{"url":"http://pay:8080/","protocol":"http","timeout_ms":100,"batch_max":4,"headers":{"X-A":"b"},"breaker":{"consecutive_failures":3}}`},
		{"DELETE", "/v1/handlers/pay?namespace=shop", "", ""},
		// Tricky ones.
		{"POST", "/v1/tasks", "application/json", `{"namespace":"shop","name":"order","context":{"order_id":1},"priority":9223372036854775807}`},
		{"POST", "/v1/tasks", "application/json", `{"namespace":"sh\u0000op","name":"order"}`},
		{"POST", "/v1/tasks", "application/json", "{\"namespace\":\"shop\",\"name\":\"order\",\"context\":{\"order_id\":1},\"reason\":\"\xff\"}"},
		{"POST", "/v1/tasks", "application/json", `{"namespace":"shop","name":"order","context":{"order_id":1,"s":"\ud800"}}`},
		{"POST", "/v1/tasks", "text/plain", `namespace=shop`},
		{"POST", "/v1/tasks", "application/json", ``},
		{"GET", "/v1/tasks/", "", ""},
		{"GET", "/v1/tasks/%FF", "", ""},
		{"GET", "/v1/tasks?namespace=%00", "", ""},
		{"GET", "/v1/tasks?limit=99999999999999999999", "", ""},
		{"GET", "/v1/templates/" + strings.Repeat("n", 60) + "/x", "", ""},
		{"PUT", "/v1/handlers/%00?namespace=shop", "application/json", `{"url":"http://pay/"}`},
		{"PROPFIND", "/v1/tasks", "", ""},
		{"POST", "/v1/templates/validate", "application/json", `{"template":"` + strings.Repeat("[", 500) + `"}`},
	} {
		f.Add(s.method, s.target, s.contentType, []byte(s.body))
	}

	f.Fuzz(func(t *testing.T, method, target, contentType string, body []byte) {
		defer watchdog(20 * time.Second)()
		req, ok := fuzzRequest(method, target, contentType, body)
		if !ok {
			return // net/http would not hand such a request to the API
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(ctx))
		code := rec.Code
		if code >= 500 {
			t.Fatalf("%s %s (Content-Type %q, body %q) = %d: %s", method, target, contentType, excerptOf(body), code, excerptOf(rec.Body.Bytes()))
		}
		if code >= 400 && strings.HasPrefix(req.URL.Path, "/v1/") {
			checkProblemDoc(t, req, code, rec.Header(), rec.Body.Bytes())
		}
	})
}

// fuzzRequest builds the request net/http's server would hand the API
// for this method, request target and body, or reports that it would
// answer itself (or drop the connection).
func fuzzRequest(method, target, contentType string, body []byte) (*http.Request, bool) {
	if method == "" || strings.IndexFunc(method, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) }) >= 0 {
		return nil, false
	}
	if method == http.MethodConnect || !strings.HasPrefix(target, "/") {
		return nil, false
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, false
	}
	if strings.ContainsAny(contentType, "\r\n\x00") {
		return nil, false
	}
	req := &http.Request{
		Method: method, URL: u, RequestURI: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Host: "api.test", RemoteAddr: "192.0.2.1:1234",
		Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req, true
}

// checkProblem fails unless an error answer is a problem document of its
// status.
func checkProblemDoc(t *testing.T, req *http.Request, code int, h http.Header, body []byte) {
	t.Helper()
	if req.Method == http.MethodHead {
		return
	}
	if ct := h.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s %s = %d with Content-Type %q, not a problem document: %s", req.Method, req.RequestURI, code, ct, excerptOf(body))
	}
	var p struct {
		Status int    `json:"status"`
		Title  string `json:"title"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Status != code || p.Title == "" {
		t.Fatalf("%s %s = %d with a bad problem document (%v): %s", req.Method, req.RequestURI, code, err, excerptOf(body))
	}
}

func excerptOf(b []byte) string {
	const n = 300
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

func mustJSONString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// watchdog crashes the process when an input takes longer than d, so that
// the fuzzer records it as a failing input (it reports no hangs itself).
// Call the function it returns when the input is done.
func watchdog(d time.Duration) func() {
	timer := time.AfterFunc(d, func() {
		debug.SetTraceback("all")
		panic("fuzz: one input took longer than " + d.String())
	})
	return func() { timer.Stop() }
}
