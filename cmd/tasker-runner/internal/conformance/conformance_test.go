package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tasker-runner/tasker-runner/callout/conformance"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
	"github.com/tasker-runner/tasker-runner/contracts"
	handlerv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/handler/v1"
	"github.com/tasker-runner/tasker-runner/contracts/gen/tasker/handler/v1/handlerv1connect"
	"github.com/tasker-runner/tasker-runner/contracts/webhook"
)

// conformanceRow matches one line of the conformance table.
var conformanceRow = regexp.MustCompile(`(?m)^([a-z-]+) +(PASS|FAIL|SKIP)(?: +([0-9.]+m?s))? +(.+)$`)

// conformanceRows returns the status and reason of each case in out.
func conformanceRows(t *testing.T, out string) map[string][2]string {
	t.Helper()
	rows := map[string][2]string{}
	for _, m := range conformanceRow.FindAllStringSubmatch(out, -1) {
		rows[m[1]] = [2]string{m[2], m[4]}
	}
	if len(rows) != len(conformance.Cases()) {
		t.Errorf("%d case lines, want %d, in\n%s", len(rows), len(conformance.Cases()), out)
	}
	return rows
}

// wantConformance checks every case's status (those not in want: def).
func wantConformance(t *testing.T, stdout, dump, def string, want map[string]string) map[string][2]string {
	t.Helper()
	rows := conformanceRows(t, stdout)
	for _, c := range conformance.Cases() {
		w, ok := want[c.Name]
		if !ok {
			w = def
		}
		if got := rows[c.Name][0]; got != w {
			t.Errorf("%s: %s (%s), want %s", c.Name, got, rows[c.Name][1], w)
		}
	}
	if t.Failed() {
		t.Logf("%s", dump)
	}
	return rows
}

// conformanceSignatureSkips are the cases skipped unless asked: the
// signature cases (--secret) and the dynamic ones (--decision, --batchable,
// --yielding).
var conformanceSignatureSkips = map[string]string{
	"signature-rotation": "SKIP", "unsigned-rejected": "SKIP", "tampered-body-rejected": "SKIP", "stale-timestamp-rejected": "SKIP",
	"decision-outcome": "SKIP", "batch-outcome": "SKIP", "yields": "SKIP",
}

// conformanceDynamicSkips are the dynamic cases alone.
var conformanceDynamicSkips = map[string]string{"decision-outcome": "SKIP", "batch-outcome": "SKIP", "yields": "SKIP"}

// exampleDynamicArgs check the examples' decision, batchable and yielding
// steps: the approval routes 7500 to two approvals, the ETL splits 100 rows
// into 2 workers that checkpoint every 20 rows.
var exampleDynamicArgs = []string{
	"--decision", "approval.route", "--batchable", "etl.analyze", "--yielding", "etl.transform",
	"--context", `{"request": {"amount": 7500}, "etl": {"rows": 100, "workers": 2, "checkpoint_every": 20}}`,
}

func skipsWith(kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range conformanceSignatureSkips {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// goExample is the Go example handler (examples/handlers/go) running as a
// process. The cmd package may not import the examples (.ci/check-imports),
// so the test builds the example's command and runs it, as a user would.
type goExample struct {
	url  string
	cmd  *exec.Cmd
	logs *clitest.Buffer
	done chan error
}

// buildGoExample builds examples/handlers/go once per test binary run.
func buildGoExample(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build the example handler with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "go-handler")
	args := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race") // reuse the race-built packages of this test
			}
		}
	}
	cmd := exec.CommandContext(t.Context(), goTool, append(args, "github.com/tasker-runner/tasker-runner/examples/handlers/go")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the Go example handler: %v\n%s", err, out)
	}
	return bin
}

