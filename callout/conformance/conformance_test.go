package conformance_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tasker-runner/tasker-runner/callout/conformance"
	"github.com/tasker-runner/tasker-runner/contracts"
	handlerv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/handler/v1"
	"github.com/tasker-runner/tasker-runner/contracts/gen/tasker/handler/v1/handlerv1connect"
	"github.com/tasker-runner/tasker-runner/contracts/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// seen is one request a test handler received.
type seen struct {
	header http.Header
	body   []byte
	env    contracts.StepEnvelope
}

// echoHandler is a correct handler: it answers every envelope with success,
// and batches with one result per step. With verifier set it checks
// signatures with contracts/webhook. It records what it received.
type echoHandler struct {
	verifier *webhook.Verifier
	mu       sync.Mutex
	requests []seen
}

func (h *echoHandler) handler() http.Handler {
	var next http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req struct {
			contracts.StepEnvelope
			Steps []contracts.StepEnvelope `json:"steps"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			writeJSON(w, http.StatusBadRequest, contracts.Failure("bad_request", err.Error(), false))
			return
		}
		h.mu.Lock()
		h.requests = append(h.requests, seen{header: r.Header.Clone(), body: body, env: req.StepEnvelope})
		h.mu.Unlock()
		if deadlinePassed(r) && req.Steps == nil {
			res := contracts.Failure("deadline_exceeded", "Tasker-Deadline passed", true)
			res.StepUUID = req.Step.StepUUID
			writeJSON(w, 200, res)
			return
		}
		if req.Steps != nil {
			out := map[string][]contracts.StepResult{"results": {}}
			for _, e := range slices.Backward(req.Steps) { // any order will do
				out["results"] = append(out["results"], contracts.StepResult{StepUUID: e.Step.StepUUID, Success: true, Status: "completed"})
			}
			writeJSON(w, 200, out)
			return
		}
		writeJSON(w, 200, contracts.StepResult{StepUUID: req.Step.StepUUID, Success: true, Status: "completed",
			Result: json.RawMessage(`{"echo": true}`)})
	})
	if h.verifier != nil {
		next = webhook.Middleware(h.verifier, next)
	}
	return next
}

// deadlinePassed reports whether the request's Tasker-Deadline has passed.
func deadlinePassed(r *http.Request) bool {
	dl, err := time.Parse(time.RFC3339Nano, r.Header.Get("Tasker-Deadline"))
	return err == nil && !time.Now().Before(dl)
}

// byStep returns the requests whose envelope is for the named step.
func (h *echoHandler) byStep(name string) []seen {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []seen
	for _, s := range h.requests {
		if s.env.Step.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func run(t *testing.T, cfg conformance.Config) *conformance.Report {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	rep, err := conformance.Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

func describe(rep *conformance.Report) string {
	var b strings.Builder
	for _, c := range rep.Cases {
		b.WriteString(string(c.Status) + " " + c.Name + ": " + c.Reason + "\n")
	}
	return b.String()
}

func caseResult(t *testing.T, rep *conformance.Report, name string) conformance.CaseResult {
	t.Helper()
	for _, c := range rep.Cases {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no case %s in\n%s", name, describe(rep))
	return conformance.CaseResult{}
}

// wantStatuses checks every case's status: those named in want, the others
// def.
func wantStatuses(t *testing.T, rep *conformance.Report, def conformance.Status, want map[string]conformance.Status) {
	t.Helper()
	if len(rep.Cases) != len(conformance.Cases()) {
		t.Errorf("%d cases reported, want %d", len(rep.Cases), len(conformance.Cases()))
	}
	for _, c := range rep.Cases {
		w, ok := want[c.Name]
		if !ok {
			w = def
		}
		if c.Status != w {
			t.Errorf("%s: %s (%s), want %s", c.Name, c.Status, c.Reason, w)
		}
		if c.Reason == "" || c.Description == "" {
			t.Errorf("%s: no reason or description", c.Name)
		}
	}
	passed, failed, skipped := 0, 0, 0
	for _, c := range rep.Cases {
		switch c.Status {
		case conformance.Pass:
			passed++
		case conformance.Fail:
			failed++
		case conformance.Skip:
			skipped++
		}
	}
	if rep.Passed != passed || rep.Failed != failed || rep.Skipped != skipped || rep.OK() != (failed == 0) {
		t.Errorf("counts %d/%d/%d OK %v, want %d/%d/%d", rep.Passed, rep.Failed, rep.Skipped, rep.OK(), passed, failed, skipped)
	}
	if t.Failed() {
		t.Logf("report:\n%s", describe(rep))
	}
}

// notAsked are the cases that skip unless configured: the signature cases
// (Config.Secret) and the dynamic ones (Config.Decision, Batchable,
// Yielding).
var notAsked = map[string]conformance.Status{
	"signature-rotation": conformance.Skip, "unsigned-rejected": conformance.Skip,
	"tampered-body-rejected": conformance.Skip, "stale-timestamp-rejected": conformance.Skip,
	"decision-outcome": conformance.Skip, "batch-outcome": conformance.Skip, "yields": conformance.Skip,
}

// dynamicSkips are the dynamic cases, skipped unless configured.
var dynamicSkips = map[string]conformance.Status{
	"decision-outcome": conformance.Skip, "batch-outcome": conformance.Skip, "yields": conformance.Skip,
}

func with(m map[string]conformance.Status, kv ...any) map[string]conformance.Status {
	out := maps(m)
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1].(conformance.Status)
	}
	return out
}

func maps(m map[string]conformance.Status) map[string]conformance.Status {
	out := make(map[string]conformance.Status, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestCorrectHandlerPasses(t *testing.T) {
	t.Parallel()
	h := &echoHandler{}
	url := serve(t, h.handler())
	var streamed []string
	rep := run(t, conformance.Config{URL: url + "/steps/{callable}", Batch: true, OnCase: func(c conformance.CaseResult) {
		streamed = append(streamed, c.Name)
	}})
	wantStatuses(t, rep, conformance.Pass, notAsked)
	var names []string
	for _, c := range conformance.Cases() {
		names = append(names, c.Name)
	}
	if !slices.Equal(streamed, names) {
		t.Errorf("OnCase saw %v, want %v", streamed, names)
	}
	if rep.Callable != conformance.DefaultCallable || rep.Protocol != "http" || rep.Signed || !rep.Batch || rep.URL != url+"/steps/{callable}" {
		t.Errorf("report header %+v", rep)
	}

	// The requests are the runner's.
	reqs := h.byStep("minimal_envelope")
	if len(reqs) != 3 {
		t.Fatalf("minimal_envelope step received %d times, want 3 (first attempt, retry, redelivery of the first)", len(reqs))
	}
	a1, a2, again := reqs[0], reqs[1], reqs[2]
	if again.env.Step.StepUUID != a1.env.Step.StepUUID || again.env.Step.Attempts != 1 || again.env.EventID == a1.env.EventID ||
		again.header.Get("Idempotency-Key") != a1.env.Step.StepUUID {
		t.Errorf("redelivery: want the first attempt again with a new event_id: %+v / %+v", a1.env, again.env)
	}
	if a1.env.Step.StepUUID != a2.env.Step.StepUUID || a1.env.EventID == a2.env.EventID ||
		a1.header.Get("Idempotency-Key") != a1.env.Step.StepUUID || a2.header.Get("Idempotency-Key") != a1.env.Step.StepUUID {
		t.Errorf("retry: want the same step_uuid and Idempotency-Key with a new event_id: %+v / %+v", a1.env.Step, a2.env.Step)
	}
	if a1.header.Get("Tasker-Attempt") != "1" || a2.header.Get("Tasker-Attempt") != "2" || a2.env.Step.Attempts != 2 {
		t.Errorf("attempt headers %q, %q", a1.header.Get("Tasker-Attempt"), a2.header.Get("Tasker-Attempt"))
	}
	dl, err := time.Parse(time.RFC3339Nano, a1.header.Get("Tasker-Deadline"))
	if err != nil || time.Until(dl) > 5*time.Second || a1.header.Get("Traceparent") == "" || a1.header.Get("User-Agent") != "tasker-runner" {
		t.Errorf("runner headers missing: %v", a1.header)
	}
	if a1.env.StepDefinition.Handler.Callable != conformance.DefaultCallable || string(a1.env.Task.Context) != `{"conformance":true}` {
		t.Errorf("envelope %+v", a1.env)
	}
	for _, r := range h.byStep("unknown_fields") {
		if n := bytes.Count(r.body, []byte(`"x_conformance_unknown"`)); n != 8 {
			t.Errorf("unknown-fields: %d unknown fields in %s, want 8", n, r.body)
		}
	}
	if r := h.byStep("large_context"); len(r) != 1 || len(r[0].body) < conformance.LargeContextBytes {
		t.Errorf("large-context: %d requests", len(r))
	}
	var full []seen = h.byStep("process_batch_001")
	if len(full) != 1 || full[0].env.Task.ParentCorrelationID == "" || full[0].env.Step.Checkpoint == nil ||
		full[0].env.StepDefinition.Handler.Initialization == nil || full[0].env.StepDefinition.TimeoutSeconds != 5 {
		t.Errorf("full-envelope: %+v", full)
	}
	h.mu.Lock()
	batches := 0
	for _, r := range h.requests {
		if r.header.Get("Tasker-Batch-Size") == "3" {
			batches++
		}
	}
	h.mu.Unlock()
	if batches != 1 {
		t.Errorf("%d batched calls of 3 steps, want 1", batches)
	}
	h.mu.Lock()
	lone := 0
	for _, r := range h.requests {
		if r.header.Get("Tasker-Batch-Size") == "1" && bytes.Contains(r.body, []byte(`"steps"`)) {
			lone++
		}
	}
	h.mu.Unlock()
	if lone != 1 {
		t.Errorf("%d batched calls of one step, want 1", lone)
	}
	if r := h.byStep("deadline_passed"); len(r) != 1 || !strings.HasPrefix(r[0].header.Get("Tasker-Deadline"), time.Now().UTC().Add(-time.Minute).Format("2006-01-02T15")) {
		t.Errorf("deadline-passed: %d requests, Tasker-Deadline %v", len(r), r)
	}
}

func TestSignedHandler(t *testing.T) {
	t.Parallel()
	secret := webhook.NewSecret()
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, (&echoHandler{verifier: v}).handler())

	rep := run(t, conformance.Config{URL: url, Secret: secret, Batch: true})
	wantStatuses(t, rep, conformance.Pass, dynamicSkips)
	if !rep.Signed {
		t.Error("report not marked signed")
	}
	for _, name := range []string{"unsigned-rejected", "tampered-body-rejected", "stale-timestamp-rejected"} {
		if r := caseResult(t, rep, name).Reason; !strings.Contains(r, "401 Unauthorized") {
			t.Errorf("%s: reason %q does not quote the 401", name, r)
		}
	}

	// Without the secret every call is refused: the reasons say why.
	rep = run(t, conformance.Config{URL: url})
	wantStatuses(t, rep, conformance.Fail, with(notAsked, "batch", conformance.Skip))
	r := caseResult(t, rep, "minimal-envelope").Reason
	for _, want := range []string{"POST " + url, "answered 401 Unauthorized", "webhook: missing header", "pass its secret with --secret"} {
		if !strings.Contains(r, want) {
			t.Errorf("minimal-envelope reason %q lacks %q", r, want)
		}
	}

	// With another secret the signed requests are refused too.
	rep = run(t, conformance.Config{URL: url, Secret: webhook.NewSecret()})
	if r := caseResult(t, rep, "minimal-envelope"); r.Status != conformance.Fail || !strings.Contains(r.Reason, "is it the handler's secret?") {
		t.Errorf("wrong secret: %+v", r)
	}
	if r := caseResult(t, rep, "unsigned-rejected"); r.Status != conformance.Pass {
		t.Errorf("wrong secret, unsigned: %+v", r)
	}
}

func TestHandlerIgnoringSignatures(t *testing.T) {
	t.Parallel()
	url := serve(t, (&echoHandler{}).handler())
	rep := run(t, conformance.Config{URL: url, Secret: webhook.NewSecret()})
	wantStatuses(t, rep, conformance.Pass, with(dynamicSkips,
		"batch", conformance.Skip, "unsigned-rejected", conformance.Fail,
		"tampered-body-rejected", conformance.Fail, "stale-timestamp-rejected", conformance.Fail,
	))
	r := caseResult(t, rep, "tampered-body-rejected").Reason
	for _, want := range []string{"accepted a request whose body does not match its signature", "answered 200 OK", "want 401"} {
		if !strings.Contains(r, want) {
			t.Errorf("reason %q lacks %q", r, want)
		}
	}
	if r := caseResult(t, rep, "batch").Reason; !strings.Contains(r, "--batch") {
		t.Errorf("batch skip reason %q", r)
	}
}

// TestRotationRejected: a verifier that only checks the first signature.
func TestRotationRejected(t *testing.T) {
	t.Parallel()
	secret := webhook.NewSecret()
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	inner := (&echoHandler{verifier: v}).handler()
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first, _, _ := strings.Cut(r.Header.Get("webhook-signature"), " ")
		r.Header.Set("webhook-signature", first)
		inner.ServeHTTP(w, r)
	}))
	rep := run(t, conformance.Config{URL: url, Secret: secret})
	wantStatuses(t, rep, conformance.Pass, with(dynamicSkips, "batch", conformance.Skip, "signature-rotation", conformance.Fail))
	if r := caseResult(t, rep, "signature-rotation").Reason; !strings.Contains(r, "accept a request when any signature matches") {
		t.Errorf("reason %q", r)
	}
}

// bigResult is a valid result larger than the runner reads.
var bigResult = []byte(`{"success": true, "result": "` + strings.Repeat("x", 5<<20) + `"}`)

// TestBrokenHandlers: each broken behaviour fails the cases it should, with
// a reason that says what came back and what is wanted.
func TestBrokenHandlers(t *testing.T) {
	t.Parallel()
	echo := (&echoHandler{}).handler()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		cfg     conformance.Config
		def     conformance.Status                    // every case not in want
		want    map[string]conformance.Status         // overrides
		reasons map[string][]string                   // case -> fragments of its reason
		check   func(*testing.T, *conformance.Report) // more checks
	}{
		{
			name: "200 with something else",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, `{"ok":true}`)
			},
			def: conformance.Fail, want: notAsked,
			reasons: map[string][]string{
				"minimal-envelope": {"answered 200 OK with", `{\"ok\":true}`, `"success" (a boolean) is missing`, "want 200 with"},
				"batch":            {"not a batch response", "missing property 'results'"},
			},
			cfg: conformance.Config{Batch: true},
		},
		{
			name: "500 with a plain body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "boom", http.StatusInternalServerError)
			},
			def: conformance.Fail, want: notAsked,
			reasons: map[string][]string{
				"minimal-envelope": {"answered 500 Internal Server Error with \"boom\"", "want 200 with a StepExecutionResult", `report a failed step as {"success": false`},
				"concurrent-calls": {"8 of 8 calls at once failed"},
				"large-context":    {"KiB context", "reject it cleanly with 413"},
			},
		},
		{
			name: "does not serve the callable",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 404, contracts.Failure("handler_not_found", "no such step", false))
			},
			cfg: conformance.Config{Callable: "payments.charge"},
			def: conformance.Fail, want: notAsked,
			reasons: map[string][]string{"minimal-envelope": {"404 Not Found", `callable "payments.charge"`, "--callable"}},
		},
		{
			name: "failures reported with an error status and a result body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "3")
				writeJSON(w, 503, contracts.Failure("gateway_busy", "try later", true))
			},
			def: conformance.Pass, want: notAsked,
			reasons: map[string][]string{"minimal-envelope": {"503 Service Unavailable with a failed StepExecutionResult", "gateway_busy (retryable, retry in 3s): try later"}},
		},
		{
			name: "503 with Retry-After and no body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(503)
			},
			def: conformance.Pass, want: notAsked,
			reasons: map[string][]string{"retry-attempt": {"Retry-After 1: a retryable failure"}},
		},
		{
			name: "business failures in a 200",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, contracts.Failure("card_declined", "card declined", false))
			},
			def: conformance.Pass, want: with(notAsked, "deadline-passed", conformance.Fail),
			reasons: map[string][]string{
				"full-envelope":   {"200 OK: failure card_declined (permanent): card declined"},
				"deadline-passed": {"a permanent failure", "answer a retryable failure"},
			},
		},
		{
			name: "empty 204",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(204)
			},
			def: conformance.Pass, want: with(notAsked, "deadline-passed", conformance.Fail),
			cfg: conformance.Config{Batch: true},
			reasons: map[string][]string{
				"minimal-envelope": {"204 No Content with an empty body"},
				"deadline-passed":  {"ran the step", "check Tasker-Deadline before starting a step"},
			},
		},
		{
			name: "strict decoder",
			handler: func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				d := json.NewDecoder(bytes.NewReader(body))
				d.DisallowUnknownFields()
				var env contracts.StepEnvelope
				if err := d.Decode(&env); err != nil {
					writeJSON(w, 400, contracts.Failure("bad_request", err.Error(), false))
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
				echo.ServeHTTP(w, r)
			},
			def: conformance.Pass, want: with(notAsked, "unknown-fields", conformance.Fail),
			reasons: map[string][]string{"unknown-fields": {"400 Bad Request", "x_conformance_unknown", "ignore fields you do not know"}},
		},
		{
			name: "result for another step",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, contracts.StepResult{StepUUID: "0000", Success: true})
			},
			def: conformance.Fail, want: notAsked,
			reasons: map[string][]string{"minimal-envelope": {`step_uuid is "0000", not the envelope's`}},
		},
		{
			name: "result that breaks the schema",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, `{"success": false, "error": {"error_type": "x"}, "metadata": "fast"}`)
			},
			def: conformance.Fail, want: notAsked,
			reasons: map[string][]string{"minimal-envelope": {"breaks the contract", "at /error: missing property 'message'", "at /metadata"}},
		},
		{
			name: "body limit below the large context",
			handler: func(w http.ResponseWriter, r *http.Request) {
				r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
				body, err := io.ReadAll(r.Body)
				if err != nil {
					http.Error(w, "too large", http.StatusRequestEntityTooLarge)
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
				echo.ServeHTTP(w, r)
			},
			def: conformance.Pass, want: notAsked,
			reasons: map[string][]string{"large-context": {"rejected cleanly with 413 Request Entity Too Large"}},
		},
		{
			name: "hangs up on large bodies",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.ContentLength > 64<<10 {
					panic(http.ErrAbortHandler)
				}
				echo.ServeHTTP(w, r)
			},
			def: conformance.Pass, want: with(notAsked, "large-context", conformance.Fail),
			reasons: map[string][]string{"large-context": {"a 256 KiB context: ", "http://127.0.0.1:", "accept it, or reject it cleanly with 413"}},
		},
		{
			name: "result larger than the runner reads",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write(bigResult)
			},
			def: conformance.Fail, want: notAsked,
			reasons: map[string][]string{"minimal-envelope": {"larger than 4194304 bytes", "the runner's default limit"}},
		},
		{
			name: "redirects",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
			},
			def: conformance.Fail, want: notAsked,
			reasons: map[string][]string{"minimal-envelope": {"307 Temporary Redirect", "/elsewhere", "does not follow redirects"}},
		},
		{
			name: "batch: a result missing",
			handler: func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				var req struct {
					Steps []contracts.StepEnvelope `json:"steps"`
				}
				_ = json.Unmarshal(body, &req)
				if req.Steps == nil {
					r.Body = io.NopCloser(bytes.NewReader(body))
					echo.ServeHTTP(w, r)
					return
				}
				writeJSON(w, 200, map[string]any{"results": []contracts.StepResult{{StepUUID: req.Steps[0].Step.StepUUID, Success: true}}})
			},
			cfg: conformance.Config{Batch: true},
			def: conformance.Pass, want: with(notAsked, "batch", conformance.Fail),
			reasons: map[string][]string{"batch": {"step 2 of 3", "had no result for step"}},
		},
		{
			name: "batch: answers as for one step",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, contracts.StepResult{Success: true})
			},
			cfg: conformance.Config{Batch: true},
			def: conformance.Pass, want: with(notAsked, "batch", conformance.Fail, "deadline-passed", conformance.Fail),
			reasons: map[string][]string{"batch": {"not a batch response", "missing property 'results'"}},
		},
		{
			name: "not idempotent: a new id on every delivery",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if deadlinePassed(r) {
					writeJSON(w, 200, contracts.Failure("deadline_exceeded", "late", true))
					return
				}
				writeJSON(w, 200, contracts.StepResult{Success: true, Result: json.RawMessage(`{"charge_id": "` + newUUID() + `"}`)})
			},
			def: conformance.Pass, want: with(notAsked, "idempotent-redelivery", conformance.Fail),
			reasons: map[string][]string{"idempotent-redelivery": {"delivered twice got different answers", "charge_id", "idempotent on step_uuid"}},
		},
		{
			name: "not idempotent: fails a repeat",
			handler: func() http.HandlerFunc {
				var mu sync.Mutex
				done := map[string]bool{}
				return func(w http.ResponseWriter, r *http.Request) {
					key := r.Header.Get("Idempotency-Key")
					mu.Lock()
					repeat := done[key]
					done[key] = true
					mu.Unlock()
					if repeat {
						writeJSON(w, 200, contracts.Failure("already_done", "this step ran before", false))
						return
					}
					echo.ServeHTTP(w, r)
				}
			}(),
			def: conformance.Pass, want: with(notAsked, "idempotent-redelivery", conformance.Fail, "retry-attempt", conformance.Pass),
			reasons: map[string][]string{"idempotent-redelivery": {"first success, then failure already_done (permanent)"}},
		},
		{
			name: "ignores Tasker-Deadline",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, contracts.StepResult{Success: true, Result: json.RawMessage(`"done"`)})
			},
			def: conformance.Pass, want: with(notAsked, "deadline-passed", conformance.Fail),
			reasons: map[string][]string{"deadline-passed": {"Tasker-Deadline 20", "(a minute before the request) the handler ran the step and answered 200 OK: success", "contracts/README.md#deadlines"}},
		},
		{
			name: "a late request answered 504",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if deadlinePassed(r) {
					http.Error(w, "too late", http.StatusGatewayTimeout)
					return
				}
				echo.ServeHTTP(w, r)
			},
			def: conformance.Pass, want: notAsked,
			reasons: map[string][]string{"deadline-passed": {"did not run the step: answered 504 Gateway Timeout"}},
		},
		{
			name: "batch: a lone step answered in the single shape",
			handler: func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				var req struct {
					Steps []contracts.StepEnvelope `json:"steps"`
				}
				_ = json.Unmarshal(body, &req)
				if len(req.Steps) == 1 {
					writeJSON(w, 200, contracts.StepResult{StepUUID: req.Steps[0].Step.StepUUID, Success: true})
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
				echo.ServeHTTP(w, r)
			},
			cfg: conformance.Config{Batch: true},
			def: conformance.Pass, want: with(notAsked, "batch", conformance.Fail),
			reasons: map[string][]string{"batch": {"3 steps in one call", "then a batch of one step", "not a batch response"}},
		},
		{
			name: "too slow",
			handler: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-time.After(time.Second):
				case <-r.Context().Done():
				}
				echo.ServeHTTP(w, r)
			},
			cfg: conformance.Config{Timeout: 100 * time.Millisecond},
			def: conformance.Fail, want: notAsked,
			reasons: map[string][]string{"minimal-envelope": {"before the step deadline", "deadline 100ms", "handler_timeout"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.URL = serve(t, tt.handler)
			rep := run(t, cfg)
			want := tt.want
			if !cfg.Batch {
				want = with(want, "batch", conformance.Skip)
			}
			wantStatuses(t, rep, tt.def, want)
			for name, frags := range tt.reasons {
				r := caseResult(t, rep, name).Reason
				for _, f := range frags {
					if !strings.Contains(r, f) {
						t.Errorf("%s: reason %q lacks %q", name, r, f)
					}
				}
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	_ = ln.Close()
	rep := run(t, conformance.Config{URL: url})
	wantStatuses(t, rep, conformance.Fail, with(notAsked, "batch", conformance.Skip))
	if r := caseResult(t, rep, "minimal-envelope").Reason; !strings.Contains(r, "connection refused") || !strings.Contains(r, url) {
		t.Errorf("reason %q", r)
	}
}

func TestCancelled(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer close(block)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	rep, err := conformance.Run(ctx, conformance.Config{URL: url})
	if !errors.Is(err, context.Canceled) || rep == nil || len(rep.Cases) != 0 {
		t.Errorf("Run = %+v, %v; want the empty report and context.Canceled", rep, err)
	}
}

func TestInvalidConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  conformance.Config
		want []string
	}{
		{conformance.Config{}, []string{"handler URL is empty"}},
		{conformance.Config{URL: "ftp://x"}, []string{"scheme must be http"}},
		{conformance.Config{URL: "http://x", Protocol: "soap"}, []string{`protocol "soap" is not supported`}},
		{conformance.Config{URL: "http://x", Protocol: "grpc", Secret: webhook.NewSecret()}, []string{"http protocol only"}},
		{conformance.Config{URL: "http://x/{callable}", Protocol: "connect"}, []string{"{callable} is not supported"}},
		{conformance.Config{URL: "http://x", Secret: "whsec_nope"}, []string{"secret"}},
		{conformance.Config{URL: "http://x", Timeout: -time.Second}, []string{"timeout must be positive"}},
		{conformance.Config{URL: "http://x", Context: json.RawMessage(`[1]`)}, []string{"must be a JSON object"}},
		{conformance.Config{URL: "", Protocol: "x", Context: json.RawMessage(`1`)}, []string{"not supported", "JSON object"}},
	}
	for _, tt := range tests {
		rep, err := conformance.Run(t.Context(), tt.cfg)
		if rep != nil || !errors.Is(err, conformance.ErrInvalidConfig) {
			t.Errorf("%+v: Run = %v, %v; want ErrInvalidConfig", tt.cfg, rep, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q lacks %q", tt.cfg, err, w)
			}
		}
	}
}

