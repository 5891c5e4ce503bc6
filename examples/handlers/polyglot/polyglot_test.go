package polyglot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/tasker-runner/tasker-runner/callout/conformance"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/contracts/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// root is the repository root.
var root = func() string {
	abs, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		panic(err)
	}
	return abs
}()

// language is one example handler service.
type language struct {
	// name is its directory under examples/handlers and its argument to
	// .ci/ensure-runtimes.
	name string
	// probe succeeds when the runtime is there.
	probe []string
	// install says how to install the runtime by hand.
	install string
	// build, when set, prepares the service (TypeScript: npm ci, tsc).
	build func(t *testing.T, dir string)
	// serve starts the service; test runs the example's own tests.
	serve, test []string
}

var languages = []language{
	{
		name:    "python",
		probe:   []string{"python3", "-c", "import http.server, hmac"},
		install: "apt-get install python3 (any Python 3.9+)",
		serve:   []string{"python3", "handler.py"},
		test:    []string{"python3", "-m", "unittest", "-v"},
	},
	{
		name:    "ruby",
		probe:   []string{"ruby", "-e", `require "webrick"; require "openssl"; require "minitest"`},
		install: "apt-get install ruby ruby-webrick (or Ruby 3.0+ and gem install webrick)",
		serve:   []string{"ruby", "handler.rb"},
		test:    []string{"ruby", "test_handler.rb"},
	},
	{
		name:    "typescript",
		probe:   []string{"npm", "--version"},
		install: "apt-get install nodejs npm (Node.js 18+; the npm registry must be reachable for npm ci)",
		build:   buildTypeScript,
		serve:   []string{"node", "dist/handler.js"},
		test:    []string{"node", "--test", "dist/"},
	},
}

// childEnv is added to the environment of every child process.
var childEnv = []string{"PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1", "NO_COLOR=1", "NODE_DISABLE_COLORS=1"}

func (l language) present() bool {
	cmd := exec.Command(l.probe[0], l.probe[1:]...)
	cmd.Env = append(os.Environ(), childEnv...)
	return cmd.Run() == nil
}

// ensureRuntimes runs .ci/ensure-runtimes once for the languages whose
// runtime is missing (it installs them with apt-get as root on Debian), and
// returns what it said.
var ensureRuntimes = sync.OnceValue(func() string {
	var missing []string
	for _, l := range languages {
		if !l.present() {
			missing = append(missing, l.name)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(root, ".ci", "ensure-runtimes")}, missing...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%s(%v)", out, err)
	}
	return string(out)
})

// ready makes sure l's runtime is there, builds the service and returns its
// directory. When the runtime is missing and cannot be installed it skips
// loudly, or fails under CI (see [missingRuntime]).
func (l language) ready(t *testing.T) string {
	t.Helper()
	said := ensureRuntimes()
	if !l.present() {
		missingRuntime(t, "the %s example handler: its runtime is missing (%s failed)\n"+
			"## and .ci/ensure-runtimes could not install it:\n%s\n"+
			"## Install it (%s), then run the tests again.",
			l.name, strings.Join(l.probe, " "), indent(said), l.install)
	}
	dir := filepath.Join(root, "examples", "handlers", l.name)
	if l.build != nil {
		l.build(t, dir)
	}
	return dir
}

// missingRuntime reports a missing language runtime in a box: a skip on a
// developer's machine, a failure under CI (CI=true in the environment),
// where .ci/ensure-runtimes must have installed every runtime.
func missingRuntime(t testing.TB, format string, args ...any) {
	t.Helper()
	verb, end := "SKIPPING", t.Skipf
	if underCI() {
		verb, end = "FAILING (CI=true: a runtime must not be missing)", t.Fatalf
	}
	line := strings.Repeat("#", 74)
	end("\n%s\n## %s %s\n%s", line, verb, fmt.Sprintf(format, args...), line)
}

// underCI reports whether the tests run under CI: CI set to a true value
// (CI=true, as CI services and .ci/run set it).
func underCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

func indent(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		s = "(nothing)"
	}
	return "##   " + strings.ReplaceAll(s, "\n", "\n##   ")
}

// run runs a command in dir and returns its output; it fails the test when
// the command fails.
func run(t *testing.T, dir string, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), childEnv...)
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s (in %s) failed after %s: %v\n%s", strings.Join(args, " "), dir, time.Since(start).Round(time.Millisecond), err, out)
	}
	t.Logf("%s: %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return string(out)
}