// startGoExample runs the example with vars in its environment and waits
// until it answers on a free loopback port.
func startGoExample(t *testing.T, bin string, vars map[string]string) *goExample {
	t.Helper()
	port := clitest.FreePort(t)
	g := &goExample{url: "http://127.0.0.1:" + strconv.Itoa(port), logs: &clitest.Buffer{}, done: make(chan error, 1)}
	g.cmd = exec.Command(bin, "--addr", "127.0.0.1:"+strconv.Itoa(port))
	g.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GORACE=atexit_sleep_ms=0"}
	for k, v := range vars {
		g.cmd.Env = append(g.cmd.Env, k+"="+v)
	}
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.done <- g.cmd.Wait() }()
	t.Cleanup(func() {
		if g.cmd.ProcessState == nil {
			_ = g.cmd.Process.Kill()
			<-g.done
		}
		if t.Failed() {
			t.Logf("go-handler logs:\n%s", g.logs)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := clitest.NoKeepAlive.Get(g.url + "/health")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g
			}
		}
		select {
		case err := <-g.done:
			t.Fatalf("the example handler exited: %v\n%s", err, g.logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the example handler did not answer /health within 30s: %v", err)
		}
	}
}

// stop sends SIGTERM and expects a graceful exit.
func (g *goExample) stop(t *testing.T) {
	t.Helper()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-g.done:
		if err != nil {
			t.Errorf("after SIGTERM: %v", err)
		}
		if !strings.Contains(g.logs.String(), "shutting down") {
			t.Errorf("no graceful shutdown in the logs:\n%s", g.logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the example handler did not stop within 15s of SIGTERM")
	}
}

// TestConformanceGoExample: the conformance command passes against the Go
// example handler, unsigned and signed, over {callable} URLs and the plain
// one, and through its business callables.
func TestConformanceGoExample(t *testing.T) {
	t.Parallel()
	bin := buildGoExample(t)
	t.Run("unsigned", func(t *testing.T) {
		t.Parallel()
		checkGoExampleUnsigned(t, bin)
	})
	t.Run("signed", func(t *testing.T) {
		t.Parallel()
		checkGoExampleSigned(t, bin)
	})
}

// checkGoExampleUnsigned checks the Go example without a secret: the echo
// callable, its dynamic steps, business callables and an unknown one.
func checkGoExampleUnsigned(t *testing.T, bin string) {
	g := startGoExample(t, bin, nil)
	r := clitest.Run(t, nil, "conformance", "--url", g.url+"/{callable}", "--batch")
	if r.Code != 0 || r.Stderr != "" {
		t.Errorf("want exit 0 and nothing on stderr: %v", r)
	}
	rows := wantConformance(t, r.Stdout, r.String(), "PASS", conformanceSignatureSkips)
	if !strings.Contains(rows["minimal-envelope"][1], "answered 200 OK: success") {
		t.Errorf("minimal-envelope: %q", rows["minimal-envelope"][1])
	}
	if !strings.Contains(r.Stdout, "(http, callable conformance.echo, batch): 10 passed, 0 failed, 7 skipped: the handler conforms") {
		t.Errorf("no summary line in\n%s", r.Stdout)
	}

	// Its decision, batchable and yielding steps.
	r = clitest.Run(t, nil, append([]string{"conformance", "--url", g.url + "/{callable}", "--batch"}, exampleDynamicArgs...)...)
	rows = wantConformance(t, r.Stdout, r.String(), "PASS", skipsWith("decision-outcome", "PASS", "batch-outcome", "PASS", "yields", "PASS"))
	if r.Code != 0 || !strings.Contains(rows["yields"][1], "2 yields (worker inputs from the first batch of batch-outcome)") ||
		!strings.Contains(r.Stdout, "decision approval.route, batchable etl.analyze, yielding etl.transform): 13 passed, 0 failed, 4 skipped") {
		t.Errorf("dynamic cases: %v", r)
	}

	// A business callable: the synthetic envelopes make charge fail
	// (no valid validate_order), which is a valid answer.
	r = clitest.Run(t, nil, "conformance", "--url", g.url, "--callable", "order_fulfillment.charge")
	if r.Code != 0 {
		t.Errorf("charge: %v", r)
	}
	rows = wantConformance(t, r.Stdout, r.String(), "PASS", skipsWith("batch", "SKIP"))
	if !strings.Contains(rows["minimal-envelope"][1], "failure order_invalid (permanent)") {
		t.Errorf("charge: %q", rows["minimal-envelope"][1])
	}
	// reserve_stock answers 503 + Retry-After on attempt 1: a classified failure.
	r = clitest.Run(t, nil, "conformance", "--url", g.url, "--callable", "order_fulfillment.reserve_stock", "--batch")
	rows = wantConformance(t, r.Stdout, r.String(), "PASS", conformanceSignatureSkips)
	if r.Code != 0 || !strings.Contains(rows["minimal-envelope"][1], "503 Service Unavailable with a failed StepExecutionResult") ||
		!strings.Contains(rows["retry-attempt"][1], "200 OK: success") {
		t.Errorf("reserve_stock: %v", r)
	}
	// A callable it does not serve: 404s, and the reason says so (a
	// request past its deadline is refused before the callable is
	// looked up).
	r = clitest.Run(t, nil, "conformance", "--url", g.url, "--callable", "payments.refund")
	rows = wantConformance(t, r.Stdout, r.String(), "FAIL", skipsWith("batch", "SKIP", "deadline-passed", "PASS"))
	if r.Code != 1 || !strings.Contains(rows["minimal-envelope"][1], `callable "payments.refund"`) {
		t.Errorf("unknown callable: %v", r)
	}
	g.stop(t)
}

// checkGoExampleSigned checks the Go example with a signing secret, given
// as a flag, from the environment, and missing.
func checkGoExampleSigned(t *testing.T, bin string) {
	secret := webhook.NewSecret()
	g := startGoExample(t, bin, map[string]string{"TASKER_WEBHOOK_SECRET": secret})
	r := clitest.Run(t, nil, append([]string{"conformance", "--url", g.url + "/{callable}", "--secret", secret, "--batch"}, exampleDynamicArgs...)...)
	if r.Code != 0 || r.Stderr != "" {
		t.Errorf("want exit 0: %v", r)
	}
	rows := wantConformance(t, r.Stdout, r.String(), "PASS", nil)
	if !strings.Contains(rows["tampered-body-rejected"][1], "401 Unauthorized") {
		t.Errorf("tampered-body-rejected: %q", rows["tampered-body-rejected"][1])
	}
	if !strings.Contains(r.Stdout, "17 passed, 0 failed, 0 skipped: the handler conforms") {
		t.Errorf("summary:\n%s", r.Stdout)
	}
	// The secret from the environment, as the example reads it.
	r = clitest.Run(t, map[string]string{"TASKER_WEBHOOK_SECRET": secret}, "conformance", "--url", g.url)
	if r.Code != 0 {
		t.Errorf("secret from TASKER_WEBHOOK_SECRET: %v", r)
	}
	// Without it the handler refuses every call, and the reasons say why.
	r = clitest.Run(t, nil, "conformance", "--url", g.url)
	rows = wantConformance(t, r.Stdout, r.String(), "FAIL", skipsWith("batch", "SKIP"))
	if r.Code != 1 || !strings.Contains(rows["minimal-envelope"][1], "401 Unauthorized") ||
		!strings.Contains(rows["minimal-envelope"][1], "pass its secret with --secret") ||
		!strings.Contains(r.Stderr, "tasker-runner conformance: 9 of 9 cases failed") {
		t.Errorf("without the secret: %v", r)
	}
	g.stop(t)
}

// conformanceEcho is a correct handler written for the test.
func conformanceEcho(w http.ResponseWriter, r *http.Request) {
	var req struct {
		contracts.StepEnvelope
		Steps []contracts.StepEnvelope `json:"steps"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if dl, err := time.Parse(time.RFC3339Nano, r.Header.Get("Tasker-Deadline")); err == nil && time.Now().After(dl) {
		// Too late: the runner has given up on this call.
		http.Error(w, `{"success": false, "error": {"message": "Tasker-Deadline passed", "retryable": true}}`, http.StatusServiceUnavailable)
		return
	}
	if req.Steps != nil {
		var out struct {
			Results []contracts.StepResult `json:"results"`
		}
		for _, s := range req.Steps {
			out.Results = append(out.Results, contracts.StepResult{StepUUID: s.Step.StepUUID, Success: true})
		}
		_ = json.NewEncoder(w).Encode(out)
		return
	}
	_ = json.NewEncoder(w).Encode(contracts.StepResult{Success: true, Result: json.RawMessage(`"ok"`)})
}

func TestConformanceBrokenHandlers(t *testing.T) {
	t.Parallel()
	secret := webhook.NewSecret()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		args    []string
		want    map[string]string
		def     string
		reasons map[string]string // case -> fragment of its reason
	}{
		{
			name:    "200 with something else",
			handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"ok":true}`) },
			def:     "FAIL", want: skipsWith("batch", "SKIP"),
			reasons: map[string]string{"minimal-envelope": `answered 200 OK with "{\"ok\":true}", which is not a StepExecutionResult ("success" (a boolean) is missing)`},
		},
		{
			name:    "500s",
			handler: func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "database is down", 500) },
			def:     "FAIL", want: skipsWith("batch", "SKIP"),
			reasons: map[string]string{"retry-attempt": `answered 500 Internal Server Error with "database is down"; want 200 with a StepExecutionResult`},
		},
		{
			name:    "ignores signatures",
			handler: conformanceEcho,
			args:    []string{"--secret", secret},
			def:     "PASS", want: map[string]string{"batch": "SKIP", "unsigned-rejected": "FAIL", "tampered-body-rejected": "FAIL", "stale-timestamp-rejected": "FAIL",
				"decision-outcome": "SKIP", "batch-outcome": "SKIP", "yields": "SKIP"},
			reasons: map[string]string{
				"unsigned-rejected":        "accepted a request without a signature (answered 200 OK); want 401",
				"stale-timestamp-rejected": "accepted a request signed 10 minutes ago",
			},
		},
		{
			name:    "no batches",
			handler: func(w http.ResponseWriter, r *http.Request) { conformanceEcho(w, r) },
			args:    []string{"--batch", "--protocol", "HTTP"},
			def:     "PASS", want: conformanceSignatureSkips,
		},
		{
			name: "batch answered with one result",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, `{"success": true}`)
			},
			args: []string{"--batch"},
			def:  "PASS", want: skipsWith("batch", "FAIL", "deadline-passed", "FAIL"),
			reasons: map[string]string{"batch": `not a batch response: at /: missing property 'results'`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			t.Cleanup(srv.Close)
			r := clitest.Run(t, nil, append([]string{"conformance", "--url", srv.URL + "/steps/{callable}"}, tt.args...)...)
			rows := wantConformance(t, r.Stdout, r.String(), tt.def, tt.want)
			wantCode := 0
			for _, c := range conformance.Cases() {
				if rows[c.Name][0] == "FAIL" {
					wantCode = 1
				}
			}
			if r.Code != wantCode {
				t.Errorf("exit %d, want %d: %v", r.Code, wantCode, r)
			}
			if wantCode == 1 && !strings.Contains(r.Stderr, "cases failed: the handler does not conform") {
				t.Errorf("stderr: %q", r.Stderr)
			}
			for name, frag := range tt.reasons {
				if !strings.Contains(rows[name][1], frag) {
					t.Errorf("%s: reason %q lacks %q", name, rows[name][1], frag)
				}
			}
		})
	}
}