// connectService is a correct Connect/gRPC handler; it records whether the
// unknown fields of the unknown-fields case arrived.
type connectService struct {
	handlerv1connect.UnimplementedHandlerServiceHandler
	noBatch      bool
	failExecute  connect.Code
	mu           sync.Mutex
	unknownSeen  int
	contextBytes int
}

func (s *connectService) Execute(_ context.Context, req *connect.Request[handlerv1.ExecuteRequest]) (*connect.Response[handlerv1.ExecuteResponse], error) {
	if s.failExecute != 0 {
		return nil, connect.NewError(s.failExecute, errors.New("the handler failed"))
	}
	m := req.Msg
	s.mu.Lock()
	if m.GetStep().GetName() == "unknown_fields" {
		for _, part := range [][]byte{m.ProtoReflect().GetUnknown(), m.GetTask().ProtoReflect().GetUnknown(),
			m.GetStep().ProtoReflect().GetUnknown(), m.GetStepDefinition().GetHandler().ProtoReflect().GetUnknown()} {
			if len(part) > 0 {
				s.unknownSeen++
			}
		}
	}
	if m.GetStep().GetName() == "large_context" {
		s.contextBytes = len(m.GetTask().GetContext().GetFields()["conformance_padding"].GetListValue().GetValues())
	}
	s.mu.Unlock()
	return connect.NewResponse(&handlerv1.ExecuteResponse{
		StepUuid: m.GetStep().GetStepUuid(), Success: true, Status: "completed",
		Result: structpb.NewStringValue("echo " + m.GetStep().GetName()),
	}), nil
}