// buildTypeScript installs the pinned compiler with npm ci (only when
// package.json or package-lock.json changed since the last install) and
// compiles src/ into dist/.
func buildTypeScript(t *testing.T, dir string) {
	t.Helper()
	h := sha256.New()
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	defer lockDir(t, dir)()
	stamp := filepath.Join(dir, "node_modules", ".tasker-runner-lock-sha256")
	if got, _ := os.ReadFile(stamp); string(got) != sum {
		run(t, dir, 4*time.Minute, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		if err := os.WriteFile(stamp, []byte(sum), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(filepath.Join(dir, "dist")); err != nil {
		t.Fatal(err)
	}
	run(t, dir, 2*time.Minute, "node", filepath.Join("node_modules", "typescript", "bin", "tsc"), "-p", ".")
}

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

// service is an example handler service running as a child process.
type service struct {
	url     string
	logs    *lockedBuffer
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	once    sync.Once
	stopErr error
}

var listening = regexp.MustCompile(`listening on http://\S+:(\d+)`)

// startService starts l's service on a free loopback port (PORT=0), signed
// with secret when it is set, and waits until it answers GET /health. The
// test's cleanup stops it with SIGTERM and fails the test unless it exits
// cleanly.
func startService(t *testing.T, l language, dir, secret string) *service {
	t.Helper()
	cmd := exec.Command(l.serve[0], l.serve[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), childEnv...)
	cmd.Env = append(cmd.Env, "PORT=0", "HOST=127.0.0.1", "TASKER_WEBHOOK_SECRET="+secret)
	s := &service{logs: &lockedBuffer{}, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", strings.Join(l.serve, " "), err)
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("the %s service did not stop cleanly on SIGTERM: %v\n%s", l.name, err, s.logs)
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for s.url == "" {
		if m := listening.FindStringSubmatch(s.logs.String()); m != nil {
			s.url = "http://127.0.0.1:" + m[1]
			break
		}
		select {
		case <-s.done:
			t.Fatalf("the %s service exited before listening: %v\n%s", l.name, s.waitErr, s.logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s service did not say it was listening within 30s:\n%s", l.name, s.logs)
		}
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(s.url + "/health")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s/health did not answer 200 within 30s (%v):\n%s", s.url, err, s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the service to exit; it returns an error
// unless it exits with status 0 within 10 seconds (then it is killed).
func (s *service) stop() error {
	s.once.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
			s.stopErr = s.waitErr
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
			s.stopErr = errors.New("still running 10s after SIGTERM: killed")
		}
	})
	return s.stopErr
}

// signatureCases are the conformance cases that need a secret.
var signatureCases = map[string]bool{
	"signature-rotation": true, "unsigned-rejected": true, "tampered-body-rejected": true, "stale-timestamp-rejected": true,
}

// dynamicContext is the task context of the conformance runs: the
// approval's decision routes 7500 to two approvals, the ETL splits 100 rows
// into 2 workers, each yielding every 20 rows.
const dynamicContext = `{"conformance": true, "request": {"amount": 7500}, "etl": {"rows": 100, "workers": 2, "checkpoint_every": 20}}`

// checkConformance runs the conformance suite, batched calls and the
// dynamic cases (the approval's decision, the ETL's split and its yielding
// worker) included, and wants every case to pass (unsigned: all but the
// signature cases).
func checkConformance(t *testing.T, s *service, secret string) {
	t.Helper()
	rep, err := conformance.Run(t.Context(), conformance.Config{
		URL: s.url + "/{callable}", Secret: secret, Batch: true,
		Decision: "approval.route", Batchable: "etl.analyze", Yielding: "etl.transform", Context: json.RawMessage(dynamicContext),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Cases {
		switch {
		case c.Status == conformance.Pass:
			t.Logf("PASS %s: %s", c.Name, c.Reason)
		case c.Status == conformance.Skip && secret == "" && signatureCases[c.Name]:
			t.Logf("SKIP %s (unsigned)", c.Name)
		default:
			t.Errorf("%s %s: %s", c.Status, c.Name, c.Reason)
		}
	}
	if want := len(conformance.Cases()); len(rep.Cases) != want {
		t.Errorf("%d cases ran, want %d", len(rep.Cases), want)
	}
	if t.Failed() {
		t.Logf("service output:\n%s", s.logs)
	}
}

// envelope builds the envelope of a step of the order-fulfilment workflow.
func envelope(callable string, attempt int, ctx string, deps map[string]string) *contracts.StepEnvelope {
	env := &contracts.StepEnvelope{
		EventID: uuid.NewString(),
		Task: contracts.TaskInfo{
			TaskUUID: uuid.NewString(), Namespace: "order_fulfillment", Name: "order_fulfillment", Version: "1.0.0",
			Context: json.RawMessage(ctx), CorrelationID: uuid.NewString(), Tags: []string{},
		},
		Step: contracts.StepInfo{
			StepUUID: uuid.NewString(), Name: callable[strings.LastIndex(callable, ".")+1:],
			Attempts: attempt, MaxAttempts: 3, Retryable: true, Inputs: json.RawMessage(`{}`),
		},
		StepDefinition:    contracts.StepDefinition{Handler: contracts.HandlerDefinition{Callable: callable}, Dependencies: []string{}},
		DependencyResults: map[string]contracts.StepResult{},
	}
	env.Step.TemplateStepName = env.Step.Name
	for name, result := range deps {
		env.StepDefinition.Dependencies = append(env.StepDefinition.Dependencies, name)
		env.DependencyResults[name] = contracts.StepResult{Success: true, Status: "completed", Result: json.RawMessage(result)}
	}
	return env
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends body with header and returns the answer.
func post(t *testing.T, client *http.Client, url string, body []byte, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

const goodOrder = `{"order": {"id": "ord-1", "total": 125.5, "currency": "EUR", "address": "1 Main St", "items": [{"sku": "kb-42", "quantity": 1}]}}`

// checkSteps runs every step of the example once, as the Go example's
// tests do, and checks status codes, Retry-After and results.
func checkSteps(t *testing.T, client *http.Client, base string) {
	valid := map[string]string{"validate_order": `{"valid": true, "problems": []}`}
	tests := []struct {
		name       string
		env        *contracts.StepEnvelope
		path       string
		status     int
		retryAfter string
		success    bool
		errorType  string
		retryable  bool
		result     string // a fragment of result, in Go's JSON
	}{
		{name: "validate a good order", env: envelope("order_fulfillment.validate_order", 1, goodOrder, nil),
			status: 200, success: true, result: `"valid":true`},
		{name: "validate an empty order", env: envelope("order_fulfillment.validate_order", 1, `{"order": {}}`, nil),
			status: 200, success: true, result: `"valid":false`},
		{name: "charge a valid order", env: envelope("order_fulfillment.charge", 1, goodOrder, valid),
			status: 200, success: true, result: `"amount":125.5`},
		{name: "charge through POST /{callable}", path: "/order_fulfillment.charge",
			env: envelope("order_fulfillment.charge", 1, goodOrder, valid), status: 200, success: true, result: `"currency":"EUR"`},
		{name: "charge an invalid order: business failure in a 200",
			env:    envelope("order_fulfillment.charge", 1, goodOrder, map[string]string{"validate_order": `{"valid": false}`}),
			status: 200, errorType: "order_invalid"},
		{name: "charge without validate_order", env: envelope("order_fulfillment.charge", 1, goodOrder, nil),
			status: 200, errorType: "order_invalid"},
		{name: "charge too much: declined", env: envelope("order_fulfillment.charge", 1, `{"order": {"total": 20000}}`, valid),
			status: 200, errorType: "card_declined"},
		{name: "reserve stock, first attempt: 503 and Retry-After", env: envelope("order_fulfillment.reserve_stock", 1, goodOrder, nil),
			status: 503, retryAfter: "1", errorType: "warehouse_busy", retryable: true},
		{name: "reserve stock, second attempt", env: envelope("order_fulfillment.reserve_stock", 2, goodOrder, nil),
			status: 200, success: true, result: `"attempt":2`},
		{name: "ship without an address: 422", env: envelope("order_fulfillment.ship", 1, `{"order": {"total": 1}}`, nil),
			status: 422, errorType: "no_address"},
		{name: "ship", env: envelope("order_fulfillment.ship", 1, goodOrder, nil), status: 200, success: true, result: `"address":"1 Main St"`},
		{name: "context that is not an order", env: envelope("order_fulfillment.ship", 1, `{"order": 7}`, nil),
			status: 200, errorType: "invalid_context"},
		{name: "echo", env: envelope("conformance.echo", 3, `{}`, nil), status: 200, success: true, result: `"attempt":3`},
		{name: "unknown callable: 404", env: envelope("order_fulfillment.teleport", 1, `{}`, nil), status: 404, errorType: "handler_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, client, base+tt.path, mustJSON(t, tt.env), nil)
			if resp.StatusCode != tt.status || resp.Header.Get("Retry-After") != tt.retryAfter {
				t.Fatalf("answered %s (Retry-After %q) with %s; want %d (Retry-After %q)",
					resp.Status, resp.Header.Get("Retry-After"), body, tt.status, tt.retryAfter)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			var res contracts.StepResult
			if err := json.Unmarshal(body, &res); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			if res.Success != tt.success || res.StepUUID != tt.env.Step.StepUUID {
				t.Errorf("success %v, step_uuid %q; want %v, %q: %s", res.Success, res.StepUUID, tt.success, tt.env.Step.StepUUID, body)
			}
			if tt.success {
				compact := &bytes.Buffer{}
				_ = json.Compact(compact, res.Result)
				if !strings.Contains(compact.String(), tt.result) || res.Error != nil || res.Status != "completed" {
					t.Errorf("result %s, want a completed one with %s and no error", body, tt.result)
				}
				return
			}
			if res.Status != "failed" || res.Error == nil || res.Error.ErrorType != tt.errorType || res.Error.Retryable != tt.retryable || res.Error.Message == "" {
				t.Errorf("answer %s; want a failure of type %s, retryable %v", body, tt.errorType, tt.retryable)
			}
		})
	}

	t.Run("charge is idempotent on step_uuid", func(t *testing.T) {
		env := envelope("order_fulfillment.charge", 1, goodOrder, valid)
		var ids []string
		for attempt := 1; attempt <= 2; attempt++ {
			env.Step.Attempts, env.EventID = attempt, uuid.NewString()
			_, body := post(t, client, base, mustJSON(t, env), nil)
			var res struct {
				Result struct {
					ChargeID string `json:"charge_id"`
				} `json:"result"`
			}
			if err := json.Unmarshal(body, &res); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, res.Result.ChargeID)
		}
		if ids[0] == "" || ids[0] != ids[1] {
			t.Errorf("charge ids %q: want one id for both attempts", ids)
		}
	})
}

// checkBatch sends one batched call with a success, a retryable failure,
// a permanent failure and an unknown callable.
func checkBatch(t *testing.T, client *http.Client, base string) {
	envs := []*contracts.StepEnvelope{
		envelope("order_fulfillment.charge", 1, goodOrder, map[string]string{"validate_order": `{"valid": true}`}),
		envelope("order_fulfillment.reserve_stock", 1, goodOrder, nil),
		envelope("order_fulfillment.ship", 1, `{}`, nil),
		envelope("nope.nothing", 1, `{}`, nil),
	}
	resp, body := post(t, client, base+"/", mustJSON(t, map[string]any{"steps": envs}), http.Header{"Tasker-Batch-Size": {"4"}})
	if resp.StatusCode != 200 {
		t.Fatalf("answered %s: %s", resp.Status, body)
	}
	var out struct {
		Results []contracts.StepResult `json:"results"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != len(envs) {
		t.Fatalf("%d results for %d steps: %s", len(out.Results), len(envs), body)
	}
	byUUID := map[string]contracts.StepResult{}
	for _, r := range out.Results {
		byUUID[r.StepUUID] = r
	}
	charge, busy, ship, missing := byUUID[envs[0].Step.StepUUID], byUUID[envs[1].Step.StepUUID], byUUID[envs[2].Step.StepUUID], byUUID[envs[3].Step.StepUUID]
	if !charge.Success {
		t.Errorf("charge: %s", mustJSON(t, charge))
	}
	if busy.Success || busy.Error == nil || !busy.Error.Retryable || busy.Error.StatusCode != 503 ||
		busy.OrchestrationMetadata == nil || busy.OrchestrationMetadata.BackoffHint == nil || busy.OrchestrationMetadata.BackoffHint.DelaySeconds != 1 {
		t.Errorf("reserve_stock: want a retryable 503 failure with a 1s backoff hint, got %s", mustJSON(t, busy))
	}
	if ship.Success || ship.Error == nil || ship.Error.Retryable || ship.Error.StatusCode != 422 {
		t.Errorf("ship: want a permanent 422 failure, got %s", mustJSON(t, ship))
	}
	if missing.Success || missing.Error == nil || missing.Error.ErrorType != "handler_not_found" {
		t.Errorf("unknown callable: %s", mustJSON(t, missing))
	}
}

// maxBodyBytes is the request limit of every example (as the Go example's).
const maxBodyBytes = 4 << 20

// checkBadRequests: what is not an envelope gets 400, a body over the
// limit 413, and GET /health 200.
func checkBadRequests(t *testing.T, client *http.Client, base string) {
	for _, body := range []string{``, `not json`, `[1,2]`, `{"task": 5}`, `{"steps": [{"task": 5}]}`} {
		resp, out := post(t, client, base, []byte(body), nil)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%q: answered %s %s, want 400", body, resp.Status, out)
			continue
		}
		var res contracts.StepResult
		if err := json.Unmarshal(out, &res); err != nil || res.Success || res.Error == nil || res.Error.Retryable {
			t.Errorf("%q: answered 400 with %s, want a permanent failed result (%v)", body, out, err)
		}
	}
	if resp, out := post(t, client, base, bytes.Repeat([]byte(" "), maxBodyBytes+1), nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a body of %d bytes: answered %s %s, want 413", maxBodyBytes+1, resp.Status, out)
	}
	if resp, out := post(t, client, base, append(mustJSON(t, envelope("conformance.echo", 1, `{}`, nil)), bytes.Repeat([]byte(" "), maxBodyBytes/2)...), nil); resp.StatusCode != 200 {
		t.Errorf("an envelope of %d MiB: answered %s %s, want 200", maxBodyBytes/2>>20, resp.Status, out)
	}
	resp, err := client.Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /health: %s", resp.Status)
	}
}

// checkSignatures: with a secret, a signed request runs, and unsigned,
// wrongly signed or oversized ones do not.
func checkSignatures(t *testing.T, client *http.Client, base, secret string) {
	body := mustJSON(t, envelope("conformance.echo", 1, `{}`, nil))
	signed := func(secret string, ts time.Time, body []byte) http.Header {
		signer, err := webhook.NewSigner(secret)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		signer.SetHeaders(h, uuid.NewString(), ts, body)
		return h
	}
	if resp, out := post(t, client, base, body, signed(secret, time.Now(), body)); resp.StatusCode != 200 {
		t.Errorf("signed: answered %s %s, want 200", resp.Status, out)
	}
	for name, h := range map[string]http.Header{
		"unsigned":           nil,
		"another secret":     signed(webhook.NewSecret(), time.Now(), body),
		"signed 6 min ahead": signed(secret, time.Now().Add(6*time.Minute), body),
		"signed 6 min ago":   signed(secret, time.Now().Add(-6*time.Minute), body),
	} {
		if resp, out := post(t, client, base, body, h); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: answered %s %s, want 401", name, resp.Status, out)
		}
	}
	big := bytes.Repeat([]byte(" "), maxBodyBytes+1)
	if resp, out := post(t, client, base, big, signed(secret, time.Now(), big)); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("signed, %d bytes: answered %s %s, want 413", len(big), resp.Status, out)
	}
}

func TestExamples(t *testing.T) {
	for _, l := range languages {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			dir := l.ready(t)
			t.Run("own tests", func(t *testing.T) {
				out := run(t, dir, 2*time.Minute, l.test...)
				t.Logf("%s", lastLines(out, 8))
			})

			tr := &http.Transport{}
			t.Cleanup(tr.CloseIdleConnections)
			client := &http.Client{Transport: tr, Timeout: 20 * time.Second}

			unsigned := startService(t, l, dir, "")
			t.Run("conformance", func(t *testing.T) { checkConformance(t, unsigned, "") })
			t.Run("steps", func(t *testing.T) { checkSteps(t, client, unsigned.url) })
			t.Run("batch", func(t *testing.T) { checkBatch(t, client, unsigned.url) })
			t.Run("dynamic workflows", func(t *testing.T) { checkDynamic(t, client, unsigned.url) })
			t.Run("bad requests", func(t *testing.T) { checkBadRequests(t, client, unsigned.url) })

			secret := webhook.NewSecret()
			signed := startService(t, l, dir, secret)
			t.Run("conformance signed", func(t *testing.T) { checkConformance(t, signed, secret) })
			t.Run("signatures", func(t *testing.T) { checkSignatures(t, client, signed.url, secret) })

			t.Run("bad secret", func(t *testing.T) { checkBadSecret(t, l, dir) })

			t.Run("SIGTERM", func(t *testing.T) {
				tr.CloseIdleConnections()
				start := time.Now()
				for _, s := range []*service{unsigned, signed} {
					if err := s.stop(); err != nil {
						t.Errorf("after SIGTERM: %v\n%s", err, s.logs)
					}
					if logs := s.logs.String(); !strings.Contains(logs, "shut") {
						t.Errorf("no shutdown in the logs:\n%s", logs)
					}
				}
				t.Logf("both services stopped in %s", time.Since(start).Round(time.Millisecond))
			})
		})
	}
}

// checkBadSecret: a malformed secret stops the service at start, saying why.
func checkBadSecret(t *testing.T, l language, dir string) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.serve[0], l.serve[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), childEnv...)
	cmd.Env = append(cmd.Env, "PORT=0", "HOST=127.0.0.1", "TASKER_WEBHOOK_SECRET=whsec_short")
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() <= 0 || !strings.Contains(string(out), "TASKER_WEBHOOK_SECRET") {
		t.Errorf("with a malformed secret: %v, output %q; want a non-zero exit naming TASKER_WEBHOOK_SECRET", err, out)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