// conformanceRPC is a correct Connect/gRPC handler written for the test.
type conformanceRPC struct {
	handlerv1connect.UnimplementedHandlerServiceHandler
}

func (conformanceRPC) Execute(_ context.Context, req *connect.Request[handlerv1.ExecuteRequest]) (*connect.Response[handlerv1.ExecuteResponse], error) {
	return connect.NewResponse(&handlerv1.ExecuteResponse{
		StepUuid: req.Msg.GetStep().GetStepUuid(), Success: true, Status: "completed",
		Result: structpb.NewStringValue(req.Msg.GetStepDefinition().GetHandler().GetCallable()),
	}), nil
}

func (conformanceRPC) ExecuteBatch(_ context.Context, req *connect.Request[handlerv1.ExecuteBatchRequest]) (*connect.Response[handlerv1.ExecuteBatchResponse], error) {
	out := &handlerv1.ExecuteBatchResponse{}
	for _, s := range req.Msg.GetSteps() {
		out.Results = append(out.Results, &handlerv1.ExecuteResponse{StepUuid: s.GetStep().GetStepUuid(), Success: true})
	}
	return connect.NewResponse(out), nil
}

// serveHandlerService serves svc over HTTP/1.1 and h2c (Connect and gRPC)
// on loopback.
func serveHandlerService(t *testing.T, svc handlerv1connect.HandlerServiceHandler) string {
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

func TestConformanceConnectAndGRPC(t *testing.T) {
	t.Parallel()
	url := serveHandlerService(t, conformanceRPC{})
	for _, protocol := range []string{"connect", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			t.Parallel()
			r := clitest.Run(t, nil, "conformance", "--url", url, "--protocol", protocol, "--batch")
			if r.Code != 0 {
				t.Errorf("want exit 0: %v", r)
			}
			rows := wantConformance(t, r.Stdout, r.String(), "PASS", skipsWith("deadline-passed", "SKIP"))
			if !strings.Contains(rows["minimal-envelope"][1], "answered OK: success") ||
				!strings.Contains(rows["unsigned-rejected"][1], "Connect and gRPC calls are not signed") {
				t.Errorf("reasons: %v", r)
			}
			if !strings.Contains(r.Stdout, "("+protocol+", callable conformance.echo, batch): 9 passed, 0 failed, 8 skipped") {
				t.Errorf("summary:\n%s", r.Stdout)
			}
		})
	}
	t.Run("not implemented", func(t *testing.T) {
		t.Parallel()
		bare := serveHandlerService(t, handlerv1connect.UnimplementedHandlerServiceHandler{})
		r := clitest.Run(t, nil, "conformance", "--url", bare, "--protocol", "grpc")
		rows := wantConformance(t, r.Stdout, r.String(), "FAIL", skipsWith("batch", "SKIP", "deadline-passed", "SKIP"))
		if r.Code != 1 || !strings.Contains(rows["minimal-envelope"][1], "UNIMPLEMENTED") ||
			!strings.Contains(rows["minimal-envelope"][1], "does not implement tasker.handler.v1.HandlerService/Execute") {
			t.Errorf("%v", r)
		}
	})
}