func (s *connectService) ExecuteBatch(_ context.Context, req *connect.Request[handlerv1.ExecuteBatchRequest]) (*connect.Response[handlerv1.ExecuteBatchResponse], error) {
	if s.noBatch {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("no batches here"))
	}
	out := &handlerv1.ExecuteBatchResponse{}
	for _, st := range req.Msg.GetSteps() {
		out.Results = append(out.Results, &handlerv1.ExecuteResponse{StepUuid: st.GetStep().GetStepUuid(), Success: true})
	}
	return connect.NewResponse(out), nil
}

// serveConnect serves svc over HTTP/1.1 and h2c on loopback.
func serveConnect(t *testing.T, svc handlerv1connect.HandlerServiceHandler) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(handlerv1connect.NewHandlerServiceHandler(svc))
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: &protocols, ReadHeaderTimeout: time.Minute}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}

func TestConnectAndGRPC(t *testing.T) {
	t.Parallel()
	for _, protocol := range []string{"connect", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			t.Parallel()
			svc := &connectService{}
			url := serveConnect(t, svc)
			rep := run(t, conformance.Config{URL: url, Protocol: protocol, Batch: true})
			wantStatuses(t, rep, conformance.Pass, with(notAsked, "deadline-passed", conformance.Skip))
			if r := caseResult(t, rep, "unsigned-rejected").Reason; !strings.Contains(r, "not signed") {
				t.Errorf("skip reason %q", r)
			}
			if r := caseResult(t, rep, "minimal-envelope").Reason; !strings.Contains(r, "answered OK: success") {
				t.Errorf("reason %q", r)
			}
			svc.mu.Lock()
			defer svc.mu.Unlock()
			if svc.unknownSeen != 4 {
				t.Errorf("unknown fields arrived in %d messages, want 4", svc.unknownSeen)
			}
			if svc.contextBytes < 1000 {
				t.Errorf("large context: %d padding items", svc.contextBytes)
			}

			svc = &connectService{noBatch: true}
			rep = run(t, conformance.Config{URL: serveConnect(t, svc), Protocol: protocol, Batch: true})
			wantStatuses(t, rep, conformance.Pass, with(notAsked, "batch", conformance.Fail, "deadline-passed", conformance.Skip))
			if r := caseResult(t, rep, "batch").Reason; !strings.Contains(r, "UNIMPLEMENTED") || !strings.Contains(r, "leave out --batch") {
				t.Errorf("batch reason %q", r)
			}

			for code, status := range map[connect.Code]conformance.Status{
				connect.CodeInternal: conformance.Fail, connect.CodeUnimplemented: conformance.Fail,
				connect.CodeUnavailable: conformance.Pass, connect.CodeUnauthenticated: conformance.Fail,
				connect.CodeInvalidArgument: conformance.Fail,
			} {
				t.Run(code.String(), func(t *testing.T) {
					t.Parallel()
					svc := &connectService{failExecute: code}
					rep := run(t, conformance.Config{URL: serveConnect(t, svc), Protocol: protocol})
					want := with(notAsked, "batch", conformance.Skip, "deadline-passed", conformance.Skip)
					if code == connect.CodeInvalidArgument {
						want["large-context"] = conformance.Pass
					}
					wantStatuses(t, rep, status, want)
					r := caseResult(t, rep, "minimal-envelope").Reason
					if !strings.Contains(r, strings.ToUpper(code.String())) || !strings.Contains(r, "the handler failed") {
						t.Errorf("%v: reason %q", code, r)
					}
				})
			}
		})
	}
}