func TestConformanceJSON(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(conformanceEcho))
	t.Cleanup(srv.Close)
	r := clitest.Run(t, nil, "conformance", "--url", srv.URL, "--json", "--timeout", "3s", "--context", `{"order": {"total": 5}}`)
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("want exit 0: %v", r)
	}
	var rep conformance.Report
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, r.Stdout)
	}
	if rep.URL != srv.URL || rep.Protocol != "http" || rep.Callable != "conformance.echo" || rep.Passed != 9 || rep.Skipped != 8 ||
		rep.Failed != 0 || len(rep.Cases) != len(conformance.Cases()) {
		t.Errorf("report %+v", rep)
	}
	for _, c := range rep.Cases {
		if c.Name == "" || c.Description == "" || c.Reason == "" || (c.Status == conformance.Pass && c.DurationMS <= 0) {
			t.Errorf("case %+v", c)
		}
	}

	broken := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(broken.Close)
	r = clitest.Run(t, nil, "conformance", "--url", broken.URL, "--json")
	if r.Code != 1 || !json.Valid([]byte(r.Stdout)) || !strings.Contains(r.Stdout, `"status": "FAIL"`) ||
		!strings.Contains(r.Stderr, "9 of 9 cases failed") {
		t.Errorf("want exit 1 with a JSON report: %v", r)
	}
}

func TestConformanceUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want []string // in stderr
	}{
		{nil, []string{"tasker-runner conformance:", "--url is required"}},
		{[]string{"--url", "http://x", "extra"}, []string{`unexpected argument "extra"`}},
		{[]string{"--url", "http://x", "--timeout", "0s"}, []string{"--timeout must be positive"}},
		{[]string{"--url", "http://x", "--timeout", "soon"}, []string{"-timeout"}},
		{[]string{"--url", "http://x", "--callable", " "}, []string{"--callable must not be empty"}},
		{[]string{"--url", "http://x", "--protocol", "soap"}, []string{`protocol "soap" is not supported`}},
		{[]string{"--url", "ftp://x"}, []string{"scheme must be http"}},
		{[]string{"--url", "http://x", "--protocol", "grpc", "--secret", webhook.NewSecret()}, []string{"http protocol only"}},
		{[]string{"--url", "http://x", "--secret", "whsec_short"}, []string{"secret"}},
		{[]string{"--url", "http://x", "--context", "[1, 2]"}, []string{"must be a JSON object"}},
		{[]string{"--bogus"}, []string{"-bogus"}},
	}
	for _, tt := range tests {
		r := clitest.Run(t, nil, append([]string{"conformance"}, tt.args...)...)
		if r.Code != 2 || r.Stdout != "" || !strings.Contains(r.Stderr, "tasker-runner conformance --help") {
			t.Errorf("%v: want exit 2, nothing on stdout and a pointer to --help: %v", tt.args, r)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tt.args, w, r.Stderr)
			}
		}
	}

	// The secret from the environment does not make a Connect run fail.
	url := serveHandlerService(t, conformanceRPC{})
	if r := clitest.Run(t, map[string]string{"TASKER_WEBHOOK_SECRET": webhook.NewSecret()}, "conformance", "--url", url, "--protocol", "connect"); r.Code != 0 {
		t.Errorf("connect with TASKER_WEBHOOK_SECRET set: %v", r)
	}
}

func TestConformanceHelp(t *testing.T) {
	t.Parallel()
	r := clitest.Run(t, nil, "conformance", "--help")
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("want exit 0: %v", r)
	}
	for _, want := range []string{"Usage: tasker-runner conformance --url URL", "-secret", "-batch", "-callable", "the answer rule:", "Exit status"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("help lacks %q:\n%s", want, r.Stdout)
		}
	}
	for _, c := range conformance.Cases() {
		if !strings.Contains(r.Stdout, "\n  "+c.Name+"\n") {
			t.Errorf("help does not document case %s", c.Name)
		}
	}
}

// TestConformanceInterrupted: a cancelled run says so and fails.
func TestConformanceInterrupted(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(block) })
	var stdout, stderr clitest.Buffer
	env := &cli.Env{Stdout: &stdout, Stderr: &stderr, Lookup: mapLookup{}, Logger: nil}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	code := cli.Main(ctx, env, cli.Table{Commands: []cli.Command{Command}}, []string{"conformance", "--url", srv.URL})
	if code != 1 || !strings.Contains(stderr.String(), "interrupted after 0 of 17 cases") || !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

type mapLookup map[string]string

func (m mapLookup) Lookup(k string) (string, bool) {
	v, ok := m[k]
	return v, ok
}