// TestConnectAgainstPlainHTTP: a Connect call to a service that is not one.
func TestConnectAgainstPlainHTTP(t *testing.T) {
	t.Parallel()
	url := serve(t, http.NotFoundHandler())
	rep := run(t, conformance.Config{URL: url, Protocol: "connect"})
	wantStatuses(t, rep, conformance.Fail, with(notAsked, "batch", conformance.Skip, "deadline-passed", conformance.Skip))
	// How the plain server refuses the h2c preface depends on timing: an
	// UNAVAILABLE answer (with a hint about h2c) or a reset connection.
	r := caseResult(t, rep, "minimal-envelope").Reason
	if !(strings.Contains(r, "UNAVAILABLE") && strings.Contains(r, "h2c")) && !strings.Contains(r, "reset") {
		t.Errorf("reason %q", r)
	}
}

// TestSchemaCopiesAreFresh: the suite validates answers with copies of
// contracts/schema; they must be the same bytes.
func TestSchemaCopiesAreFresh(t *testing.T) {
	t.Parallel()
	entries, err := os.ReadDir("schema")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("%d files in schema/, want the 2 answer schemas", len(entries))
	}
	for _, e := range entries {
		copyBytes, err := os.ReadFile(filepath.Join("schema", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		src := filepath.Join("..", "..", "contracts", "schema", e.Name())
		orig, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(copyBytes, orig) {
			t.Errorf("callout/conformance/schema/%s differs from contracts/schema/%s: run cp contracts/schema/%s callout/conformance/schema/", e.Name(), e.Name(), e.Name())
		}
	}
}

// TestCasesAreDocumented: every case is described in the package doc, in
// order, with a description and a requirement.
func TestCasesAreDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	last := -1
	seen := map[string]bool{}
	for _, c := range conformance.Cases() {
		if seen[c.Name] || !regexp.MustCompile(`^[a-z]+(-[a-z]+)*$`).MatchString(c.Name) {
			t.Errorf("case name %q is duplicated or not kebab-case", c.Name)
		}
		seen[c.Name] = true
		i := bytes.Index(doc, []byte("// "+c.Name+": "))
		if i < 0 {
			t.Errorf("case %s is not documented in doc.go", c.Name)
			continue
		}
		if i < last {
			t.Errorf("case %s is documented out of order", c.Name)
		}
		last = i
		if c.Description == "" || c.Requirement == "" {
			t.Errorf("case %s: empty description or requirement", c.Name)
		}
	}
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
